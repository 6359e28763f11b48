"""Which ATT handles are the CGM service's characteristics and their CCCDs.

Learnt from the capture's own GATT discovery (Core Vol 3 Part G §4.4-4.7: Read By Group Type or
Find By Type Value for the primary service 0x181F, Read By Type for the characteristic
declarations 0x2803, Find Information for the descriptors, CCCD 0x2902), or given with
``--handles`` when the capture starts after discovery:

    --handles measurement=0x0010/0x0011,racp=0x001b/0x001c,socp=0x001e/0x001f,status=0x0015

Each item is ``NAME=VALUE_HANDLE[/CCCD_HANDLE]``; NAME is a characteristic as ``cgmsim decode``
names it (measurement, feature, status, session-start-time, session-run-time, racp, socp, or
its UUID); handles in decimal or 0x-hex. A notifying or indicating characteristic given without
its CCCD gets VALUE_HANDLE + 1 (where GATT servers put it, right after the value). Items given
override what discovery found; discovery fills in the rest.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from protocol.cgms import gatt
from sim.capture.att_stream import AttPdu

# ATT opcodes (Core Vol 3 Part F §3.4.8)
FIND_INFORMATION_RSP = 0x05
FIND_BY_TYPE_VALUE_REQ = 0x06
FIND_BY_TYPE_VALUE_RSP = 0x07
READ_BY_TYPE_RSP = 0x09
READ_BY_GROUP_TYPE_RSP = 0x11
PRIMARY_SERVICE = 0x2800
CHARACTERISTIC_DECLARATION = 0x2803
_BASE_UUID_TAIL = bytes.fromhex("fb349b5f80000080001000")  # little-endian, after the 16 bits
_BY_UUID = {c.uuid: c for c in gatt.CHARACTERISTICS}
_BY_NAME = {c.name: c for c in gatt.CHARACTERISTICS}
_SUBSCRIBABLE = gatt.Property.NOTIFY | gatt.Property.INDICATE


class HandlesError(ValueError):
    """A ``--handles`` value that does not parse (the message names the item)."""


def uuid16(raw: bytes) -> int | None:
    """A 16-bit UUID from its 2-byte or 16-byte (Bluetooth base) little-endian form."""
    if len(raw) == 2:
        return int(struct.unpack("<H", raw)[0])
    if len(raw) == 16 and raw[:12] == _BASE_UUID_TAIL + b"\x00" and raw[14:] == b"\x00\x00":
        return int(struct.unpack_from("<H", raw, 12)[0])
    return None


@dataclass
class CgmsHandles:
    """value handle -> characteristic UUID; CCCD handle -> the UUID of its characteristic."""

    values: dict[int, int] = field(default_factory=dict)
    cccds: dict[int, int] = field(default_factory=dict)
    given: frozenset[int] = frozenset()  # UUIDs fixed by --handles (discovery leaves them)
    service: tuple[int, int] | None = None  # the service's handle range, once discovered
    _find_by_type: bool = False  # the last Find By Type Value asked for the CGM service

    def __bool__(self) -> bool:
        return bool(self.values)

    def learn(self, pdu: AttPdu) -> None:
        """Take what a discovery PDU tells (any other PDU is ignored)."""
        match pdu.opcode:
            case 0x06:  # Find By Type Value Request: remember what it looks for
                self._find_by_type = (
                    len(pdu.params) >= 8
                    and struct.unpack_from("<H", pdu.params, 4)[0] == PRIMARY_SERVICE
                    and uuid16(pdu.params[6:]) == gatt.CGM_SERVICE
                )
            case 0x07 if self._find_by_type and len(pdu.params) >= 4:
                self.service = struct.unpack_from("<HH", pdu.params)
            case 0x11 if pdu.params:
                self._group_type(pdu.params)
            case 0x09 if pdu.params:
                self._declarations(pdu.params)
            case 0x05 if pdu.params:
                self._descriptors(pdu.params)

    def _entries(self, params: bytes) -> list[bytes]:
        size = params[0]
        body = params[1:]
        if size == 0:
            return []
        return [body[i : i + size] for i in range(0, len(body) - size + 1, size)]

    def _group_type(self, params: bytes) -> None:
        for entry in self._entries(params):
            if len(entry) >= 6 and uuid16(entry[4:]) == gatt.CGM_SERVICE:
                self.service = struct.unpack_from("<HH", entry)

    def _inside(self, handle: int) -> bool:
        return self.service is None or self.service[0] <= handle <= self.service[1]

    def _declarations(self, params: bytes) -> None:
        for entry in self._entries(params):
            if len(entry) < 7:
                continue
            handle, _properties, value_handle = struct.unpack_from("<HBH", entry)
            uuid = uuid16(entry[5:])
            if uuid in _BY_UUID and uuid not in self.given and self._inside(handle):
                self.values = {h: u for h, u in self.values.items() if u != uuid}
                self.values[value_handle] = uuid

    def _descriptors(self, params: bytes) -> None:
        width = 2 if params[0] == 1 else 16
        body = params[1:]
        for i in range(0, len(body) - width - 1, width + 2):
            handle = struct.unpack_from("<H", body, i)[0]
            if uuid16(body[i + 2 : i + 2 + width]) != gatt.CCCD:
                continue
            owners = [h for h in self.values if h < handle]
            if owners:
                uuid = self.values[max(owners)]
                if uuid not in self.given:
                    self.cccds = {h: u for h, u in self.cccds.items() if u != uuid}
                    self.cccds[handle] = uuid


def _handle(text: str, item: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise HandlesError(f"--handles item {item!r}: {text!r} is not a handle") from None
    if not 1 <= value <= 0xFFFF:
        raise HandlesError(f"--handles item {item!r}: handle {value} is not in 1..0xFFFF")
    return value


def _characteristic(name: str, item: str) -> gatt.Characteristic:
    key = name.strip().lower()
    if key in _BY_NAME:
        return _BY_NAME[key]
    try:
        return _BY_UUID[int(key.removeprefix("0x"), 16)]
    except (ValueError, KeyError):
        names = ", ".join(_BY_NAME)
        raise HandlesError(f"--handles item {item!r}: {name!r} is none of {names}") from None


def parse_handles(text: str) -> CgmsHandles:
    """``--handles`` as ``CgmsHandles`` (the syntax is in this module's docstring)."""
    handles = CgmsHandles()
    given: set[int] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, where = item.partition("=")
        if not equals:
            raise HandlesError(f"--handles item {item!r}: expected NAME=HANDLE[/CCCD]")
        characteristic = _characteristic(name, item)
        value_text, slash, cccd_text = where.partition("/")
        value = _handle(value_text, item)
        handles.values[value] = characteristic.uuid
        if slash:
            handles.cccds[_handle(cccd_text, item)] = characteristic.uuid
        elif characteristic.properties & _SUBSCRIBABLE:
            handles.cccds[value + 1] = characteristic.uuid
        given.add(characteristic.uuid)
    if not given:
        raise HandlesError("--handles is empty: expected NAME=HANDLE[/CCCD],...")
    handles.given = frozenset(given)
    return handles
