"""``cgmsim import CAPTURE --out FILE --side sensor|collector [--handles ...] [--speed X]``.

Exit 0: the recording is written (a one-line summary, or ``--json``); 2: the capture cannot be
read, holds no CGM traffic, or ``--handles`` does not parse (one line on stderr; nothing is
written).
"""

from __future__ import annotations

import json
import pathlib

import click

from firmware.profiles import PROFILES
from sim.capture.cgms_handles import HandlesError, parse_handles
from sim.capture.hci_files import CaptureError
from sim.capture.importer import SIDES, write_recording


@click.command("import")
@click.argument("capture", type=click.Path(path_type=pathlib.Path))
@click.option(
    "--out", type=click.Path(path_type=pathlib.Path), required=True, help="The recording to write."
)
@click.option(
    "--side",
    type=click.Choice(SIDES),
    required=True,
    help="sensor: what the sensor sent drives our receiver, whose requests are compared with "
    "the captured collector's; collector: what the collector asked drives our transmitter, "
    "whose answers, notifications and indications are compared with the captured sensor's.",
)
@click.option(
    "--handles",
    default=None,
    help="When the capture starts after GATT discovery: NAME=HANDLE[/CCCD],... e.g. "
    "measurement=0x10/0x11,racp=0x1b/0x1c,socp=0x1e/0x1f,status=0x15",
)
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default="g7", show_default=True)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="The capture is of a lab run at --speed X (cgmsim transmitter/receiver): the 30 s "
    "RACP procedure timeout lasts X times longer in session time, as in that run.",
)
@click.option("--json", "as_json", is_flag=True, help="The summary as JSON on stdout.")
def command(
    capture: pathlib.Path,
    out: pathlib.Path,
    side: str,
    handles: str | None,
    profile: str,
    speed: float,
    as_json: bool,
) -> None:
    """Import a btsnoop or pcap/pcapng HCI CAPTURE of a CGM sensor and its collector as a
    recording of one side, for ``cgmsim replay --check``."""
    if not capture.is_file():
        raise click.ClickException(f"{capture}: no such file")  # one line, exit 2 (sim.cli)
    try:
        known = parse_handles(handles) if handles is not None else None
        partial = out.with_name(out.name + ".partial")
        summary = write_recording(capture, partial, side, profile, known, speed)
    except HandlesError as error:
        raise click.ClickException(str(error)) from None
    except CaptureError as error:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"{capture}: {error}") from None
    partial.replace(out)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f"imported {summary['inputs']} inputs and {summary['expected_outputs']} expected "
            f"outputs of the {side} side (frames {summary['frames'][0]}-{summary['frames'][1]}, "
            f"session minutes {summary['session_min'][0]:g}-{summary['session_min'][1]:g}) "
            f"to {out}"
        )
