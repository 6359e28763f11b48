"""The receiver's screen on a terminal: drawn in place, keys read without blocking.

``Keys(fd)`` puts a terminal in cbreak mode (termios: no echo, no line buffering, Ctrl-C still
interrupts) while it is open and restores its settings on close, also when Ctrl-C or an error
ends the program. ``Screen(stream, keys)`` draws ``sim.screen.view`` on ``stream`` with plain
VT100/ANSI sequences: home, erase to end of line, erase below; each frame inside a synchronized
update (DEC mode 2026, ignored by terminals without it) so it never shows half drawn.
"""

from __future__ import annotations

import os
import select
import termios
import time
import tty
from collections.abc import Iterable
from typing import Any, Protocol, TextIO

from firmware.receiver.alerts import AlertName
from firmware.receiver.receiver import Receiver
from sim.screen.view import ACK_KEY, LinkState, View, most_urgent_unacknowledged

CSI = "\x1b["
BEGIN_FRAME, END_FRAME = f"{CSI}?2026h", f"{CSI}?2026l"  # synchronized update
HIDE_CURSOR, SHOW_CURSOR = f"{CSI}?25l", f"{CSI}?25h"
HOME, CLEAR, ERASE_LINE, ERASE_BELOW = f"{CSI}H", f"{CSI}2J", f"{CSI}K", f"{CSI}J"
DEFAULT_SIZE = (80, 24)


class KeySource(Protocol):
    def read(self) -> str:
        """The keys typed since the last call, without waiting."""

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a key; True as soon as one is there."""


class Keys:
    """Keys typed on the terminal ``fd`` (module docstring). Not a terminal: no keys."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list[Any] | None = None

    def __enter__(self) -> Keys:
        if os.isatty(self.fd):
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def wait(self, seconds: float) -> bool:
        if self._saved is None:
            time.sleep(max(seconds, 0.0))
            return False
        ready, _, _ = select.select([self.fd], [], [], max(seconds, 0.0))
        return bool(ready)

    def read(self) -> str:
        if self._saved is None:
            return ""
        typed = b""
        while self.wait(0):
            chunk = os.read(self.fd, 64)
            if not chunk:
                break
            typed += chunk
        return typed.decode(errors="replace")


class Screen:
    """The receiver's screen on ``stream``; ``keys`` (or None: no keyboard) are read at each
    ``update``. Close it (or use it as a context manager) to show the cursor again below it."""

    def __init__(self, stream: TextIO, keys: KeySource | None = None, title: str = "cgmsim"):
        self.stream, self.keys = stream, keys
        self.view = View(title)
        self._drawn = 0  # lines on the screen (0: nothing drawn yet)
        self._typed = ""

    def __enter__(self) -> Screen:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def size(self) -> tuple[int, int]:
        """(columns, rows) of the terminal, or 80 x 24 when it does not say."""
        try:
            cols, rows = os.get_terminal_size(self.stream.fileno())
        except (OSError, ValueError, AttributeError):
            return DEFAULT_SIZE
        return (cols, rows) if cols > 0 and rows > 0 else DEFAULT_SIZE

    def wait(self, seconds: float) -> None:
        """Pass ``seconds`` of wall time, or less if a key is typed (pacing a run)."""
        if self.keys is None:
            time.sleep(max(seconds, 0.0))
        elif self.keys.wait(seconds):
            self._typed += self.keys.read()

    def update(
        self, now_ms: int, receiver: Receiver, link: LinkState, events: Iterable[dict[str, Any]]
    ) -> list[AlertName]:
        """Take the receiver's new ``events`` (events.jsonl records), draw the screen at
        ``now_ms`` and return the alerts the user asked to acknowledge since the last update
        (the acknowledge key, once per press: the most urgent alert not yet acknowledged). The
        caller passes them to the receiver core's acknowledge input and updates again: when
        there are some, nothing is drawn (the screen would show them still unacknowledged)."""
        self.view.add(events)
        typed, self._typed = self._typed + (self.keys.read() if self.keys else ""), ""
        wanted: list[AlertName] = []
        for key in typed:
            if key.lower() == ACK_KEY:
                alert = most_urgent_unacknowledged(receiver, wanted)
                if alert is not None:
                    wanted.append(alert)
        if wanted:
            return wanted
        cols, rows = self.size()
        # one column spare: a character in the last column leaves the cursor waiting to wrap,
        # and terminals differ on what erasing the line does then
        self.draw(self.view.render(now_ms, receiver, link, cols - 1, rows))
        return []

    def draw(self, lines: list[str]) -> None:
        """Replace what is on the screen with ``lines``, in place."""
        start = HOME if self._drawn else HIDE_CURSOR + CLEAR + HOME
        body = (ERASE_LINE + "\r\n").join(lines) + ERASE_LINE + ERASE_BELOW
        self.stream.write(BEGIN_FRAME + start + body + END_FRAME)
        self.stream.flush()
        self._drawn = max(len(lines), 1)

    def close(self) -> None:
        """Leave the last frame on the screen with the cursor below it, visible again (a frame
        cut short by Ctrl-C is ended first)."""
        if self._drawn:
            self.stream.write(f"{END_FRAME}{CSI}0m{CSI}{self._drawn};1H\r\n{SHOW_CURSOR}")
            self.stream.flush()
            self._drawn = 0
