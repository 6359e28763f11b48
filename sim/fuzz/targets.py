"""The fuzz targets by name (``cgmsim fuzz --target``) and link (``--link``)."""

from __future__ import annotations

from collections.abc import Callable

from sim.fuzz.decoder import DecoderTarget
from sim.fuzz.engine import Target
from sim.fuzz.receiver import ReceiverTarget
from sim.fuzz.transmitter import TransmitterTarget

TARGETS: dict[str, Callable[[], Target]] = {
    "decoder": DecoderTarget,
    "transmitter": TransmitterTarget,
    "receiver": ReceiverTarget,
}


def _ble_transmitter() -> Target:
    from sim.fuzz.ble_transmitter import BleTransmitterTarget  # bumble: only when asked

    return BleTransmitterTarget()


def _ble_receiver() -> Target:
    from sim.fuzz.ble_receiver import BleReceiverTarget

    return BleReceiverTarget()


BLE_TARGETS: dict[str, Callable[[], Target]] = {
    "transmitter": _ble_transmitter,
    "receiver": _ble_receiver,
}
LINKS = {"memory": TARGETS, "ble": BLE_TARGETS}


def make_target(name: str, link: str = "memory") -> Target:
    return LINKS[link][name]()
