"""The fuzz targets by name (``cgmsim fuzz --target``) and link (``--link``)."""

from __future__ import annotations

from collections.abc import Callable

from sim.fuzz.corpus import Seeds
from sim.fuzz.decoder import DecoderTarget
from sim.fuzz.device_options import DeviceOptions
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


def _sensor(seeds: Seeds | None = None, device: DeviceOptions | None = None) -> Target:
    from sim.fuzz.device import SensorUnderTest

    if device is None:
        raise ValueError("a device under test needs its transport")
    return SensorUnderTest(device, seeds=seeds)


def _collector(seeds: Seeds | None = None, device: DeviceOptions | None = None) -> Target:
    from sim.fuzz.device_collector import CollectorUnderTest

    if device is None:
        raise ValueError("a device under test needs its transport")
    return CollectorUnderTest(device, seeds=seeds)


DEVICE_TARGETS: dict[str, Callable[..., Target]] = {"sensor": _sensor, "collector": _collector}
LINKS = {"memory": TARGETS, "ble": BLE_TARGETS, "device": DEVICE_TARGETS}


def make_target(
    name: str,
    link: str = "memory",
    seeds: Seeds | None = None,
    device: DeviceOptions | None = None,
) -> Target:
    """The target ``name`` over ``link``; ``seeds``: its seed values (the project's when
    None); ``device``: where a device under test is (``link`` "device")."""
    make = LINKS[link][name]
    if link == "device":
        return make(seeds=seeds, device=device)
    return make() if seeds is None else make(seeds=seeds)
