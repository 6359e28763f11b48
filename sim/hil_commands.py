"""``cgmsim transmitter`` and ``cgmsim receiver``: the firmwares on an HCI transport
(shared/design/cli.md, BLE and hardware; the runs themselves are ``sim.hil``).

Defaults where the contract is silent:

- Time runs at 1x (``--realtime``) unless ``--speed X`` compresses it; give both sides the same.
- The transmitter serves the whole session (``--days`` shortens it) and then stops; the
  receiver runs until ``--days`` of session time have passed, or with ``--until-ended`` until
  the sensor's session is over and all it made was fetched, or until SIGINT/SIGTERM. Both end
  cleanly on a signal: the receiver commits and writes its outputs first.
- The receiver's OUT is a run folder as ``cgmsim simulate`` writes one (summary.json,
  readings.csv, events.jsonl, in the sensor's session time: ``sim.rundir.receiver_folder``),
  rewritten from its store at most once a second as the run goes.
- Event lines: one line on stderr per notable event (the receiver: connected, paired,
  backfilled N, phase, alert raised/cleared/acknowledged; the transmitter: collector
  connected, paired, disconnected) when stderr is a terminal, or with ``--lines``; ``--quiet``
  never.
- The receiver finds the sensor by scanning for the CGM service unless given ``--peer``. Its
  bonds go to ``--keys`` (default ``OUT/keys.json``), so starting it again on the same ``--out``
  re-encrypts instead of pairing, and resumes its store.
- Bonds (``sim.links.keystore``): only authenticated LE Secure Connections bonds are stored, in
  files created 0600; at most ``--max-bonds`` per device, a new one replacing the least recently
  used. ``cgmsim bonds`` lists and deletes them.
- The transmitter prints one line on stderr once it advertises (address, passkey), and a JSON
  summary on stdout at the end with ``--json`` (every reading it made, the values it sent).
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
from collections.abc import Coroutine
from typing import Any

import click

from firmware.profiles import PROFILES
from sim.links.keystore import MAX_BONDS

TRANSMITTER_ADDRESS = "C0:CA:FE:00:00:01"  # random static (top two bits set)

_PASSKEY_HELP = "The 6-digit passkey printed on the sensor (the transmitter displays it)."


def _speed(speed: float | None, realtime: bool) -> float:
    if speed is not None and realtime:
        raise click.UsageError("--speed and --realtime exclude each other")
    return 1.0 if speed is None else speed


def _passkey(text: str) -> int:
    if len(text) != 6 or not text.isdigit():
        raise click.BadParameter(f"a passkey has 6 digits, not {text!r}", param_hint="--passkey")
    return int(text)


def _address(text: str, option: str) -> str:
    from bumble.hci import Address

    try:
        return str(Address(text))
    except (ValueError, TypeError):
        raise click.BadParameter(f"not a Bluetooth address: {text!r}", param_hint=option) from None


def _check_keys(path: pathlib.Path | None) -> None:
    """A --keys file that is not a key store, or holds a bond that cannot be read, is bad
    input: said before any radio work (a bad bond would otherwise surface only when its peer
    connects, inside the host stack)."""
    from sim.links.keystore import KeyStoreError, bonds

    if path is not None:
        try:
            bonds(path)
        except KeyStoreError as error:
            raise click.ClickException(str(error)) from None


def _run(work: Coroutine[Any, Any, Any], where: str) -> Any:
    """Run ``work`` on a fresh loop; a transport that cannot be opened is bad input."""
    from sim.hil import TransportProblem
    from sim.links.gatt_client import PairingRefused
    from sim.links.keystore import KeyStoreError

    try:
        return asyncio.run(work)
    except (TransportProblem, PairingRefused, KeyStoreError) as problem:
        raise click.ClickException(str(problem)) from None
    except TimeoutError as error:
        raise click.ClickException(f"{where}: {error}") from None


_TRANSPORT_HELP = (
    "A bumble HCI transport: usb:0, serial:/dev/ttyACM0,1000000,rtscts, "
    "tcp-client:127.0.0.1:9001, pty:PATH, ...; auto: the one controller attached "
    "(cgmsim dongles lists them)."
)


def _resolve(transport: str | None) -> str | None:
    """``--transport auto``: the one controller attached that answers HCI Reset (said on
    stderr); none or several is bad input. Any other transport as given."""
    from sim.dongles import resolve_transport  # DongleProblem: a ClickException, exit 2

    if transport is None:
        return None
    return resolve_transport(transport, say=lambda line: click.echo(line, err=True))


_common = [
    click.option("--profile", type=click.Choice(["g7", "g6"]), default="g7", show_default=True),
    click.option(
        "--speed",
        type=click.FloatRange(0, min_open=True),
        default=None,
        help="Session time runs X times faster than real time (lab runs).",
    ),
    click.option("--realtime", is_flag=True, help="Session time runs at 1x (the default)."),
    click.option("--passkey", default="123456", show_default=True, help=_PASSKEY_HELP),
    click.option(
        "--keys",
        type=click.Path(dir_okay=False, path_type=pathlib.Path),
        default=None,
        help="A JSON key store file for the bonds (written 0600; cgmsim bonds lists them).",
    ),
    click.option(
        "--max-bonds",
        type=click.IntRange(1),
        default=MAX_BONDS,
        show_default=True,
        help="Bonds kept in --keys; a new one beyond replaces the least recently used.",
    ),
]


_lines_option = click.option(
    "--lines/--quiet",
    "lines",
    default=None,
    help="One line on stderr per notable event (connected, paired, backfilled, alert, phase); "
    "default: when stderr is a terminal.",
)


def _teller(lines: bool | None, role: str) -> Any:
    """Where the event lines go: stderr, when asked or on a terminal; else nowhere (None)."""
    if lines is False or (lines is None and not sys.stderr.isatty()):
        return None

    def tell(line: str) -> None:
        click.echo(f"cgmsim {role}: {line}", err=True)

    return tell


def session_clock(t_min: float) -> str:
    """A session time as a person reads it: ``day 2 14:05`` (day 1 is the first)."""
    minutes = max(round(t_min), 0)
    day, minute = divmod(minutes, 1440)
    return f"day {day + 1} {minute // 60:02d}:{minute % 60:02d}"


def event_line(record: dict[str, Any]) -> str | None:
    """The line told for one receiver record (``sim.hil.run_receiver``'s ``on_record``), None
    for what is not notable (a live reading)."""
    kind = record["kind"]
    if kind == "scanning":
        return f"scanning for {record['peer'] or 'a CGM sensor (service 0x181F)'}"
    at = session_clock(record["t_min"])
    match kind:
        case "link":
            reason = f" ({record['reason']})" if record.get("reason") else ""
            return f"{at} {'connected' if record['connected'] else 'disconnected'}{reason}"
        case "paired":
            return f"{at} paired with {record['peer']}"
        case "backfill":
            return (
                f"{at} backfilled {record['readings']} readings "
                f"(session min {record['first_offset_min']}-{record['last_offset_min']})"
            )
        case "phase":
            return f"{at} phase {record['phase']}"
        case "alert_raised":
            return f"{at} ALERT {record['alert']}: {record['reason']}"
        case "alert_repeated":
            return f"{at} alert {record['alert']} again"
        case "alert_cleared":
            return f"{at} alert {record['alert']} cleared"
        case "alert_acknowledged":
            return f"{at} alert {record['alert']} acknowledged"
    return None


_record_option = click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    metavar="FILE",
    help="Write the firmware core's inputs and outputs to FILE, for cgmsim replay.",
)


def _with_common(function: Any) -> Any:
    for decorator in reversed(_common):
        function = decorator(function)
    return function


@click.command(name="transmitter")
@click.option("--transport", required=True, metavar="T", help=_TRANSPORT_HELP)
@_with_common
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option(
    "--days", type=click.FloatRange(0, 30, min_open=True), default=None, help="Default: all."
)
@click.option("--ideal-sensor", is_flag=True, help="The sensor reports the reference exactly.")
@click.option("--e2e-crc", is_flag=True, help="The sensor uses E2E-CRC on every value.")
@click.option("--address", default=TRANSMITTER_ADDRESS, show_default=True)
@click.option(
    "--privacy/--no-privacy",
    default=True,
    show_default=True,
    help="Advertise from resolvable private addresses (a new one every --rpa-interval) made "
    "with the sensor's IRK, not from --address, which bonded collectors learn at pairing.",
)
@click.option(
    "--rpa-interval",
    type=click.FloatRange(1),
    default=900.0,
    show_default=True,
    metavar="S",
    help="Seconds between private addresses: TGAP(private_addr_int), 15 min recommended. "
    "The radio's time: --speed does not shorten it.",
)
@click.option(
    "--bonded-only",
    is_flag=True,
    help="Once the sensor has a bond, drop connections from collectors it has no bond with.",
)
@_record_option
@_lines_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end.")
def transmitter_command(
    transport: str,
    profile: str,
    speed: float | None,
    realtime: bool,
    passkey: str,
    keys: pathlib.Path | None,
    max_bonds: int,
    seed: int,
    days: float | None,
    ideal_sensor: bool,
    e2e_crc: bool,
    address: str,
    privacy: bool,
    rpa_interval: float,
    bonded_only: bool,
    record: pathlib.Path | None,
    lines: bool | None,
    as_json: bool,
) -> None:
    """Serve a simulated sensor session as a CGM sensor on a BLE controller: advertise the CGM
    service, pair with passkey entry, send readings until the session ends."""
    from sim import hil
    from sim.session.config import SimulationConfig

    rate, key = _speed(speed, realtime), _passkey(passkey)
    _check_keys(keys)
    transport = _resolve(transport) or transport
    config = SimulationConfig(
        profile=PROFILES[profile], days=days, seed=seed, ideal_sensor=ideal_sensor, e2e_crc=e2e_crc
    )

    def ready(where: str) -> None:
        click.echo(
            f"cgmsim transmitter: advertising as cgmsim ({where}) on {transport}, "
            f"passkey {key:06d}, speed {rate:g}x",
            err=True,
        )
        sys.stderr.flush()

    summary = _run(
        hil.run_transmitter(
            transport,
            config,
            speed=rate,
            passkey=key,
            address=_address(address, "--address"),
            keys=keys,
            on_ready=ready,
            record=record,
            privacy=privacy,
            rpa_interval_s=rpa_interval,
            bonded_only=bonded_only,
            max_bonds=max_bonds,
            on_line=_teller(lines, "transmitter"),
        ),
        transport,
    )
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f"session {summary['session_min']:.0f} min: {len(summary['readings'])} readings made, "
            f"{summary['sent_over_air']} values sent, {summary['connections']} connections"
        )


def _told(tell: Any) -> Any:
    if tell is None:
        return None

    def on_record(record: dict[str, Any]) -> None:
        line = event_line(record)
        if line is not None:
            tell(line)

    return on_record


@click.command(name="receiver")
@click.option(
    "--transport", default=None, metavar="T", help=_TRANSPORT_HELP + " Needed unless --bleak."
)
@click.option(
    "--bleak",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[ADDRESS]",
    help="Go through the bleak API: on the host's Bluetooth stack, or with --transport on the "
    "bleak backend over bumble. ADDRESS: the sensor's (default: scan for 0x181F).",
)
@_with_common
@click.option("--peer", default=None, help="The sensor's address (default: scan for 0x181F).")
@click.option(
    "--days",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Session time to run for (default: until SIGINT/SIGTERM).",
)
@click.option(
    "--until-ended",
    is_flag=True,
    help="Stop once the sensor's session is over and every reading it made was fetched.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=pathlib.Path("out/receiver"),
    show_default=True,
)
@_record_option
@click.option(
    "--insecure",
    is_flag=True,
    help="LAB USE ONLY: accept a sensor that serves CGM data without encryption or pairs "
    "without authenticated LE Secure Connections (warned on every run, noted in summary.json).",
)
@_lines_option
@click.option(
    "--display",
    is_flag=True,
    help="Show the live receiver screen on this terminal (key a: acknowledge the most urgent "
    "alert); no event lines then.",
)
@click.option("--json", "as_json", is_flag=True, help="Print summary.json at the end.")
def receiver_command(
    transport: str | None,
    bleak: str | None,
    profile: str,
    speed: float | None,
    realtime: bool,
    passkey: str,
    keys: pathlib.Path | None,
    max_bonds: int,
    peer: str | None,
    days: float | None,
    until_ended: bool,
    out: pathlib.Path,
    record: pathlib.Path | None,
    insecure: bool,
    lines: bool | None,
    display: bool,
    as_json: bool,
) -> None:
    """Run the receiver firmware against a CGM sensor over a BLE controller: connect, pair
    (or re-encrypt with the bond), read, subscribe, backfill, alert. Writes OUT/receiver.sqlite
    and the run files (summary.json, readings.csv, events.jsonl: cgmsim report and export read
    them) as it goes.

    Security: the sensor must keep its CGM data from unencrypted links and pair with LE Secure
    Connections and the passkey; any other sensor is refused (one line, exit 2) and its bond
    forgotten. OUT is made private (0700), receiver.sqlite and the keys 0600."""
    from sim import hil
    from sim.durable import ResumeMismatch
    from sim.private_files import private_dir
    from sim.store import StoreError

    rate, key = _speed(speed, realtime), _passkey(passkey)
    _check_keys(keys if keys is not None else out / "keys.json")
    if transport is None and bleak is None:
        raise click.UsageError("give --transport T, or --bleak [ADDRESS]")
    if bleak and peer and _address(bleak, "--bleak") != _address(peer, "--peer"):
        raise click.UsageError("--bleak ADDRESS and --peer name different sensors")
    peer = peer or bleak or None
    target = None if peer is None else _address(peer, "--peer")
    if display and not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise click.UsageError("--display needs a terminal: standard input or output is not one")
    transport = _resolve(transport)
    try:
        private_dir(out)
    except OSError as error:
        raise click.ClickException(f"cannot write to {out}: {error.strerror}") from None
    if insecure:
        click.echo(
            "cgmsim receiver: warning: --insecure: a sensor without encryption or without "
            "authenticated LE Secure Connections is accepted (lab use only)",
            err=True,
        )
    try:
        summary = _run(
            hil.run_receiver(
                transport,
                PROFILES[profile],
                out,
                speed=rate,
                passkey=key,
                peer=target,
                days=days,
                keys=keys if keys is not None else out / "keys.json",
                bleak=bleak is not None,
                record=record,
                insecure=insecure,
                max_bonds=max_bonds,
                until_ended=until_ended,
                on_record=None if display else _told(_teller(lines, "receiver")),
                display=display,
            ),
            transport or "bleak",
        )
    except (StoreError, ResumeMismatch) as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(summary))
    else:
        readings = summary["readings"]
        click.echo(
            f"{readings['displayed']} readings displayed ({readings['live_this_run']} live and "
            f"{readings['backfilled_this_run']} backfilled this run), "
            f"{summary['connections']} connections, {summary['pairings']} pairings; "
            f"outputs in {out}"
        )
