"""Replay: another driver of the cores, fed from a recording instead of a link.

Each core is rebuilt from its ``start`` line, then every recorded input is given to it at its
recorded time, in the recorded order; what the core emits for each input is compared with what
the recording says it emitted. The first difference is the divergence. No clock, no link, no
sensor model: a whole session replays in the time the cores take to run it.

An imported capture (``cgmsim import``; header link ``capture``) is compared as what crossed
the air: the core's GATT outputs (requests of a receiver; answers, notifications and
indications of a transmitter) in order against the captured device's, each expected output
carrying its capture frame. Events that never reach the air (readings shown, alerts, phases)
are not compared, but a frame the core rejects is a divergence at that frame (the captured
device sent it, our firmware refuses it). The core's own timers run between the inputs, as
any driver runs them.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware.profiles import MINUTE_MS
from firmware.receiver.alerts import AlertName
from firmware.receiver.receiver import Receiver, ReceiverConfig
from firmware.transmitter.algorithm import TREND_WINDOW_MIN, FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt, measurement
from protocol.errors import ProtocolError
from sim.recording import fileformat
from sim.recording.codec import CodecError, event_json, from_json, gatt_input, sensor_sample
from sim.recording.fileformat import RecordingError

CORE_NAMES = {"rx": "receiver", "tx": "transmitter"}
CAPTURE_LINK = "capture"  # the header link of an imported capture (sim.capture.importer)
# what a core emits that crosses the air, and so is in a capture
AIR_OUTPUTS = frozenset(
    {"ReadRequest", "WriteRequest", "SubscribeRequest", "Respond", "Notify", "Indicate"}
)
REJECTED = "FrameRejected"
# A capture holds a reading's glucose in whole mg/dL, the sensor's unrounded value being its
# own: a transmitter driven from a capture (sim.capture.transmitter_side) works from values up
# to 0.5 mg/dL off. What that can move (firmware.transmitter.algorithm): the Trend, a least-
# squares slope over the readings of TREND_WINDOW_MIN at the reading interval, by at most
# 0.5 * sum(|t - mean t|) / sum((t - mean t)^2), plus its 0.01 rounding on either side; the
# Quality, 100 % - 5 % per mg/dL of RMS residual, by 5 * 0.5 (a projection moves the residuals
# by no more than the values moved), plus its 0.1 rounding on either side.
_WINDOW_T = [i * 5 for i in range(TREND_WINDOW_MIN // 5 + 1)]
_MEAN_T = sum(_WINDOW_T) / len(_WINDOW_T)
TREND_TOLERANCE = (
    0.5 * sum(abs(t - _MEAN_T) for t in _WINDOW_T) / sum((t - _MEAN_T) ** 2 for t in _WINDOW_T)
    + 0.01
)
QUALITY_TOLERANCE = 5.0 * 0.5 + 0.1
_TIMER_STEPS = 100_000  # a core whose timer never moves on is stopped (and it is a divergence)


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first input after which a core's outputs differ from the recording's."""

    line: int
    t_ms: int
    core: str  # rx or tx
    what: str  # the input, e.g. "notification 0x2AA7 0e4301..."
    index: int  # which of that input's outputs (0-based)
    expected: dict[str, Any] | None  # None: the core emitted more than was recorded
    actual: dict[str, Any] | None  # None: the core emitted less
    frame: int | None = None  # an imported capture's frame the divergence is at
    frame_s: float | None = None  # that frame's capture timestamp (the capture's own clock)

    def message(self) -> str:
        where = (
            f"line {self.line}: at {self.t_ms} ms ({self.t_ms / MINUTE_MS:.2f} min) the "
            f"{CORE_NAMES[self.core]}'s {self.what}"
        )
        if self.frame is not None:
            where = f"capture frame {self.frame} ({self.frame_s} s), {where}"
        if self.actual is None:
            return f"{where}: expected {_show(self.expected)} but the core emitted nothing more"
        if self.expected is None:
            return f"{where}: emitted {_show(self.actual)}, which the recording does not have"
        differ = sorted(
            k
            for k in set(self.expected) | set(self.actual)
            if self.expected.get(k) != self.actual.get(k)
        )
        return (
            f"{where}: output {self.index + 1} differs in {', '.join(differ)}: "
            f"expected {_show(self.expected)}, actual {_show(self.actual)}"
        )


