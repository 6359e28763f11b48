"""The lines of a recording imported from a capture: each input with the capture frame it
came from (``frame``: number and timestamp) and the outputs expected after it, each with its
frame (``out_frames``), as ``sim.recording.replay`` reads them."""

from __future__ import annotations

from typing import Any

from sim.capture.exchanges import Exchange, Frame
from sim.recording.codec import event_json


def _frame(frame: Frame) -> list[int | float]:
    return [frame.number, round(frame.time_s, 6)]


class Lines:
    """Builds the recording's lines: inputs, each with the outputs expected after it."""

    def __init__(self, core: str) -> None:
        self.core = core
        self.lines: list[dict[str, Any]] = []

    def input(self, t: int, frame: Frame, name: str, **args: Any) -> None:
        line = {"t": t, "core": self.core, "in": name, **args, "frame": _frame(frame)}
        self.lines.append({**line, "out": [], "out_frames": []})

    def expect(self, event: object, frame: Frame) -> None:
        self.expect_json(event_json(event), frame)

    def expect_json(self, event: dict[str, Any], frame: Frame) -> None:
        last = self.lines[-1]
        last["out"].append(event)
        last["out_frames"].append(_frame(frame))


def first_frame(items: list[Exchange]) -> Frame:
    return min((item.frame for item in items), key=lambda frame: frame.number)
