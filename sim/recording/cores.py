"""Recording wrappers: a core behind a proxy that writes every input and its outputs.

``RecordingReceiver(core, writer)`` and ``RecordingTransmitter(core, writer)`` take the place
of the core they wrap for any driver or link (memory, BLE, hardware): the input methods go to
the core and are written with their ``now_ms`` and the events the core emitted for them;
``next_event()`` hands those events on in the same order; everything else (``get_timer()``,
``store``, ``alerts``, ``snapshot()``...) is the core's own. The cores stay as they are.

Wrap a core as soon as it is made: the wrapper's ``start`` line rebuilds it from its config and
``snapshot()`` (a receiver) or its config and factory calibration (a transmitter). A receiver
made with ``Receiver.restore(config, state, now_ms)`` is wrapped with ``restored_from=state``,
so that replay restores it from the same state (and sees the same phase change, if any).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from firmware.events import GattInput, SensorSample
from firmware.receiver.alerts import AlertName
from firmware.receiver.receiver import Receiver
from firmware.transmitter.server import Transmitter
from sim.recording.codec import event_json, to_json
from sim.recording.fileformat import RecordingWriter


class _Recording:
    _core_name = ""

    def __init__(self, core: Any, writer: RecordingWriter) -> None:
        self.core = core
        self._writer = writer
        self._out: deque[Any] = deque()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["core"], name)

    def _log(self, name: str, now_ms: int, args: dict[str, Any]) -> None:
        out = []
        while (event := self.core.next_event()) is not None:
            out.append(event)
        self._out.extend(out)
        record = {"t": now_ms, "core": self._core_name, "in": name, **args}
        record["out"] = [event_json(event) for event in out]
        self._writer.write(record)

    def next_event(self) -> Any:
        return self._out.popleft() if self._out else None

    def get_timer(self) -> int | None:
        return self.core.get_timer()

    def handle_timer(self, now_ms: int) -> None:
        self.core.handle_timer(now_ms)
        self._log("handle_timer", now_ms, {})


class RecordingReceiver(_Recording):
    """A ``Receiver`` whose inputs and outputs are written to ``writer``."""

    _core_name = "rx"

    def __init__(
        self,
        core: Receiver,
        writer: RecordingWriter,
        *,
        restored_from: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(core, writer)
        state = core.snapshot() if restored_from is None else restored_from
        self._log("start", core.now_ms, {"config": to_json(core.config), "state": state})

    def connected(self, now_ms: int) -> None:
        self.core.connected(now_ms)
        self._log("connected", now_ms, {})

    def disconnected(self, now_ms: int, reason: str = "") -> None:
        self.core.disconnected(now_ms, reason)
        self._log("disconnected", now_ms, {"reason": reason})

    def response(self, uuid: int, value: bytes | None, error: int | None, now_ms: int) -> None:
        self.core.response(uuid, value, error, now_ms)
        hexed = None if value is None else bytes(value).hex()
        self._log("response", now_ms, {"uuid": uuid, "value": hexed, "error": error})

    def notification(self, uuid: int, value: bytes, now_ms: int) -> None:
        self.core.notification(uuid, value, now_ms)
        self._log("notification", now_ms, {"uuid": uuid, "value": bytes(value).hex()})

    def indication(self, uuid: int, value: bytes, now_ms: int) -> None:
        self.core.indication(uuid, value, now_ms)
        self._log("indication", now_ms, {"uuid": uuid, "value": bytes(value).hex()})

    def acknowledge(self, alert: AlertName, now_ms: int) -> None:
        self.core.acknowledge(alert, now_ms)
        self._log("acknowledge", now_ms, {"alert": alert.value})


class RecordingTransmitter(_Recording):
    """A ``Transmitter`` whose inputs and outputs are written to ``writer``."""

    _core_name = "tx"

    def __init__(self, core: Transmitter, writer: RecordingWriter) -> None:
        super().__init__(core, writer)
        start = {
            "config": to_json(core.config),
            "factory": to_json(core.factory),
            "session": core.session is not None,
        }
        self._log("start", core.powered_on_ms, start)

    def receive(self, event: GattInput, now_ms: int) -> None:
        self.core.receive(event, now_ms)
        self._log("receive", now_ms, {"event": event_json(event)})

    def sample(self, sample: SensorSample, now_ms: int) -> None:
        self.core.sample(sample, now_ms)
        self._log("sample", now_ms, {"raw_counts": sample.raw_counts, "state": int(sample.state)})