def _show(event: dict[str, Any] | None) -> str:
    return json.dumps(event, separators=(",", ":"))


@dataclass
class ReplayResult:
    header: dict[str, Any]
    inputs: dict[str, int] = field(default_factory=lambda: {"rx": 0, "tx": 0})
    outputs: int = 0
    end_ms: int = 0
    divergence: Divergence | None = None

    def summary(self) -> str:
        head = self.header
        drove = " and ".join(f"{CORE_NAMES[c]} ({n:,} inputs)" for c, n in self.inputs.items() if n)
        verdict = (
            f"DIVERGES: {self.divergence.message()}"
            if self.divergence is not None
            else f"identical: {self.outputs:,} outputs"
        )
        return (
            f"replayed {head.get('profile')} {self._origin()} ({self._link()}, "
            f"cgmsim {head.get('cgmsim')}) to {self.end_ms / MINUTE_MS:,.0f} min: "
            f"{drove or 'nothing'}; {verdict}"
        )

    def _origin(self) -> str:
        """The seed, or for a recording that has none (a hardware receiver does not know its
        sensor's seed) the role that was recorded."""
        seed, settings = self.header.get("seed"), self.header.get("settings") or {}
        if seed is not None:
            return f"seed {seed}"
        role = settings.get("role") if isinstance(settings, dict) else None
        return f"{role} (no seed: its sensor's)" if role else "(no seed recorded)"

    def _link(self) -> str:
        link, settings = self.header.get("link"), self.header.get("settings") or {}
        transport = settings.get("transport") if isinstance(settings, dict) else None
        return f"{link} link on {transport}" if transport else f"{link} link"

    def to_json(self) -> dict[str, Any]:
        divergence = self.divergence
        return {
            "identical": divergence is None,
            "profile": self.header.get("profile"),
            "seed": self.header.get("seed"),
            "link": self.header.get("link"),
            "recorded_with": self.header.get("cgmsim"),
            "format_version": self.header.get("version"),
            "inputs": dict(self.inputs),
            "outputs": self.outputs,
            "end_min": self.end_ms / MINUTE_MS,
            "divergence": None
            if divergence is None
            else {
                "line": divergence.line,
                "t_ms": divergence.t_ms,
                "core": CORE_NAMES[divergence.core],
                "input": divergence.what,
                "expected": divergence.expected,
                "actual": divergence.actual,
                "frame": divergence.frame,
                "frame_s": divergence.frame_s,
                "message": divergence.message(),
            },
        }


def _hex(value: Any) -> bytes:
    if not isinstance(value, str):
        raise CodecError(f"expected hex, got {value!r}")
    return bytes.fromhex(value)


def _uuid(record: dict[str, Any]) -> int:
    uuid = record.get("uuid")
    if type(uuid) is not int:
        raise CodecError(f"expected an integer uuid, got {uuid!r}")
    return uuid


def _feed(core: Any, record: dict[str, Any]) -> str:
    """Give ``core`` the input ``record`` holds; what it was, for messages."""
    name, now = record["in"], record["t"]
    match record["core"], name:
        case _, "handle_timer":
            core.handle_timer(now)
            return "timer"
        case "rx", "connected":
            core.connected(now)
            return "connection"
        case "rx", "disconnected":
            reason = from_json(str, record.get("reason", ""))
            core.disconnected(now, reason)
            return f"disconnection ({reason})"
        case "rx", "notification" | "indication":
            uuid, value = _uuid(record), _hex(record.get("value"))
            getattr(core, name)(uuid, value, now)
            return f"{name} 0x{uuid:04X} {value.hex()}"
        case "rx", "response":
            uuid = _uuid(record)
            value = from_json(bytes | None, record.get("value"))
            error = from_json(int | None, record.get("error"))
            core.response(uuid, value, error, now)
            shown = f"error 0x{error:02X}" if error is not None else (value or b"").hex()
            return f"response 0x{uuid:04X} {shown}"
        case "rx", "acknowledge":
            alert = from_json(AlertName, record.get("alert"))
            core.acknowledge(alert, now)
            return f"acknowledgement of {alert.value}"
        case "tx", "receive":
            event = gatt_input(record.get("event"))
            core.receive(event, now)
            return f"GATT input {_show(record['event'])}"
        case "tx", "sample":
            sample = sensor_sample(record.get("raw_counts"), record.get("state"))
            core.sample(sample, now)
            return f"sensor sample ({sample.raw_counts} counts, {sample.state.name})"
    raise CodecError(f"unknown {CORE_NAMES[record['core']]} input {name!r}")


