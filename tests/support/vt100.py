"""A small VT100/ANSI terminal for tests: feed it what a program wrote to its terminal, read
the screen back as lines of text.

It keeps a ``cols`` x ``rows`` grid and a cursor and follows the sequences a full-screen program
draws with: printable characters (with auto-wrap at the right margin), CR, LF (scrolling at the
bottom), BS, CSI ``H``/``f`` (cursor position), ``A``/``B``/``C``/``D`` (moves), ``J`` (erase in
display 0/1/2), ``K`` (erase in line 0/1/2); SGR (``m``) and other modes are accepted and have no
effect on the text. The end of a synchronized update (``CSI ? 2026 l``) takes a snapshot of the
screen: ``frames`` holds one per frame drawn.
"""

from __future__ import annotations

import re

_CSI = re.compile(r"\x1b\[([?]?)([0-9;]*)([@-~])")


class Terminal:
    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.grid = [[" "] * cols for _ in range(rows)]
        self.row = self.col = 0
        self.wrap_pending = False
        self.frames: list[list[str]] = []
        self._partial = ""  # an escape sequence cut between two feeds

    def lines(self) -> list[str]:
        return ["".join(cells).rstrip() for cells in self.grid]

    def feed(self, text: str) -> None:
        text, self._partial = self._partial + text, ""
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                match = _CSI.match(text, i)
                if match is None:
                    if len(text) - i < 16 and not re.search(r"[@-~]", text[i + 2 :]):
                        self._partial = text[i:]  # wait for the rest
                        return
                    i += 2 if i + 1 < len(text) else 1  # an escape we do not follow
                    continue
                self._csi(match.group(1), match.group(2), match.group(3))
                i = match.end()
                continue
            if ch == "\r":
                self.col, self.wrap_pending = 0, False
            elif ch == "\n":
                self._line_feed()
            elif ch == "\b":
                self.col, self.wrap_pending = max(self.col - 1, 0), False
            elif ch >= " ":
                self._put(ch)
            i += 1

    def _put(self, ch: str) -> None:
        if self.wrap_pending:
            self.col, self.wrap_pending = 0, False
            self._line_feed()
        self.grid[self.row][self.col] = ch
        if self.col == self.cols - 1:
            self.wrap_pending = True
        else:
            self.col += 1

    def _line_feed(self) -> None:
        self.wrap_pending = False
        if self.row == self.rows - 1:
            self.grid.pop(0)
            self.grid.append([" "] * self.cols)
        else:
            self.row += 1

    def _csi(self, private: str, params: str, final: str) -> None:
        numbers = [int(p) if p else 0 for p in params.split(";")] if params else []

        def arg(k: int, default: int) -> int:
            return numbers[k] if len(numbers) > k and numbers[k] else default

        if private:
            if final == "l" and 2026 in numbers:
                self.frames.append(self.lines())
            return
        self.wrap_pending = False
        if final in "Hf":
            self.row = min(arg(0, 1), self.rows) - 1
            self.col = min(arg(1, 1), self.cols) - 1
        elif final == "A":
            self.row = max(self.row - arg(0, 1), 0)
        elif final == "B":
            self.row = min(self.row + arg(0, 1), self.rows - 1)
        elif final == "C":
            self.col = min(self.col + arg(0, 1), self.cols - 1)
        elif final == "D":
            self.col = max(self.col - arg(0, 1), 0)
        elif final == "K":
            mode, line = arg(0, 0), self.grid[self.row]
            span = {0: range(self.col, self.cols), 1: range(0, self.col + 1)}.get(
                mode, range(self.cols)
            )
            for c in span:
                line[c] = " "
        elif final == "J":
            mode = arg(0, 0)
            if mode == 0:
                self._csi("", "0", "K")
                rows = range(self.row + 1, self.rows)
            elif mode == 1:
                self._csi("", "1", "K")
                rows = range(0, self.row)
            else:
                rows = range(self.rows)
            for r in rows:
                self.grid[r] = [" "] * self.cols
