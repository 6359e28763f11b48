"""The ``cgmsim`` command line (contract: shared/design/cli.md).

Exit codes: 0 success, 1 a requested check failed, 2 bad input or usage (one line on stderr).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import click

from protocol.cgms.codecs import codec_for
from protocol.errors import ProtocolError
from sim.bonds_command import bonds_command
from sim.capture.command import command as import_command
from sim.conformance.command import conformance_command
from sim.dongles import dongles_command
from sim.fuzz.command import command as fuzz_command
from sim.hil_commands import receiver_command, transmitter_command
from sim.population.command import command as population_command
from sim.progress import progress_bar
from sim.recording.command import command as replay_command
from sim.rundir.commands import export_command, report_command
from sim.session.config import Faults, SimulationConfig

EXIT_USAGE = 2


class _Cli(click.Group):
    """Turns every usage or input error into one line on stderr and exit code 2."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:  # type: ignore[override]
        try:
            self.main_checked(*args, **kwargs)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.exceptions.Abort:
            sys.exit(130)
        except click.ClickException as error:
            _fail(error.format_message())
        except ProtocolError as error:
            _fail(str(error))
        sys.exit(0)

    def main_checked(self, *args: Any, **kwargs: Any) -> Any:
        return super().main(*args, standalone_mode=False, **kwargs)


def _compose(*decorators: Any) -> Any:
    def apply(function: Any) -> Any:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def _fail(message: str) -> NoReturn:
    click.echo(f"cgmsim: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cgmsim")
def cli() -> None:
    """Simulate continuous glucose monitor firmware: sensor, CGMS over BLE, receiver."""


@cli.command()
@click.argument("characteristic")
@click.argument("hex_value", metavar="HEX", nargs=-1, required=True)
@click.option(
    "--e2e-crc", is_flag=True, help="Require an E2E-CRC (needed for SOCP frames that carry one)."
)
def decode(characteristic: str, hex_value: tuple[str, ...], e2e_crc: bool) -> None:
    """Decode one CHARACTERISTIC value given as HEX (spaces allowed) and print it as JSON.

    CHARACTERISTIC is a name or UUID: measurement (2aa7), feature (2aa8), status (2aa9),
    session-start-time (2aaa), session-run-time (2aab), racp (2a52), socp (2aac). A CRC present
    in the frame is always checked.
    """
    codec = codec_for(characteristic)
    text = "".join(hex_value).replace(" ", "").replace(":", "")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise click.BadParameter(
            f"not hexadecimal: {' '.join(hex_value)!r}", param_hint="HEX"
        ) from None
    click.echo(json.dumps(codec.fields(data, True if e2e_crc else None)))


@cli.command()
@click.argument("characteristic")
@click.argument("json_value", metavar="JSON")
@click.option("--e2e-crc", is_flag=True, help="Append an E2E-CRC where the characteristic has one.")
def encode(characteristic: str, json_value: str, e2e_crc: bool) -> None:
    """Encode a CHARACTERISTIC value from JSON (the form `decode` prints) and print its hex.

    size, flags and crc are computed. A CRC is appended with --e2e-crc, or when the JSON has a
    crc value, as `decode` prints for a frame that carried one (so `decode | encode` round-trips).
    """
    codec = codec_for(characteristic)
    try:
        value = json.loads(json_value)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="JSON") from None
    crc = e2e_crc or _carries_crc(value)
    click.echo(codec.encode(codec.from_fields(value), crc).hex(" "))