def _start(record: dict[str, Any]) -> Any:
    now = record["t"]
    if record["core"] == "rx":
        config = from_json(ReceiverConfig, record.get("config"))
        state = record.get("state")
        if not isinstance(state, dict):
            raise CodecError("a receiver's start line needs its state")
        return Receiver.restore(config, state, now)
    config = from_json(TransmitterConfig, record.get("config"))
    factory = from_json(FactoryCalibration, record.get("factory"))
    return Transmitter(config, factory, now, start_session=from_json(bool, record.get("session")))


class _Diverged(Exception):
    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence.message())
        self.divergence = divergence


def _apply(
    cores: dict[str, Any],
    number: int,
    record: dict[str, Any],
    result: ReplayResult,
    before: Callable[[Any], None] | None = None,
) -> tuple[Any, str]:
    """Give a line's input to its core (a start line builds it; ``before`` runs first on an
    existing core); the core and what the input was. ``RecordingError`` for a bad line."""
    core_name = record["core"]
    try:
        if record["in"] == "start":
            cores[core_name] = core = _start(record)
            return core, "start"
        core = cores.get(core_name)
        if core is None:
            raise CodecError(f"an input to the {CORE_NAMES[core_name]} before its start")
        if before is not None:
            before(core)
        what = _feed(core, record)
        result.inputs[core_name] += 1
        return core, what
    except (CodecError, KeyError, TypeError, ValueError) as error:
        raise RecordingError(number, f"bad {record['in']!r} line: {error}") from None


def replay(path: pathlib.Path | str) -> ReplayResult:
    """Re-drive the recorded cores and compare; ``RecordingError`` when the file is
    truncated, corrupted or of a newer format (naming the line)."""
    head, records = fileformat.read(path)
    if head.get("link") == CAPTURE_LINK:
        return _replay_capture(head, records)
    result = ReplayResult(head)
    cores: dict[str, Any] = {}
    for number, record in records:
        core, what = _apply(cores, number, record, result)
        core_name = record["core"]
        result.end_ms = max(result.end_ms, record["t"])
        expected = record["out"]
        index = 0
        while (event := core.next_event()) is not None:
            actual = event_json(event)
            wanted = expected[index] if index < len(expected) else None
            if actual != wanted:
                result.divergence = Divergence(
                    number, record["t"], core_name, what, index, wanted, actual
                )
                return result
            index += 1
        if index < len(expected):
            result.divergence = Divergence(
                number, record["t"], core_name, what, index, expected[index], None
            )
            return result
        result.outputs += index
    return result


def _frame_of(value: Any) -> tuple[int | None, float | None]:
    if isinstance(value, list) and len(value) == 2:
        return value[0], value[1]
    return None, None


