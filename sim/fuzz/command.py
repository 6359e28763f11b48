"""``cgmsim fuzz``: a fuzz campaign against the decoders or a firmware core, over the memory
link or bumble's in-process BLE link, or the replay of a saved reproducer. Exit 0: nothing
found (or the reproducer no longer fails); 1: failures found (or the reproducer still fails);
2: bad input."""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from sim.fuzz import engine, seeding
from sim.fuzz.corpus import seeds as corpus_seeds
from sim.fuzz.device_options import (
    DEFAULT_PASSKEY,
    DEFAULT_PATIENCE_S,
    DEFAULT_RATE,
    DeviceOptions,
)
from sim.fuzz.line_coverage import LineCoverage
from sim.fuzz.schema import ActionError
from sim.fuzz.targets import DEVICE_TARGETS, LINKS, TARGETS, make_target
from sim.hil_commands import _address, _passkey

DEFAULT_ITERATIONS = 20_000
DEVICE_EPISODE_LENGTH = 8  # a device's failing sequence shrinks in a few dozen replays
DEVICE_SHRINK_BUDGET = 25
UNITS = {"s": 1, "m": 60, "h": 3600}


class Duration(click.ParamType):
    """Seconds, or a number with s, m or h."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        scale = UNITS.get(text[-1:])
        try:
            seconds = float(text[:-1] if scale else text) * (scale or 1)
        except ValueError:
            seconds = -1.0
        if not seconds > 0 or seconds == float("inf"):
            self.fail(f"{value!r} is not a duration (600, 600s, 10m, 2h)", param, ctx)
        return seconds


def _bad(message: str) -> None:
    click.echo(f"cgmsim fuzz: {message}", err=True)
    sys.exit(2)


@click.command("fuzz")
@click.option("--target", help="What to fuzz: decoder, transmitter or receiver.")
@click.option(
    "--link",
    type=click.Choice(["memory", "ble"]),
    default="memory",
    show_default=True,
    help="memory: the cores directly (fast); ble: over bumble's in-process BLE link on a "
    "virtual clock, a paired rogue client against the transmitter's GATT server or a "
    "rogue GATT server against the receiver (hundreds of iterations per second).",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    help=f"Inputs to try [default: {DEFAULT_ITERATIONS:,}, or no limit with --max-duration].",
)
@click.option(
    "--max-duration",
    "max_duration",
    type=Duration(),
    help="A time budget (600, 600s, 10m, 2h): the campaign ends when it is spent, or after "
    "--iterations if that comes first.",
)
@click.option(
    "--seed-corpus",
    "seed_corpus",
    multiple=True,
    type=click.Path(path_type=pathlib.Path),
    help="Seed the campaign from a cgmsim recording (simulate --record, the HIL commands, an "
    "imported capture) or a fuzz reproducer, or a directory of them; repeatable. Their "
    "values are mutated, and reproducers of this target are played first.",
)
@click.option(
    "--coverage",
    "measure_coverage",
    is_flag=True,
    help="Report the lines of protocol/ and firmware/ the campaign reached (in the JSON: "
    "coverage); tracing slows the campaign down.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--corpus",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    help="Save each failure's shrunk reproducer (JSON) here.",
)
@click.option(
    "--replay",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="Run a saved reproducer again instead of a campaign.",
)
@click.option(
    "--atheris",
    "coverage_guided",
    is_flag=True,
    help="Coverage-guided (libFuzzer through atheris: pip install 'cgmsim[atheris]'), for long "
    "campaigns; libFuzzer prints its statistics and exits at the first failure.",
)
@click.option(
    "--transport",
    metavar="T",
    help="--target sensor|collector: the HCI transport of the campaign's own controller (usb:0, "
    "serial:/dev/ttyACM0,1000000,rtscts, tcp-client:HOST:PORT, ...); also for --replay of a "
    "device reproducer.",
)
@click.option("--address", help="The sensor's address (default: the first CGM advertiser).")
@click.option(
    "--passkey",
    default=f"{DEFAULT_PASSKEY:06d}",
    show_default=True,
    help="The passkey the device under test pairs with (LE Secure Connections, passkey entry).",
)
@click.option(
    "--rate",
    type=click.FloatRange(0, min_open=True),
    default=DEFAULT_RATE,
    show_default=True,
    help="At most this many requests (or rogue answers) a second to the device under test.",
)
@click.option(
    "--patience",
    "patience_s",
    type=click.FloatRange(0, min_open=True),
    default=DEFAULT_PATIENCE_S,
    show_default=True,
    metavar="S",
    help="A subscribed sensor under test must notify, a collector under test must link again, "
    "within S seconds.",
)
@click.option(
    "--speed",
    type=click.FloatRange(0, min_open=True),
    default=1.0,
    show_default=True,
    help="--target collector: the rogue sensor's session time runs X times faster (as the "
    "collector's --speed, for lab runs).",
)
@click.option(
    "--capture",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="Write the device campaign's HCI traffic here as a btsnoop capture [default: "
    "CORPUS/<target>-session.btsnoop with --corpus].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
def command(
    target: str | None,
    link: str,
    iterations: int | None,
    max_duration: float | None,
    seed_corpus: tuple[pathlib.Path, ...],
    measure_coverage: bool,
    seed: int,
    corpus: pathlib.Path | None,
    replay: pathlib.Path | None,
    coverage_guided: bool,
    transport: str | None,
    address: str | None,
    passkey: str,
    rate: float,
    patience_s: float,
    speed: float,
    capture: pathlib.Path | None,
    as_json: bool,
) -> None:
    """Fuzz the CGMS decoders, the transmitter or the receiver with generated and mutated
    frames, or a sensor or collector under test over an HCI transport; every failure is
    shrunk to a minimal reproducer."""
    device = None
    if transport is not None:
        if capture is None and corpus is not None and target in DEVICE_TARGETS:
            capture = corpus / f"{target}-session.btsnoop"
        device = DeviceOptions(
            transport,
            None if address is None else _option(_address, address, "--address"),
            _option(_passkey, passkey),
            rate,
            patience_s,
            capture,
            speed,
        )
    if replay is not None:
        _replay(replay, target, as_json, device)
        return
    if target is None:
        _bad("give --target decoder|transmitter|receiver|sensor|collector, or --replay FILE")
    if target in DEVICE_TARGETS:
        if device is None:
            _bad(f"--target {target} fuzzes a device under test: give its --transport")
        if coverage_guided or measure_coverage:
            _bad(f"--target {target} is a device elsewhere: no --atheris, no --coverage")
        link = "device"
    elif target not in TARGETS:
        known = ", ".join([*TARGETS, *DEVICE_TARGETS])
        _bad(f"--target {target!r} is not one of {known}")
    elif transport is not None:
        _bad(f"--transport is for --target sensor or collector, not {target}")
    if target not in LINKS[link]:
        _bad(f"--link {link} fuzzes {' and '.join(LINKS[link])}, not {target}")
    if coverage_guided and (as_json or measure_coverage):
        _bad("--atheris prints libFuzzer's statistics (its own coverage), not --json or --coverage")
    if iterations is None and max_duration is None:
        iterations = DEFAULT_ITERATIONS
    started = time.perf_counter()
    try:
        seeded = seeding.load(list(seed_corpus))
        pools = seeded.seeds(corpus_seeds()) if seed_corpus else None
        fuzzed = make_target(target, link, pools, device)
        episodes = seeded.episodes(fuzzed)
    except seeding.SeedError as error:
        _bad(f"--seed-corpus {error}")
    if link == "device":
        _device_campaign(fuzzed, iterations, seed, corpus, max_duration, episodes, as_json)
    setup = time.perf_counter() - started
    if coverage_guided:
        from sim.fuzz import coverage

        try:  # libFuzzer exits the process
            coverage.run(fuzzed, iterations, seed, corpus, max_duration, episodes)
        except RuntimeError as error:
            _bad(str(error))
    lines = LineCoverage() if measure_coverage else None
    with lines.tracing() if lines else contextlib.nullcontext():
        report = _campaign(fuzzed, iterations, seed, corpus, max_duration, episodes, setup)
    summary = report.to_json()
    if seed_corpus:
        summary["seed_corpus"] = seeded.summary()
    if lines is not None:
        summary["coverage"] = lines.figure()
    _summary(report, summary, as_json)


def _campaign(
    fuzzed: engine.Target,
    iterations: int | None,
    seed: int,
    corpus: pathlib.Path | None,
    max_duration: float | None,
    episodes: list[list[Any]],
    setup: float,
    **tuning: Any,
) -> engine.Report:
    """``engine.campaign``; a harness error is no finding (exit 2)."""
    try:
        return engine.campaign(
            fuzzed,
            iterations,
            seed,
            corpus,
            max_seconds=max_duration,
            seed_episodes=episodes,
            setup_seconds=setup,
            **tuning,
        )
    except engine.HarnessError as error:
        _bad(f"the harness failed, not the {fuzzed.name} (no finding): {error}")
        raise  # _bad exits


def _summary(report: engine.Report, summary: dict[str, Any], as_json: bool) -> None:
    seed = report.seed
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{report.target} ({report.link}): {report.iterations:,} iterations, "
            f"{report.crashes} crashes, "
            f"{report.hangs} hangs, {report.invariant_failures} invariant failures, "
            f"{report.unique_failures} unique, {report.iterations_per_second:,.0f}/s "
            f"(seed {seed}{', time budget spent' if report.stopped_by == 'max-duration' else ''})"
        )
        for name, reached in summary.get("coverage", {}).items():
            click.echo(
                f"  {name}: {reached['reached']:,} of {reached['lines']:,} lines reached "
                f"({reached['percent']} %)"
            )
        for failure in report.failures:
            where = f" -> {failure['path']}" if "path" in failure else ""
            click.echo(
                f"  {failure['failure']['signature']}: {failure['failure']['message']} "
                f"({len(failure['actions'])} actions){where}"
            )
    sys.exit(1 if report.failures else 0)


def _option(parse: Callable[..., Any], value: str, *args: str) -> Any:
    try:
        return parse(value, *args)
    except click.BadParameter as error:
        _bad(error.format_message())


def _device_campaign(
    fuzzed: Any,
    iterations: int | None,
    seed: int,
    corpus: pathlib.Path | None,
    max_duration: float | None,
    episodes: list[list[Any]],
    as_json: bool,
) -> None:
    """A campaign against a device under test: its link opened first (a device that cannot be
    reached is exit 2), short episodes, shrinking against the device."""
    started = time.perf_counter()
    with _reaching(fuzzed):
        setup = time.perf_counter() - started
        report = _campaign(
            fuzzed,
            iterations,
            seed,
            corpus,
            max_duration,
            episodes,
            setup,
            episode_length=DEVICE_EPISODE_LENGTH,
            hang_seconds=fuzzed.hang_seconds,
            shrink_budget=DEVICE_SHRINK_BUDGET,
        )
    summary = report.to_json()
    summary["device"] = fuzzed.describe()
    _summary(report, summary, as_json)


@contextlib.contextmanager
def _reaching(fuzzed: Any) -> Iterator[None]:
    from bumble.core import BaseBumbleError

    from sim.hil import TransportProblem

    try:
        try:
            fuzzed.open()
        except (TransportProblem, TimeoutError, OSError, BaseBumbleError) as error:
            _bad(f"cannot reach the {fuzzed.name} under test: {error or type(error).__name__}")
        yield
    finally:
        fuzzed.close()


def _replay(
    path: pathlib.Path, target: str | None, as_json: bool, device: DeviceOptions | None
) -> None:
    try:
        entry = engine.load(path)
    except ValueError as error:
        _bad(str(error))
    name, link = entry.get("target"), entry.get("link", "memory")
    if not isinstance(link, str) or link not in LINKS:
        _bad(f"{path}: link: unknown link {link!r} (one of {', '.join(LINKS)})")
    if not isinstance(name, str) or name not in LINKS[link]:
        known = ", ".join(LINKS[link])
        _bad(f"{path}: target: unknown target {name!r} over link {link} (one of {known})")
    if target is not None and target != name:
        _bad(f"{path} is a {name} reproducer, not {target}")
    if link == "device" and device is None:
        _bad(f"{path} is a reproducer of a {name} under test: give its --transport")
    fuzzed = make_target(name, link, device=device)
    try:
        engine.check(fuzzed, entry)
        if link == "device":
            with _reaching(fuzzed):
                failure = engine.replay(fuzzed, entry, fuzzed.hang_seconds)
        else:
            failure = engine.replay(fuzzed, entry)
    except (ActionError, engine.HarnessError) as error:
        _bad(f"{path}: {error}")
    result: dict[str, Any] = {
        "replayed": str(path),
        "target": name,
        "link": link,
        "seed": entry.get("seed"),
        "fails": failure is not None,
        "failure": None
        if failure is None
        else {"kind": failure.kind, "signature": failure.signature, "message": failure.message},
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif failure is None:
        click.echo(f"{path}: no longer fails")
    else:
        click.echo(f"{path}: still fails: {failure.signature}: {failure.message}")
    sys.exit(1 if failure is not None else 0)
