"""Human-readable reports on the terminal (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sim.accuracy import StudyResult
from sim.metrics import ICGM_THRESHOLDS


def print_accuracy(
    profile: str, seed: int, result: StudyResult, console: Console | None = None
) -> None:
    console = console or Console()
    a = result.accuracy
    table = Table(
        title=f"Accuracy: {result.sensors} {profile} sensors, {result.days:g} days, seed {seed}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("pairs", f"{a.pairs:,}"),
        ("MARD", f"{a.mard:.2f} %"),
        ("MARD first 24 h / later", f"{_pct(result.first_day_mard)} / {_pct(result.later_mard)}"),
        ("MAD below 70 mg/dL", "-" if a.mad_below_70 is None else f"{a.mad_below_70:.1f} mg/dL"),
        ("bias", f"{a.bias_mgdl:+.1f} mg/dL"),
        ("within 15/15", f"{a.within_15_15:.1f} %"),
        ("within 20/20", f"{a.within_20_20:.1f} %"),
        ("within 30/30", f"{a.within_30_30:.1f} %"),
        ("within 40/40", f"{a.within_40_40:.1f} %"),
        ("Clarke A / B", f"{a.clarke['A']:.1f} / {a.clarke['B']:.1f} %"),
        ("Parkes A / B", f"{a.parkes['A']:.1f} / {a.parkes['B']:.1f} %"),
        ("sensors alive at 10 days", _share(result.survival_10_days, ".0f")),
        ("readings produced", _share(result.readings_produced, ".1f")),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    icgm = Table(title="FDA iCGM special controls (21 CFR 862.1355)")
    for column in ("", "value", "95 % lower bound", "limit", "pairs", "result"):
        icgm.add_column(column, justify="right")
    for letter, control in a.icgm.items():
        verdict = {True: "pass", False: "FAIL", None: "n/a"}[control.passed]
        icgm.add_row(
            letter,
            "-" if control.value is None else f"{control.value:.1f}",
            "-" if control.bound is None else f"{control.bound:.1f}",
            f"{ICGM_THRESHOLDS[letter]:g}",
            f"{control.n:,}",
            verdict,
        )
    console.print(icgm)


def _share(value: float | None, spec: str) -> str:
    """A share (0-1) as a percentage; n/a when the study cannot give it."""
    return "n/a" if value is None else f"{value * 100:{spec}} %"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def print_session(
    summary: dict, out: object, console: Console | None = None, plot: bool = True
) -> None:
    """The short human summary of a simulated session; ``plot``: session.png was written."""
    console = console or Console()
    readings, session = summary["readings"], summary["session"]
    table = Table(
        title=f"{summary['profile']} session, seed {summary['seed']}, {summary['link']} link"
    )
    table.add_column("")
    table.add_column("", justify="right")
    accuracy = summary["accuracy"]
    rows = [
        (
            "simulated",
            f"{session['simulated_min'] / 1440:.2f} days in {summary['wall_seconds']:.2f} s",
        ),
        (
            "warm-up ends / expiry",
            f"{session['warmup_end_min']:g} min / {session['expiry_min'] / 1440:g} d",
        ),
        ("readings generated", f"{readings['generated']:,}"),
        (
            "delivered live / backfilled",
            f"{readings['delivered_live']:,} / {readings['backfilled']:,}",
        ),
        ("lost / duplicates", f"{readings['lost']} / {readings['duplicates']}"),
        (
            "first / last displayed",
            f"{readings['first_displayed_min']} / {readings['last_displayed_min']} min",
        ),
        ("MARD vs reference", "-" if accuracy["mard"] is None else f"{accuracy['mard']:.1f} %"),
        ("alerts", ", ".join(f"{k} {v}" for k, v in summary["alerts"].items()) or "none"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    files = "summary.json, readings.csv, events.jsonl" + (", session.png" if plot else "")
    console.print(f"wrote {files} to {out}")
