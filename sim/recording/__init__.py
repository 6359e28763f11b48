"""Recording and replay (shared/design/architecture.md): every input that crosses a core's
boundary, with its session time and the outputs it caused, as versioned JSON lines
(``fileformat``); wrappers that record a core under any driver or link (``cores``); the replay
driver that feeds a recording back and compares (``replay``); ``cgmsim replay`` (``command``)."""

from sim.recording.cores import RecordingReceiver, RecordingTransmitter
from sim.recording.fileformat import FORMAT_VERSION, RecordingError, RecordingWriter, header

__all__ = [
    "FORMAT_VERSION",
    "RecordingError",
    "RecordingReceiver",
    "RecordingTransmitter",
    "RecordingWriter",
    "header",
]
