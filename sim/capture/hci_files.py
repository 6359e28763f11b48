"""HCI capture files: btsnoop and pcap/pcapng with a Bluetooth HCI link type, read into
``HciPacket``s (one per record, numbered from 1 as Wireshark/tshark number frames).

Formats read:

- btsnoop (RFC 1761 layout, Symbian/Android/bumble/btmon): datalink 1001 (HCI without a
  packet-type byte, the flags' bit 1 telling commands/events from data), 1002 (H4, a packet-type
  byte first: Android's ``btsnoop_hci.log``, bumble's ``BtSnooper``) and 2001 (the Linux
  monitor format ``btmon -w`` writes: the flags hold the monitor opcode).
- pcap (classic, micro- or nanosecond) and pcapng (SHB/IDB/EPB/SPB, either byte order) with
  link type 187 (LINKTYPE_BLUETOOTH_HCI_H4), 201 (LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR: a 4-byte
  big-endian direction, 0 sent / 1 received, then H4; what tshark writes from a btsnoop file)
  or 254 (LINKTYPE_BLUETOOTH_LINUX_MONITOR: adapter and opcode, 2 bytes each, big-endian).
  Link types from https://www.tcpdump.org/linktypes.html.

Any other file, a truncated record or an unknown link type is a ``CaptureError`` naming the
frame and what was wrong.
"""

from __future__ import annotations

import enum
import pathlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass


class CaptureError(ValueError):
    """A capture file that cannot be read (its message says where and why)."""


class Kind(enum.Enum):
    COMMAND = "command"
    ACL = "acl"
    EVENT = "event"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class HciPacket:
    frame: int  # 1-based record number, as tshark's frame.number
    time_s: float  # the capture's timestamp (its own clock; seconds)
    kind: Kind
    sent: bool | None  # host -> controller; None where the format does not say (DLT 187)
    data: bytes  # the HCI packet without its packet-type byte


_H4 = {1: Kind.COMMAND, 2: Kind.ACL, 4: Kind.EVENT}
# Linux monitor opcodes (BlueZ src/shared/btsnoop.h): kind and direction
_MONITOR = {
    2: (Kind.COMMAND, True),
    3: (Kind.EVENT, False),
    4: (Kind.ACL, True),
    5: (Kind.ACL, False),
}
BTSNOOP_MAGIC = b"btsnoop\x00"
BTSNOOP_EPOCH_US = 0x00DCDDB30F2F8000  # 0 AD to 1970, in microseconds (btsnoop's time base)
LINKTYPE_H4 = 187
LINKTYPE_H4_WITH_PHDR = 201
LINKTYPE_MONITOR = 254
_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


def read_packets(path: pathlib.Path | str) -> list[HciPacket]:
    """Every HCI packet of the capture at ``path``, in file order."""
    data = pathlib.Path(path).read_bytes()
    try:
        if data.startswith(BTSNOOP_MAGIC):
            return list(_btsnoop(data))
        if data[:4] in _PCAP_MAGIC:
            return list(_pcap(data))
        if data.startswith(_PCAPNG_SHB):
            return list(_pcapng(data))
    except struct.error as error:  # a field read past the end of its block or record
        raise CaptureError(f"a block or record is cut short ({error})") from None
    raise CaptureError("not a btsnoop, pcap or pcapng file (unknown magic number)")


def _h4(frame: int, time_s: float, sent: bool | None, data: bytes) -> HciPacket:
    if not data:
        raise CaptureError(f"frame {frame}: empty H4 packet")
    return HciPacket(frame, time_s, _H4.get(data[0], Kind.OTHER), sent, data[1:])


def _monitor(frame: int, time_s: float, opcode: int, data: bytes) -> HciPacket:
    kind, sent = _MONITOR.get(opcode, (Kind.OTHER, None))
    return HciPacket(frame, time_s, kind, sent, data)