def _carries_crc(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    records = value.get("records")
    if isinstance(records, list):
        return any(isinstance(record, dict) and record.get("crc") is not None for record in records)
    return value.get("crc") is not None


# --scenario / --trace: where reference glucose comes from (accuracy, simulate)
_reference_options = _compose(
    click.option(
        "--scenario", default="daily_life", show_default=True, help="Reference glucose scenario."
    ),
    click.option(
        "--trace",
        type=click.Path(dir_okay=False, path_type=pathlib.Path),
        help="Reference glucose from a CSV (time_offset_min,glucose_mgdl) or Nightscout JSON "
        "file, instead of a scenario. A trace shorter than the run ends it at its last reading "
        "(noted on stderr); one that ends before warm-up is refused.",
    ),
)


def _reference(scenario: str, trace: pathlib.Path | None) -> Any:
    """The reference glucose source: a recorded trace, else the named scenario."""
    from sim.signal.scenarios import SCENARIOS
    from sim.signal.traces import TraceError, load_trace

    if scenario.startswith("patient:") and trace is None:
        from sim.physiology.source import parse_patient_scenario

        try:
            return parse_patient_scenario(scenario)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--scenario") from None
    if scenario not in SCENARIOS:
        raise click.BadParameter(
            f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}", param_hint="--scenario"
        )
    try:
        return load_trace(trace) if trace is not None else SCENARIOS[scenario]
    except TraceError as error:
        raise click.ClickException(str(error)) from None


def _fit_to_trace(
    source: Any, profile: Any, days: float | None, command: str
) -> tuple[float | None, str | None]:
    """The run's length in days, given where its reference glucose ends, and a note for stderr
    when it was shortened (issue 18); the caller prints the note once the run has succeeded, so
    an error stays one line.

    A trace that ends before the session's first reading (warm-up end) can give none: refused,
    exit 2, naming the trace, its span and the session's length. A trace that ends before the
    run would (the whole session, or --days) shortens the run to the trace's last reading, with
    a note on stderr, rather than simulate days without a reference (no readings, only
    signal-loss alerts). Scenarios have no end: ``days`` as given, no note."""
    from firmware.profiles import MINUTE_MS
    from sim.signal.traces import Trace

    if not isinstance(source, Trace):
        return days, None
    start, end = float(source.time_min[0]), float(source.time_min[-1])
    session_min = days * 1440 if days is not None else profile.end_ms / MINUTE_MS
    warmup_min = profile.warmup_ms / MINUTE_MS
    span = f"{source.source} spans {start:g}-{end:g} min"
    length = (
        f"the {profile.name} session runs {session_min:g} min"
        if days is None
        else f"--days {days:g} asks for {session_min:g} min"
    )
    if end < warmup_min:
        raise click.BadParameter(
            f"{span}, ending before warm-up ends at {warmup_min:g} min ({length}): "
            "no reading can be made",
            param_hint="--trace",
        )
    if end >= session_min:
        return days, None
    note = (
        f"cgmsim {command}: note: {span} and {length}: ran to the trace's end, "
        f"{end:g} min ({end / 1440:.2f} days)"
    )
    return end / 1440, note


@cli.command(name="accuracy")
@click.option("--profile", type=click.Choice(["g7", "g6"]), default="g7", show_default=True)
@click.option("--sensors", type=click.IntRange(1, 100_000), default=300, show_default=True)
@click.option(
    "--days", type=click.FloatRange(0.5, 30), default=None, help="Default: the whole session."
)
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@_reference_options
@click.option("--ideal-sensor", is_flag=True, help="Turn every sensor artefact off.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def accuracy_command(
    profile: str,
    sensors: int,
    days: float | None,
    seed: int,
    scenario: str,
    trace: pathlib.Path | None,
    ideal_sensor: bool,
    as_json: bool,
) -> None:
    """Score simulated sensors the way clinical accuracy studies do (MARD, %X/X, iCGM A-K,
    Clarke and Parkes zones), against a laboratory reference every 15 minutes."""
    from firmware.profiles import PROFILES
    from sim.accuracy import NoPairs, run_study
    from sim.report import print_accuracy
    from sim.signal import models

    source = _reference(scenario, trace)
    days, note = _fit_to_trace(source, PROFILES[profile], days, "accuracy")
    model = models.SENSOR_MODELS[profile]
    try:
        with progress_bar(f"{sensors} {profile} sensors") as advance:
            result = run_study(
                PROFILES[profile],
                models.ideal(model) if ideal_sensor else model,
                sensors,
                seed,
                days=days,
                source=source,
                progress=advance,
            )
    except NoPairs as error:
        if trace is not None:
            raise click.BadParameter(f"{trace}: {error}", param_hint="--trace") from None
        raise click.ClickException(f"{source.name}: {error}") from None
    if note:
        click.echo(note, err=True)
    if as_json:
        reference = source.name
        click.echo(
            json.dumps(
                {"profile": profile, "seed": seed, "reference": reference, **result.to_json()}
            )
        )
    else:
        print_accuracy(profile, seed, result)


