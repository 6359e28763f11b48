"""``cgmsim conformance``: run the CGMS test suite's cases against a device (docs/conformance.md).

Exit status: 0 when no case FAILed, 1 when one did, 2 for bad input or a transport or device
that cannot be reached (shared/design/cli.md). One line per case on stdout (``--json``: one
JSON document instead); a summary line on stderr.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import click

from sim.hil_commands import _TRANSPORT_HELP, _address, _passkey


@click.command(name="conformance")
@click.option(
    "--role",
    type=click.Choice(["sensor", "collector"]),
    required=True,
    help="sensor: cgmsim is the tester (a central) and the device a CGM sensor. collector: "
    "cgmsim plays the sensor (a peripheral advertising 0x181F) to test a receiver or app.",
)
@click.option("--transport", required=True, metavar="T", help=_TRANSPORT_HELP)
@click.option("--address", default=None, help="The device's address (default: scan).")
@click.option(
    "--name", default=None, help="The device's advertised name (default: scan for 0x181F)."
)
@click.option(
    "--passkey",
    default=None,
    help="The device's 6-digit passkey (passkey entry); without it, Just Works pairing.",
)
@click.option(
    "--allow-destructive",
    is_flag=True,
    help="Also run the cases that delete records, set a calibration, stop the session.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="PREFIX",
    help="Run only the cases whose id starts with PREFIX (repeatable), and pairing; e.g. "
    "--only CGMSIM/SEN/SEC/ for the security suite.",
)
@click.option(
    "--attacks/--no-attacks",
    default=True,
    show_default=True,
    help="Run the security attacks from separate centrals (legacy, Just Works, withheld keys, "
    "idle link, address privacy, passkey guessing), after the other cases.",
)
@click.option(
    "--idle-limit",
    type=click.FloatRange(0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="S",
    help="An idle connection must be dropped within S seconds (SMP's 30 s timeout).",
)
@click.option(
    "--privacy-wait",
    type=click.FloatRange(0),
    default=960.0,
    show_default=True,
    metavar="S",
    help="Watch the sensor's private address up to S seconds from first sight for a change "
    "(the Core recommends one every 15 min; less than that gives INCONCLUSIVE).",
)
@click.option(
    "--guesses",
    type=click.IntRange(3, 19),
    default=3,
    show_default=True,
    metavar="N",
    help="Wrong passkeys the guessing attack gets accepted (each makes the sensor wait).",
)
@click.option(
    "--guess-wait",
    type=click.FloatRange(1),
    default=60.0,
    show_default=True,
    metavar="S",
    help="The longest the guessing attack waits for the sensor to accept its next guess.",
)
@click.option(
    "--speed",
    type=click.FloatRange(0, min_open=True),
    default=1.0,
    show_default=True,
    help="Collector role: the sensor's session time runs X times faster than real time (give "
    "the collector the same, e.g. cgmsim receiver --speed X).",
)
@click.option(
    "--offline-readings",
    type=click.IntRange(1, 50),
    default=2,
    show_default=True,
    metavar="N",
    help="Collector role: readings the sensor makes during each outage (5 min each in "
    "session time), which the collector must then backfill.",
)
@click.option(
    "--connect-wait",
    type=click.FloatRange(1),
    default=60.0,
    show_default=True,
    metavar="S",
    help="Collector role: seconds the collector gets to connect (and pair) each time.",
)
@click.option(
    "--profile",
    type=click.Choice(["g7", "g6"]),
    default="g7",
    show_default=True,
    help="Collector role: the sensor's device profile.",
)
@click.option(
    "--e2e-crc",
    is_flag=True,
    help="Collector role: the sensor uses E2E-CRC on every value (CGM Feature bit 12).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    metavar="FILE",
    help="Also write the results as JUnit XML to FILE.",
)
def conformance_command(
    role: str,
    transport: str,
    address: str | None,
    name: str | None,
    passkey: str | None,
    allow_destructive: bool,
    only: tuple[str, ...],
    attacks: bool,
    idle_limit: float,
    privacy_wait: float,
    guesses: int,
    guess_wait: float,
    speed: float,
    offline_readings: int,
    connect_wait: float,
    profile: str,
    e2e_crc: bool,
    as_json: bool,
    junit: pathlib.Path | None,
) -> None:
    """Test a CGM device against the Bluetooth SIG CGMS test suite's cases over the air, as
    an independent tester: one line per case id (PASS, FAIL, INCONCLUSIVE, NOT APPLICABLE, or
    NOT RUN for a destructive case without --allow-destructive), with the reason, the spec
    section it rests on and the frames that decided it. Exit 1 when a case FAILed.

    The security attacks come last and leave the sensor refusing new pairings for a while
    (Repeated Attempts, after the passkey guesses); bonded collectors are not affected."""
    import asyncio

    from sim.conformance import report
    from sim.conformance.attacker import SecurityOptions
    from sim.conformance.registry import Case, Phase
    from sim.conformance.runner import run_sensor
    from sim.hil import TransportProblem

    if role == "collector":
        _collector(
            transport,
            passkey,
            speed,
            offline_readings,
            connect_wait,
            only,
            as_json,
            junit,
            profile=profile,
            e2e_crc=e2e_crc,
        )
        return
    if address is not None and name is not None:
        raise click.UsageError("--address and --name exclude each other")
    key = None if passkey is None else _passkey(passkey)
    target = None if address is None else _address(address, "--address")

    security = SecurityOptions(attacks, idle_limit, privacy_wait, guesses, guess_wait)

    def selected(case: Case) -> bool:
        return case.phase is Phase.PAIRING or any(case.id.startswith(p) for p in only)

    def show(result: Any) -> None:
        if not as_json:
            click.echo(report.line(result))
            sys.stdout.flush()

    try:
        run = asyncio.run(
            run_sensor(
                transport,
                address=target,
                name=name,
                passkey=key,
                allow_destructive=allow_destructive,
                only=selected if only else None,
                on_result=show,
                security=security,
            )
        )
    except TransportProblem as problem:
        raise click.ClickException(str(problem)) from None
    except TimeoutError as error:
        raise click.ClickException(f"{transport}: {error}") from None
    header = {
        "role": role,
        "transport": transport,
        "peer": run.peer,
        "allow_destructive": allow_destructive,
        "security": {
            "attacks": attacks,
            "idle_limit_s": idle_limit,
            "privacy_wait_s": privacy_wait,
            "guesses": guesses,
            "guess_wait_s": guess_wait,
        },
        "features": run.features,
        "wall_seconds": round(run.wall_seconds, 3),
    }
    _report(run.results, header, "sensor", f"cases against {run.peer}", as_json, junit)


def _collector(
    transport: str,
    passkey: str | None,
    speed: float,
    offline_readings: int,
    connect_wait: float,
    only: tuple[str, ...],
    as_json: bool,
    junit: pathlib.Path | None,
    *,
    profile: str = "g7",
    e2e_crc: bool = False,
) -> None:
    """``--role collector``: play the sensor and judge the collector that connects."""
    import asyncio

    from sim.conformance import report
    from sim.conformance.collector_runner import CollectorOptions, run_collector
    from sim.conformance.registry import Case
    from sim.hil import TransportProblem

    key = _passkey(passkey if passkey is not None else "123456")
    options = CollectorOptions(
        speed=speed, offline_readings=offline_readings, connect_wait_s=connect_wait
    )

    def selected(case: Case) -> bool:
        return not only or any(case.id.startswith(p) for p in only)

    def show(result: Any) -> None:
        if not as_json:
            click.echo(report.line(result))
            sys.stdout.flush()

    def ready(address: str) -> None:
        click.echo(
            f"cgmsim conformance: advertising as cgmsim ({address}) on {transport}, "
            f"passkey {key:06d}, speed {speed:g}x, {profile}{' with E2E-CRC' if e2e_crc else ''}",
            err=True,
        )
        sys.stderr.flush()

    try:
        run = asyncio.run(
            run_collector(
                transport,
                options,
                passkey=key,
                profile=profile,
                e2e_crc=e2e_crc,
                only=selected,
                on_result=show,
                on_ready=ready,
            )
        )
    except TransportProblem as problem:
        raise click.ClickException(str(problem)) from None
    except TimeoutError as error:
        raise click.ClickException(f"{transport}: {error}") from None
    header = {
        "role": "collector",
        "transport": transport,
        "peer": run.peer,
        "speed": speed,
        "profile": profile,
        "e2e_crc": e2e_crc,
        "offline_readings": offline_readings,
        "wall_seconds": round(run.wall_seconds, 3),
    }
    what = f"collector cases against {run.peer or 'no peer'}"
    _report(run.results, header, "collector", what, as_json, junit)


def _report(
    results: list[Any],
    header: dict[str, Any],
    role: str,
    what: str,
    as_json: bool,
    junit: pathlib.Path | None,
) -> None:
    """What a run ends with, whatever the role: the JSON report, the JUnit file, one summary
    line on stderr, and exit 1 when a case FAILed."""
    from sim.conformance import report

    wall_seconds = header["wall_seconds"]
    if as_json:
        click.echo(json.dumps(report.to_json(results, **header)))
    if junit is not None:
        try:
            junit.write_bytes(report.to_junit(results, f"cgmsim conformance {role}", wall_seconds))
        except OSError as error:
            raise click.ClickException(f"cannot write {junit}: {error.strerror}") from None
    counts = report.summary(results)
    click.echo(
        f"cgmsim conformance: {len(results)} {what} in {wall_seconds:.1f} s: "
        + ", ".join(f"{n} {v}" for v, n in counts.items() if n),
        err=True,
    )
    if report.failed(results):
        sys.exit(1)