def _btsnoop(data: bytes) -> Iterator[HciPacket]:
    if len(data) < 16:
        raise CaptureError("btsnoop header is cut short")
    _version, datalink = struct.unpack_from(">II", data, 8)
    if datalink not in (1001, 1002, 2001):
        raise CaptureError(f"btsnoop datalink {datalink} is not HCI (1001, 1002 or 2001)")
    offset, frame = 16, 0
    while offset < len(data):
        frame += 1
        if offset + 24 > len(data):
            raise CaptureError(f"frame {frame}: record header cut short (truncated file)")
        _orig, length, flags, _drops, stamp = struct.unpack_from(">IIIIq", data, offset)
        offset += 24
        body = data[offset : offset + length]
        if len(body) != length:
            raise CaptureError(f"frame {frame}: record says {length} bytes, file has {len(body)}")
        offset += length
        time_s = (stamp - BTSNOOP_EPOCH_US) / 1e6
        if datalink == 2001:
            yield _monitor(frame, time_s, flags & 0xFFFF, body)
            continue
        received = bool(flags & 1)
        if datalink == 1002:
            yield _h4(frame, time_s, not received, body)
        else:  # 1001: bit 1 set for commands and events
            kind = (Kind.EVENT if received else Kind.COMMAND) if flags & 2 else Kind.ACL
            yield HciPacket(frame, time_s, kind, not received, body)


def _linktype_packet(frame: int, time_s: float, linktype: int, body: bytes) -> HciPacket:
    if linktype == LINKTYPE_H4:
        return _h4(frame, time_s, None, body)
    if linktype == LINKTYPE_H4_WITH_PHDR:
        if len(body) < 5:
            raise CaptureError(f"frame {frame}: shorter than its direction header")
        return _h4(frame, time_s, struct.unpack_from(">I", body)[0] == 0, body[4:])
    if len(body) < 4:
        raise CaptureError(f"frame {frame}: shorter than its monitor header")
    return _monitor(frame, time_s, struct.unpack_from(">H", body, 2)[0], body[4:])


def _check_linktype(linktype: int) -> None:
    if linktype not in (LINKTYPE_H4, LINKTYPE_H4_WITH_PHDR, LINKTYPE_MONITOR):
        raise CaptureError(
            f"link type {linktype} is not Bluetooth HCI (187 H4, 201 H4 with direction, "
            f"254 Linux monitor)"
        )


def _pcap(data: bytes) -> Iterator[HciPacket]:
    order, unit = _PCAP_MAGIC[data[:4]]
    if len(data) < 24:
        raise CaptureError("pcap header is cut short")
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    _check_linktype(linktype)
    offset, frame = 24, 0
    while offset < len(data):
        frame += 1
        if offset + 16 > len(data):
            raise CaptureError(f"frame {frame}: record header cut short (truncated file)")
        seconds, fraction, length, _orig = struct.unpack_from(order + "IIII", data, offset)
        offset += 16
        body = data[offset : offset + length]
        if len(body) != length:
            raise CaptureError(f"frame {frame}: record says {length} bytes, file has {len(body)}")
        offset += length
        yield _linktype_packet(frame, seconds + fraction * unit, linktype, body)


def _pcapng(data: bytes) -> Iterator[HciPacket]:
    order = "<"
    interfaces: list[tuple[int, float]] = []  # (link type, seconds per timestamp unit)
    offset, frame = 0, 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise CaptureError(f"block at byte {offset}: cut short (truncated file)")
        if data[offset : offset + 4] == _PCAPNG_SHB:
            magic = data[offset + 8 : offset + 12]
            order = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
            interfaces = []
        kind, length = struct.unpack_from(order + "II", data, offset)
        if length < 12 or offset + length > len(data):
            raise CaptureError(f"block at byte {offset}: says {length} bytes (truncated file)")
        body = data[offset + 8 : offset + length - 4]
        offset += length
        if kind == 1:  # Interface Description Block
            linktype = struct.unpack_from(order + "H", body)[0]
            interfaces.append((linktype, _tsresol(order, body[8:])))
        elif kind in (3, 6):  # Simple / Enhanced Packet Block
            frame += 1
            if kind == 6:
                interface, high, low, captured = struct.unpack_from(order + "IIII", body)
                packet = body[20 : 20 + captured]
                stamp = (high << 32) | low
            else:
                interface, stamp = 0, 0
                packet = body[4:]
            if interface >= len(interfaces):
                raise CaptureError(f"frame {frame}: interface {interface} is not described")
            linktype, unit = interfaces[interface]
            _check_linktype(linktype)
            yield _linktype_packet(frame, stamp * unit, linktype, packet)


def _tsresol(order: str, options: bytes) -> float:
    """The interface's timestamp unit (option if_tsresol, code 9; default microseconds)."""
    offset = 0
    while offset + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, offset)
        if code == 0:
            break
        if code == 9 and length >= 1:
            value = options[offset + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
        offset += 4 + (length + 3) // 4 * 4
    return 1e-6
