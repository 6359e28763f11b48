"""The recording file: JSON lines, gzip-compressed when the name ends in ``.gz``.

Line 1, the header::

    {"format": "cgmsim-recording", "version": 1, "cgmsim": "0.1.0", "profile": "g7",
     "seed": 1, "link": "memory", "settings": {...}}

Then one line per input that crossed a core's boundary, in the order the cores got them::

    {"t": 300000, "core": "tx", "in": "sample", "raw_counts": 5210, "state": 0,
     "out": [{"type": "Notify", "uuid": 10919, "value": "0e43..."}]}

``t`` is the session time in ms (the ``now_ms`` of the call), ``core`` is ``rx`` (receiver) or
``tx`` (transmitter), ``in`` the input (a core's ``start`` line carries what rebuilds it), its
arguments (bytes as hex), and ``out`` the events the core emitted for it. The last line,
``{"end": {"inputs": N}}``, tells a whole recording from a truncated one.

A reader of format version ``FORMAT_VERSION`` reads every older version and refuses newer ones.
"""

from __future__ import annotations

import gzip
import io
import json
import pathlib
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

FORMAT = "cgmsim-recording"
FORMAT_VERSION = 1
_SEPARATORS = (",", ":")


class RecordingError(Exception):
    """A recording that cannot be read: truncated, corrupted, or of a newer format."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def project_version() -> str:
    from importlib import metadata  # here: it costs an import for every run that never records

    try:
        return metadata.version("cgmsim")
    except metadata.PackageNotFoundError:
        return "unknown"


def header(link: str, profile: str, seed: int | None, settings: dict[str, Any]) -> dict[str, Any]:
    """A recording's first line. ``settings``: what else made the run (JSON values)."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "cgmsim": project_version(),
        "profile": profile,
        "seed": seed,
        "link": link,
        "settings": settings,
    }


def _open_text(path: pathlib.Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        # mtime 0: the same run makes the same bytes (goldens stay unchanged when regenerated)
        raw = gzip.GzipFile(path, mode + "b", mtime=0)
        return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
    return path.open(mode, encoding="utf-8", newline="\n")


class RecordingWriter:
    """Writes one recording: the header at once, a line per ``write``, the end line on
    ``close`` (a run that dies before leaves a file that reads as truncated)."""

    def __init__(self, stream: IO[str], first_line: dict[str, Any]) -> None:
        self.stream = stream
        self.inputs = 0
        self._write(first_line)

    @classmethod
    def create(cls, path: pathlib.Path | str, first_line: dict[str, Any]) -> RecordingWriter:
        return cls(_open_text(pathlib.Path(path), "w"), first_line)

    def _write(self, record: dict[str, Any]) -> None:
        # a line at a time: a run killed mid-way (a hardware run, ended however) leaves every
        # input up to then, and another process can follow a live run
        self.stream.write(json.dumps(record, separators=_SEPARATORS) + "\n")
        self.stream.flush()

    def write(self, record: dict[str, Any]) -> None:
        """One input line."""
        self.inputs += 1
        self._write(record)

    def close(self) -> None:
        if not self.stream.closed:
            self._write({"end": {"inputs": self.inputs}})
            self.stream.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:  # no end line: the file says it is incomplete
            self.stream.close()


def _lines(path: pathlib.Path) -> Iterator[tuple[int, str]]:
    number = 0
    try:
        with _open_text(path, "r") as stream:
            for number, line in enumerate(stream, 1):
                yield number, line
    except (EOFError, gzip.BadGzipFile, UnicodeDecodeError, OSError) as error:
        detail = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise RecordingError(number + 1, f"unreadable ({detail}): truncated or corrupted") from None


def read_header(number: int, line: str) -> dict[str, Any]:
    try:
        first = json.loads(line)
    except json.JSONDecodeError:
        first = None
    if not isinstance(first, dict) or first.get("format") != FORMAT:
        raise RecordingError(number, f"not a {FORMAT} header")
    version = first.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecordingError(number, f"bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise RecordingError(
            number,
            f"format version {version} is newer than this cgmsim reads ({FORMAT_VERSION}); "
            "upgrade cgmsim to replay it",
        )
    return first


def read(path: pathlib.Path | str) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]:
    """The header and the input lines (numbered from 1 as in the file). ``RecordingError``
    names the line of whatever is wrong: not JSON, not an input line, a newer format, the end
    line missing (truncated) or disagreeing with the lines read."""
    lines = _lines(pathlib.Path(path))
    first = next(lines, None)
    if first is None:
        raise RecordingError(1, "empty file, no header")
    head = read_header(*first)
    records: list[tuple[int, dict[str, Any]]] = []
    end: tuple[int, Any] | None = None
    last = first[0]
    for number, line in lines:
        last = number
        if end is not None:
            raise RecordingError(number, "a line after the end line")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise RecordingError(
                number, f"not JSON ({error.msg}): truncated or corrupted"
            ) from None
        if not isinstance(record, dict):
            raise RecordingError(number, "not a JSON object")
        if "end" in record:
            end = (number, record["end"])
            continue
        t, core, out = record.get("t"), record.get("core"), record.get("out")
        if isinstance(t, bool) or not isinstance(t, int) or core not in ("rx", "tx"):
            raise RecordingError(number, "not an input line (needs an integer t and core rx|tx)")
        if not isinstance(record.get("in"), str) or not isinstance(out, list):
            raise RecordingError(number, "not an input line (needs in and an out list)")
        records.append((number, record))
    if end is None:
        raise RecordingError(
            last + 1, f"the file ends after line {last} without its end line: truncated"
        )
    number, summary = end
    if not isinstance(summary, dict) or summary.get("inputs") != len(records):
        raise RecordingError(number, f"the end line does not count the {len(records)} input lines")
    return head, records