def _replay_capture(
    head: dict[str, Any], records: list[tuple[int, dict[str, Any]]]
) -> ReplayResult:
    """Replay an imported capture: outputs that cross the air, in order, frame by frame."""
    result = ReplayResult(head)
    cores: dict[str, Any] = {}
    expected: list[tuple[dict[str, Any], Any]] = []
    for number, record in records:
        frames = record.get("out_frames", [])
        if not isinstance(frames, list) or len(frames) != len(record["out"]):
            raise RecordingError(number, "out_frames does not match out")
        expected.extend(zip(record["out"], frames, strict=True))
    cursor = 0

    def compare(number: int, record: dict[str, Any], core: Any, what: str) -> Divergence | None:
        nonlocal cursor
        index = 0
        while (event := core.next_event()) is not None:
            actual = event_json(event)
            if actual["type"] not in AIR_OUTPUTS and actual["type"] != REJECTED:
                continue
            wanted, frame = expected[cursor] if cursor < len(expected) else (None, None)
            if actual["type"] == REJECTED or not _same_on_air(record["core"], wanted, actual):
                if actual["type"] == REJECTED or wanted is None:
                    frame = record.get("frame")
                    wanted = None if actual["type"] == REJECTED else wanted
                number_s = _frame_of(frame)
                return Divergence(
                    number, record["t"], record["core"], what, index, wanted, actual, *number_s
                )
            cursor += 1
            index += 1
            result.outputs += 1
        return None

    for number, record in records:

        def timers(core: Any, number: int = number, record: dict[str, Any] = record) -> None:
            """The core's own timers up to this input, as any driver runs them."""
            for _ in range(_TIMER_STEPS):
                due = core.get_timer()
                if due is None or due > record["t"]:
                    return
                core.handle_timer(due)
                divergence = compare(number, record, core, f"timer at {due} ms")
                if divergence is not None:
                    raise _Diverged(divergence)

        try:
            core, what = _apply(cores, number, record, result, before=timers)
        except _Diverged as diverged:
            result.divergence = diverged.divergence
            return result
        result.end_ms = max(result.end_ms, record["t"])
        divergence = compare(number, record, core, what)
        if divergence is not None:
            result.divergence = divergence
            return result
    number, record = records[-1]
    core = cores.get(record["core"])
    # the capture may end with what a timer asked after the last frame that told the time:
    # the core's timers run on, for at most one reading interval
    horizon = record["t"] + (core.config.profile.reading_interval_ms if core else 0)
    for _ in range(_TIMER_STEPS):
        due = None if core is None or cursor == len(expected) else core.get_timer()
        if due is None or due > horizon:
            break
        core.handle_timer(due)
        result.end_ms = max(result.end_ms, due)
        divergence = compare(number, record, core, f"timer at {due} ms")
        if divergence is not None:
            result.divergence = divergence
            return result
    if cursor < len(expected):
        wanted, frame = expected[cursor]
        result.divergence = Divergence(
            number, record["t"], record["core"], "last input", 0, wanted, None, *_frame_of(frame)
        )
    return result


def _same_on_air(core: str, wanted: dict[str, Any] | None, actual: dict[str, Any]) -> bool:
    """Whether a transmitter's output is the captured one: exactly, or, for a CGM Measurement,
    record by record with Trend and Quality within what whole mg/dL explain (the captured
    records must decode, their CRC included)."""
    if actual == wanted:
        return True
    if (
        core != "tx"
        or wanted is None
        or wanted.get("type") != actual["type"]
        or actual["type"] not in ("Notify", "Indicate")
        or wanted.get("uuid") != gatt.MEASUREMENT.uuid
        or actual.get("uuid") != gatt.MEASUREMENT.uuid
    ):
        return False
    try:
        theirs = measurement.decode(bytes.fromhex(wanted["value"]))
    except (ProtocolError, TypeError, ValueError):
        return False
    ours = measurement.decode(bytes.fromhex(actual["value"]))
    return len(theirs) == len(ours) and all(_close(a, b) for a, b in zip(theirs, ours, strict=True))


def _close(theirs: measurement.MeasurementRecord, ours: measurement.MeasurementRecord) -> bool:
    for name, tolerance in (("trend", TREND_TOLERANCE), ("quality", QUALITY_TOLERANCE)):
        a, b = getattr(theirs, name), getattr(ours, name)
        if (a is None) != (b is None):
            return False
        if a is None:
            continue
        numbers = isinstance(a, int | float) and isinstance(b, int | float)
        if not numbers or abs(a - b) > tolerance + 1e-9:
            return False
    rest = ("glucose", "time_offset", "status", "cal_temp", "warning")
    return all(getattr(theirs, name) == getattr(ours, name) for name in rest)
