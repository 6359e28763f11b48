"""``cgmsim population``: a population study of virtual patients, each wearing a sensor for a
session on the memory link, on Dask. Exit 0: done; 2: bad input (one line on stderr)."""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any, NoReturn

import click

from sim.population.cluster import MAX_BATCH
from sim.population.names import COHORTS, JSON_NAME, PNG_NAME
from sim.progress import progress_bar

# 10 days, the labelled sensor life (grace left out). 200 such sessions took 278 s on 2 worker
# processes in batches of 16 on a 2-core machine shared with other jobs; bench/population.py
# measures the rate.
DEFAULT_DAYS = 10.0


def _bad(message: str) -> NoReturn:
    click.echo(f"cgmsim population: {message}", err=True)
    sys.exit(2)


class _OneLineErrors(click.Command):
    """Run standalone (tests, ``python -m``), a usage error is one line on stderr and exit 2,
    as under the ``cgmsim`` group."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.pop("standalone_mode", None)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.ClickException as error:
            _bad(error.format_message())


@click.command("population", cls=_OneLineErrors)
@click.option(
    "--patients",
    type=click.IntRange(1, 100_000),
    default=30,
    show_default=True,
    help="Sessions, one virtual patient each, the cohort's published patients in turn.",
)
@click.option(
    "--cohort",
    type=click.Choice(COHORTS),
    default="all",
    show_default=True,
    help="all: adolescents, adults and children mixed as published (10 each).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Local Dask worker processes (default: every core); 0 runs in this process, no Dask.",
)
@click.option("--threads", is_flag=True, help="Local Dask workers are threads, not processes.")
@click.option("--scheduler", metavar="ADDRESS", help="Use an existing Dask cluster instead.")
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=None,
    help=f"Sessions per task, their physiology vectorised together (default: shared evenly over "
    f"the workers, at most {MAX_BATCH}); the numbers are the same for any size.",
)
@click.option(
    "--days",
    type=click.FloatRange(0.5, 30),
    default=DEFAULT_DAYS,
    show_default=True,
    help="Simulated days per session.",
)
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--profile", type=click.Choice(["g7", "g6"]), default="g7", show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=pathlib.Path("out/population"),
    show_default=True,
)
@click.option("--no-plot", is_flag=True, help=f"Do not write {PNG_NAME}.")
@click.option("--json", "as_json", is_flag=True, help=f"Print {JSON_NAME} on stdout.")
def command(
    patients: int,
    cohort: str,
    workers: int | None,
    threads: bool,
    scheduler: str | None,
    batch: int | None,
    days: float,
    seed: int,
    profile: str,
    out: pathlib.Path,
    no_plot: bool,
    as_json: bool,
) -> None:
    """Run a population study: per virtual patient physiology -> sensor -> transmitter ->
    memory link -> receiver; then alert performance per alert type (true alert rate, detection
    rate, false alerts per day, against the reference glucose), accuracy and times in ranges,
    written to --out as population.json and population.png. The same seed gives the same
    numbers whatever the workers."""
    from sim.population.cluster import Runner, default_workers
    from sim.population.study import run_study, write_outputs

    if scheduler is not None and (workers is not None or threads):
        _bad("--scheduler uses an existing cluster: give it without --workers/--threads")
    if threads and workers == 0:
        _bad("--threads needs local workers (--workers 0 runs without Dask)")
    runner = Runner(
        workers=default_workers() if workers is None else workers,
        threads=threads,
        scheduler=scheduler,
        batch=batch,
    )
    try:
        with progress_bar(f"{patients} patient sessions") as advance:
            data = run_study(
                patients,
                days=days,
                seed=seed,
                profile=profile,
                cohort=cohort,
                runner=runner,
                progress=advance,
            )
    except OSError as error:  # the scheduler cannot be reached
        _bad(f"cannot reach the Dask scheduler {scheduler}: {error}")
    try:
        write_outputs(out, data, plot=not no_plot)
    except OSError as error:
        _bad(f"cannot write to {out}: {error.strerror}")
    if as_json:
        click.echo(json.dumps(data))
    else:
        _print(data, out)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _print(data: dict[str, Any], out: pathlib.Path) -> None:
    click.echo(
        f"{data['sessions']} sessions ({data['cohort']}), {data['monitored_days']:.1f} monitored "
        f"days, {data['runner']}, {data['wall_seconds']:.1f} s"
    )
    click.echo(f"{'alert':<16}{'alerts':>8}{'true':>10}{'events':>8}{'detected':>10}{'false/d':>9}")
    for name, p in data["alert_performance"].items():
        per_day = p["false_alerts_per_day"]
        click.echo(
            f"{name:<16}{p['alerts']:>8}{_rate(p['true_alert_rate']):>10}{p['events']:>8}"
            f"{_rate(p['detection_rate']):>10}{'-' if per_day is None else f'{per_day:.2f}':>9}"
        )
    a = data["anchor"]
    click.echo(
        f"Urgent Low Soon detection {_rate(a['urgent_low_soon_detection_rate'])}; warned within "
        f"30 min before < 70: {_rate(a['warned_before_below_70_rate'])} "
        f"(published {a['published_percent']:.0f} %)"
    )
    acc = data["accuracy"]
    if acc is not None:
        click.echo(
            f"MARD {acc['mard']:.1f} %, %15/15 {acc['within_15_15']:.1f}, "
            f"%20/20 {acc['within_20_20']:.1f} ({acc['pairs']} pairs)"
        )
    ref = data["time_in_ranges"]["reference"]
    if ref is not None:
        click.echo(
            f"reference: {ref['time_in_range_70_180']:.1f} % in 70-180, "
            f"{ref['time_below_70']:.1f} % < 70, {ref['time_above_180']:.1f} % > 180"
        )
    for group, entry in data["by_group"].items():
        m = entry["reference_session_medians"]
        if m is not None:
            click.echo(
                f"{group} (median session): {m['time_in_range_70_180']:.0f} % in 70-180, "
                f"{m['time_below_70']:.1f} % < 70, {m['time_below_54']:.1f} % < 54, "
                f"{m['time_above_250']:.1f} % > 250, mean {m['mean_mgdl']:.0f} mg/dL, "
                f"CV {m['cv_percent']:.0f} %"
            )
    click.echo(f"lowest reference glucose {data['reference_min_mgdl']:.0f} mg/dL")
    click.echo(f"wrote {out / JSON_NAME}")
