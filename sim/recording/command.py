"""``cgmsim replay FILE [--check]``: re-drive the recorded cores and compare their outputs.

Exit 0: replayed (identical, or, without ``--check``, a divergence reported on stdout); 1: with
``--check``, the outputs diverge (the first divergence is named: line, time, input, expected
and actual event); 2: the file is missing, truncated, corrupted or of a newer format version
(one line on stderr naming the line).
"""

from __future__ import annotations

import json
import pathlib
import sys

import click

from sim.recording.fileformat import RecordingError
from sim.recording.replay import replay


def _bad(message: str) -> None:
    click.echo(f"cgmsim: error: {message}", err=True)
    sys.exit(2)


@click.command("replay")
@click.argument("file", type=click.Path(path_type=pathlib.Path))
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 on the first divergence (for CI); without it a divergence is only reported.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")
def command(file: pathlib.Path, check: bool, as_json: bool) -> None:
    """Replay a recording (``cgmsim simulate --record FILE``): feed every recorded input to
    freshly built cores in virtual time and compare what they emit with what was recorded."""
    if not file.is_file():
        _bad(f"{file}: no such file")
    try:
        result = replay(file)
    except RecordingError as error:
        _bad(f"{file}: {error}")
        return
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        click.echo(result.summary())
    if check and result.divergence is not None:
        sys.exit(1)