@cli.command()
@click.option("--profile", type=click.Choice(["g7", "g6"]), default="g7", show_default=True)
@click.option(
    "--days",
    type=click.FloatRange(0.1, 30),
    default=None,
    help="Default: the whole session with grace.",
)
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@_reference_options
@click.option(
    "--link",
    type=click.Choice(["memory", "ble", "bleak"]),
    default="ble",
    show_default=True,
    help="ble: two devices on the bumble host stack (pairing, encryption, GATT) in virtual "
    "time; bleak: the same, the receiver through the bleak API; memory: the cores wired "
    "directly, fastest. All take --faults, keep the store and give the same session.",
)
@click.option("--faults", default="", help="e.g. loss=0.3,outage=120:480,receiver_restart=3")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=pathlib.Path("out"),
    show_default=True,
)
@click.option("--ideal-sensor", is_flag=True, help="The sensor reports the reference exactly.")
@click.option("--e2e-crc", is_flag=True, help="The sensor uses E2E-CRC on every value.")
@click.option("--no-plot", is_flag=True, help="Do not write session.png.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of a table.")
@click.option(
    "--acknowledge-after",
    "acknowledge_after",
    type=click.FloatRange(min=0),
    default=None,
    metavar="MINUTES",
    help="A simulated user acknowledges every alert raised or repeated, MINUTES after it "
    "sounded (if it is still active); events.jsonl records each as alert_acknowledged. "
    "Default: nobody acknowledges.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Start over: delete --out/receiver.sqlite (the receiver's store) before running.",
)
@click.option(
    "--capture",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    metavar="FILE",
    help="With --link ble: write the receiver's HCI traffic (pairing, GATT discovery, every "
    "notification) to FILE as a btsnoop log, e.g. for Wireshark/tshark.",
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    metavar="FILE",
    help="Write every input of both firmware cores and what they answered to FILE (JSON lines, "
    "gzip if FILE ends .gz), for cgmsim replay.",
)
@click.option(
    "--display",
    is_flag=True,
    help="Show the receiver's screen live on the terminal (value, arrow, the last 3 hours, "
    "phase countdown, alerts, link); press a to acknowledge the most urgent alert.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="N",
    help="With --display: run the session at N x real time (default 600: a reading every 0.5 s).",
)
def simulate(
    profile: str,
    days: float | None,
    seed: int,
    scenario: str,
    trace: pathlib.Path | None,
    link: str,
    faults: str,
    out: pathlib.Path,
    ideal_sensor: bool,
    e2e_crc: bool,
    no_plot: bool,
    as_json: bool,
    acknowledge_after: float | None,
    fresh: bool,
    capture: pathlib.Path | None,
    record: pathlib.Path | None,
    display: bool,
    speed: float | None,
) -> None:
    """Run one whole sensor session: sensor model -> transmitter -> link -> receiver, and write
    summary.json, readings.csv, events.jsonl and session.png into --out.

    The receiver is durable: it commits its readings, events and state to --out/receiver.sqlite
    as it goes. If a run is killed, rerunning the same command resumes from that store (the
    sensor kept sampling meanwhile; the receiver reloads, reconnects and backfills), and the
    outputs cover the whole session. --fresh deletes the store and starts over.
    """
    import time

    from firmware.profiles import PROFILES
    from sim import outputs, simulation
    from sim.durable import ResumeMismatch
    from sim.report import print_session
    from sim.store import StoreError

    if capture is not None and link == "memory":
        raise click.UsageError("--capture needs --link ble (the memory link has no air to capture)")
    if speed is not None and not display:
        raise click.UsageError("--speed goes with --display (without it the run is not paced)")
    if display and not sys.stdout.isatty():
        raise click.UsageError("--display needs a terminal: standard output is not one")
    source = _reference(scenario, trace)
    days, note = _fit_to_trace(source, PROFILES[profile], days, "simulate")
    try:
        fault_spec = Faults.parse(faults)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    config = SimulationConfig(
        profile=PROFILES[profile],
        days=days,
        seed=seed,
        source=source,
        ideal_sensor=ideal_sensor,
        faults=fault_spec,
        e2e_crc=e2e_crc,
        acknowledge_after_min=acknowledge_after,
    )
    store_path = out / "receiver.sqlite"
    try:
        out.mkdir(parents=True, exist_ok=True)
        if fresh:
            for suffix in ("", "-wal", "-shm", "-journal"):
                pathlib.Path(f"{store_path}{suffix}").unlink(missing_ok=True)
    except OSError as error:
        raise click.ClickException(f"cannot write to {out}: {error.strerror}") from None
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            advance, watch = None, None
            if display:
                paced = stack.enter_context(_paced_screen(profile, link, speed))
                watch = paced.attach
            else:
                advance = stack.enter_context(
                    progress_bar(f"{profile} session over the {link} link")
                )
            result = simulation.run(
                config,
                link=link,
                store_path=store_path,
                record=record,
                capture=capture,
                progress=advance,
                watch=watch,
            )
            if display:
                paced.finish()
    except (StoreError, ResumeMismatch, ValueError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:  # the --capture file
        raise click.ClickException(f"cannot write {error.filename}: {error.strerror}") from None
    wall = time.perf_counter() - started
    data = outputs.summary(result, link, wall)
    if display:  # what the person watching did shaped the run too
        data["settings"]["display"] = {
            "speed": paced.speed,
            "keyboard_acknowledgements": paced.pressed,
        }
    if note:
        click.echo(note, err=True)
    try:
        outputs.write_all(out, result, data, plot=not no_plot)
    except OSError as error:
        raise click.ClickException(f"cannot write to {out}: {error.strerror}") from None
    if as_json:
        click.echo(json.dumps(data))
    else:
        print_session(data, out, plot=not no_plot)


@contextlib.contextmanager
def _paced_screen(profile: str, link: str, speed: float | None) -> Iterator[Any]:
    """The live screen of ``simulate --display`` on this terminal (``sim.screen``)."""
    from sim.screen import Keys, Screen
    from sim.screen.paced import DEFAULT_SPEED, PacedSession

    stdin = sys.stdin.fileno() if sys.stdin is not None else -1
    with Keys(stdin) as keys, Screen(sys.stdout, keys, f"cgmsim {profile}") as screen:
        yield PacedSession(screen, speed or DEFAULT_SPEED, link)


@cli.command()
def demo() -> None:
    """Encode, decode and print a few readings' frames (a tour of the protocol layer)."""
    from sim.demo import run

    run()


cli.add_command(report_command)
cli.add_command(export_command)
cli.add_command(transmitter_command)
cli.add_command(bonds_command)
cli.add_command(receiver_command)
cli.add_command(fuzz_command)
cli.add_command(replay_command)
cli.add_command(import_command)
cli.add_command(population_command)
cli.add_command(conformance_command)
cli.add_command(dongles_command)


def main() -> NoReturn:
    cli.main(prog_name="cgmsim")
