"""``cgmsim fuzz --seed-corpus FILE``: a campaign seeded from the user's own files.

Two kinds of file are taken:

- a cgmsim recording (``sim.recording.fileformat``: ``cgmsim simulate --record``, the HIL
  commands' recordings, or a capture imported into one): every value that crossed a core's
  boundary on a CGMS characteristic (writes, read answers, notifications, indications) joins
  the pool of seed values the generators pick and mutate, by characteristic;
- a fuzz reproducer (``sim.fuzz.engine``): its hex values join the pools too, and when it was
  made for the campaign's target and link, its actions are played as the campaign's first
  episodes (checked first, as ``--replay`` checks them).

A directory stands for the recordings and reproducers in it. A file that is neither is refused
with one line (``SeedError``).
"""

from __future__ import annotations

import pathlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sim.fuzz import corpus, engine
from sim.fuzz.schema import ActionError
from sim.recording.fileformat import RecordingError, read

SUFFIXES = (".json", ".jsonl", ".gz")


class SeedError(ValueError):
    """A seed file that cannot be used; the message names it."""


@dataclass
class SeedFiles:
    """What the files gave: values by characteristic name, and reproducers' episodes."""

    values: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    reproducers: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0

    def episodes(self, target: engine.Target) -> list[list[engine.Action]]:
        """The actions of the reproducers made for ``target`` (and its link), checked."""
        link = getattr(target, "link", "memory")
        found = []
        for entry in self.reproducers:
            if entry.get("target") != target.name or entry.get("link", "memory") != link:
                continue
            try:
                engine.check(target, entry)
            except ActionError as error:
                raise SeedError(f"{entry['path']}: {error}") from None
            found.append([list(action) for action in entry["actions"]])
        return found

    def seeds(self, base: corpus.Seeds) -> corpus.Seeds:
        """``base`` with these values added (new ones only, in the order found)."""
        merged = {name: list(values) for name, values in base.by_name.items()}
        for name, values in self.values.items():
            merged.setdefault(name, []).extend(values)
        return corpus.Seeds(
            {name: tuple(dict.fromkeys(v for v in values if v)) for name, values in merged.items()}
        )

    def summary(self) -> dict[str, int]:
        return {
            "files": self.files,
            "values": sum(len(set(values)) for values in self.values.values()),
            "reproducers": len(self.reproducers),
        }


def load(paths: list[pathlib.Path]) -> SeedFiles:
    found = SeedFiles()
    for path in _expand(paths):
        found.files += 1
        try:
            entry = engine.load(path)
        except ValueError:
            _recording(path, found)
            continue
        entry["path"] = str(path)
        found.reproducers.append(entry)
        for action in entry["actions"]:
            _reproducer_values(action, found, path)
    return found


def _expand(paths: list[pathlib.Path]) -> list[pathlib.Path]:
    files = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
            if not inside:
                raise SeedError(f"{path}: no recordings or reproducers (*.json, *.jsonl) in it")
            files += inside
        elif path.is_file():
            files.append(path)
        else:
            raise SeedError(f"{path}: no such file or directory")
    return files


def _recording(path: pathlib.Path, found: SeedFiles) -> None:
    try:
        _, records = read(path)
    except RecordingError as error:
        raise SeedError(
            f"{path}: neither a fuzz reproducer nor a cgmsim recording ({error})"
        ) from None
    for number, record in records:
        _walk(record, found, f"{path}: line {number}")


def _walk(value: Any, found: SeedFiles, where: str) -> None:
    """Every ``{"uuid": <a CGMS characteristic>, "value": "<hex>"}`` in a recording line."""
    if isinstance(value, list):
        for item in value:
            _walk(item, found, where)
        return
    if not isinstance(value, dict):
        return
    uuid, data = value.get("uuid"), value.get("value")
    if isinstance(uuid, int) and uuid in corpus.NAME_OF and isinstance(data, str):
        try:
            found.values[corpus.NAME_OF[uuid]].append(bytes.fromhex(data))
        except ValueError:
            raise SeedError(f"{where}: value {data!r} is not hex") from None
    for item in value.values():
        if isinstance(item, dict | list):
            _walk(item, found, where)


def _reproducer_values(action: Any, found: SeedFiles, path: pathlib.Path) -> None:
    """The hex values of one action, by the characteristic they were for, where it says."""
    if not isinstance(action, list) or not action:
        return
    name = None
    if action[0] in corpus.UUID_OF:  # a decoder's action: [codec name, mode, value]
        name = action[0]
    else:
        uuids = [item for item in action[1:] if isinstance(item, int) and item in corpus.NAME_OF]
        name = corpus.NAME_OF[uuids[0]] if uuids else None
    if name is None:
        return
    for item in action[1:]:
        if isinstance(item, str) and item.startswith("hex:"):
            try:
                found.values[name].append(bytes.fromhex(item[4:]))
            except ValueError:
                raise SeedError(f"{path}: {item!r} is not valid hex") from None
