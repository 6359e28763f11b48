"""The lines of ``protocol/`` and ``firmware/`` a campaign reached, without atheris: a
``sys.settrace`` tracer that follows only frames of those two packages (every other frame is
left untraced after its call event), for ``cgmsim fuzz --coverage``.

Lines are counted inside functions only (what a module or class body runs at import is not a
fuzzer's doing): the executable lines of a package are the lines of every function's code object
in its source files, the first (``def``) line left out, as it is of the lines reached.
"""

from __future__ import annotations

import pathlib
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import firmware
import protocol

PACKAGES = {"protocol": protocol, "firmware": firmware}
_FUNCTION = 0x02  # CO_NEWLOCALS: a function's code object, not a module's or a class body's


def _root(package: types.ModuleType) -> pathlib.Path:
    return pathlib.Path(package.__file__ or "").resolve().parent


def _function_lines(code: types.CodeType) -> Iterator[int]:
    if code.co_flags & _FUNCTION:
        for _, _, line in code.co_lines():
            if line is not None and line != code.co_firstlineno:
                yield line
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _function_lines(const)


def executable_lines(root: pathlib.Path) -> dict[str, set[int]]:
    """The lines inside functions of every module under ``root``, by file name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        code = compile(path.read_text(), str(path), "exec")
        found[str(path)] = set(_function_lines(code))
    return found


class LineCoverage:
    """Lines reached in ``PACKAGES`` while :meth:`tracing` is active (cumulative)."""

    def __init__(self) -> None:
        self.roots = {name: _root(package) for name, package in PACKAGES.items()}
        self.prefixes = tuple(f"{root}/" for root in self.roots.values())
        self.reached: dict[str, set[int]] = {}
        self._followed: dict[types.CodeType, Any] = {}

    def _call(self, frame: types.FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        local = self._followed.get(code, False)
        if local is False:
            local = None
            if code.co_filename.startswith(self.prefixes):
                lines = self.reached.setdefault(code.co_filename, set())

                def local(frame: types.FrameType, event: str, arg: Any) -> Any:
                    if event == "line":
                        lines.add(frame.f_lineno)
                    return local

            self._followed[code] = local
        return local

    @contextmanager
    def tracing(self) -> Iterator[None]:
        previous = sys.gettrace()
        sys.settrace(self._call)
        threading.settrace(self._call)
        try:
            yield
        finally:
            sys.settrace(previous)
            threading.settrace(previous)  # type: ignore[arg-type]

    def figure(self) -> dict[str, dict[str, float | int]]:
        """``{package: {"lines": total, "reached": n, "percent": p}}``."""
        result = {}
        for name, root in self.roots.items():
            total = reached = 0
            for path, lines in executable_lines(root).items():
                total += len(lines)
                reached += len(lines & self.reached.get(path, set()))
            percent = round(100 * reached / total, 1) if total else 0.0
            result[name] = {"lines": total, "reached": reached, "percent": percent}
        return result
