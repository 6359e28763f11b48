"""``cgmsim report`` and ``cgmsim export``: click command objects working on a run directory
written by ``cgmsim simulate`` (registered in ``sim.cli`` with ``cli.add_command``).

Both read only the files (summary.json, readings.csv, events.jsonl), so they work on any past
run. A missing or malformed file is bad input: one line on stderr and exit 2, also when a
command is run on its own outside the ``cgmsim`` group (``RunDirProblem.exit_code`` is 2).

Defaults where the contract is silent:

- ``report`` writes ``report.png`` and ``report.html`` into RUN_DIR, or into ``--out DIR``
  (created if needed); the HTML embeds ``session.png`` too when RUN_DIR has one. It prints one
  line naming what it wrote, or with ``--json`` the report's numbers as JSON on stdout.
- ``export`` writes to stdout unless ``--out FILE`` is given (``-`` is stdout as well).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import click

from sim.rundir.files import RunDirError, load_run


class RunDirProblem(click.ClickException):
    """A run directory that cannot be used: one line, exit code 2 (bad input, cli.md)."""

    exit_code = 2


def _load(run_dir: pathlib.Path) -> Any:
    try:
        return load_run(run_dir)
    except RunDirError as error:
        raise RunDirProblem(str(error)) from None


def _write(path: pathlib.Path, data: bytes | str) -> None:
    try:
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    except OSError as error:
        raise RunDirProblem(f"cannot write {path}: {error.strerror}") from None


_run_dir = click.argument(
    "run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False, path_type=pathlib.Path)
)


@click.command(name="report")
@_run_dir
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    help="Directory for report.png and report.html.  [default: RUN_DIR]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report's numbers as JSON.")
def report_command(run_dir: pathlib.Path, out: pathlib.Path | None, as_json: bool) -> None:
    """Write a session report of RUN_DIR: an ambulatory glucose profile (median, 25-75 and
    5-95 % bands by time of day), the consensus time-in-range table with mean glucose, GMI, CV
    and CGM active %, accuracy against the reference, and alert counts; as report.png and one
    self-contained report.html."""
    import io

    from sim.rundir.glycemia import summarise
    from sim.rundir.html_page import page
    from sim.rundir.plots import report_figure

    run = _load(run_dir)
    numbers = summarise(run)
    target = out if out is not None else run_dir
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirProblem(f"cannot write to {target}: {error.strerror}") from None
    buffer = io.BytesIO()
    report_figure(run, numbers).savefig(buffer, format="png")
    png = buffer.getvalue()
    session_png = run_dir / "session.png"
    session = session_png.read_bytes() if session_png.is_file() else None
    _write(target / "report.png", png)
    _write(target / "report.html", page(numbers, png, session))
    if as_json:
        click.echo(json.dumps(_plain(numbers)))
    else:
        click.echo(f"wrote report.png, report.html to {target}")


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python numbers, NaN to null."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


@click.command(name="export")
@_run_dir
@click.option("--nightscout", is_flag=True, help="Nightscout entries JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV of the displayed readings.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="File to write.  [default: stdout]",
)
def export_command(
    run_dir: pathlib.Path, nightscout: bool, as_csv: bool, out: pathlib.Path | None
) -> None:
    """Export the readings RUN_DIR's receiver displayed, as Nightscout entries JSON
    (--nightscout) or CSV (--csv). Either file feeds `cgmsim simulate --trace`."""
    from sim.rundir.export import nightscout_entries, readings_csv

    if nightscout == as_csv:
        raise click.UsageError("choose one format: --nightscout or --csv")
    run = _load(run_dir)
    try:
        if nightscout:
            text = json.dumps(nightscout_entries(run), indent=1) + "\n"
        else:
            text = readings_csv(run)
    except RunDirError as error:
        raise RunDirProblem(str(error)) from None
    if out is None or str(out) == "-":
        click.echo(text, nl=False)
    else:
        _write(out, text)
