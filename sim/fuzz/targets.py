"""The fuzz targets by name (``cgmsim fuzz --target``)."""

from __future__ import annotations

from sim.fuzz.decoder import DecoderTarget
from sim.fuzz.engine import Target
from sim.fuzz.receiver import ReceiverTarget
from sim.fuzz.transmitter import TransmitterTarget

TARGETS = {
    "decoder": DecoderTarget,
    "transmitter": TransmitterTarget,
    "receiver": ReceiverTarget,
}


def make_target(name: str) -> Target:
    return TARGETS[name]()
