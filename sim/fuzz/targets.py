"""The fuzz targets by name (``cgmsim fuzz --target``) and link (``--link``)."""

from __future__ import annotations

from collections.abc import Callable

from sim.fuzz.corpus import Seeds
from sim.fuzz.decoder import DecoderTarget
from sim.fuzz.engine import Target
from sim.fuzz.receiver import ReceiverTarget
from sim.fuzz.transmitter import TransmitterTarget

TARGETS: dict[str, Callable[..., Target]] = {
    "decoder": DecoderTarget,
    "transmitter": TransmitterTarget,
    "receiver": ReceiverTarget,
}


def _ble_transmitter(seeds: Seeds | None = None) -> Target:
    from sim.fuzz.ble_transmitter import BleTransmitterTarget  # bumble: only when asked

    return BleTransmitterTarget(seeds=seeds)


def _ble_receiver(seeds: Seeds | None = None) -> Target:
    from sim.fuzz.ble_receiver import BleReceiverTarget

    return BleReceiverTarget(seeds=seeds)


BLE_TARGETS: dict[str, Callable[..., Target]] = {
    "transmitter": _ble_transmitter,
    "receiver": _ble_receiver,
}
LINKS = {"memory": TARGETS, "ble": BLE_TARGETS}


def make_target(name: str, link: str = "memory", seeds: Seeds | None = None) -> Target:
    """The target ``name`` over ``link``; ``seeds``: its seed values (the project's when
    None)."""
    make = LINKS[link][name]
    return make() if seeds is None else make(seeds=seeds)
