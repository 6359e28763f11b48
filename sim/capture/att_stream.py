"""From HCI packets to the ATT conversation: ACL fragments reassembled into L2CAP frames, the
ATT channel (CID 0x0004) picked out, and the LE connections opened and closed around it.

Core spec references: HCI ACL data packets, Vol 4 Part E §5.4.2 (handle, packet boundary flag);
L2CAP basic header, Vol 3 Part A §3.1; ATT PDUs, Vol 3 Part F §3.4; the events read are
Disconnection Complete (0x05) and the LE Meta event (0x3E) subevents Connection Complete (0x01)
and Enhanced Connection Complete (0x0A, 0x29).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sim.capture.hci_files import CaptureError, HciPacket, Kind

ATT_CID = 0x0004
_DISCONNECTION_COMPLETE = 0x05
_LE_META = 0x3E
_LE_CONNECTION_COMPLETE = (0x01, 0x0A, 0x29)


@dataclass(frozen=True, slots=True)
class AttPdu:
    frame: int  # the frame that completed it (tshark shows a reassembled PDU there)
    time_s: float
    connection: int  # the HCI connection handle
    opcode: int
    params: bytes  # what follows the opcode


@dataclass(frozen=True, slots=True)
class LinkEvent:
    frame: int
    time_s: float
    connection: int
    up: bool  # True: connection complete; False: disconnection complete


def conversation(packets: list[HciPacket]) -> list[AttPdu | LinkEvent]:
    """The ATT PDUs and the connection events, in capture order."""
    out: list[AttPdu | LinkEvent] = []
    partial: dict[tuple[int, bool | None], bytearray] = {}
    for packet in packets:
        if packet.kind is Kind.EVENT:
            event = _link_event(packet)
            if event is not None:
                out.append(event)
                partial = {k: v for k, v in partial.items() if k[0] != event.connection}
        elif packet.kind is Kind.ACL:
            pdu = _acl(packet, partial)
            if pdu is not None:
                out.append(pdu)
    return out


def _link_event(packet: HciPacket) -> LinkEvent | None:
    data = packet.data
    if len(data) < 2:
        raise CaptureError(f"frame {packet.frame}: HCI event shorter than its header")
    code, params = data[0], data[2:]
    if code == _DISCONNECTION_COMPLETE and len(params) >= 3 and params[0] == 0:
        handle = struct.unpack_from("<H", params, 1)[0] & 0x0FFF
        return LinkEvent(packet.frame, packet.time_s, handle, False)
    # LE connection complete, status success
    if code == _LE_META and len(params) >= 4 and params[0] in _LE_CONNECTION_COMPLETE:
        if params[1] != 0:
            return None
        handle = struct.unpack_from("<H", params, 2)[0] & 0x0FFF
        return LinkEvent(packet.frame, packet.time_s, handle, True)
    return None


def _acl(packet: HciPacket, partial: dict[tuple[int, bool | None], bytearray]) -> AttPdu | None:
    data = packet.data
    if len(data) < 4:
        raise CaptureError(f"frame {packet.frame}: ACL packet shorter than its header")
    header, length = struct.unpack_from("<HH", data)
    if length != len(data) - 4:
        raise CaptureError(
            f"frame {packet.frame}: ACL header says {length} bytes, packet has {len(data) - 4}"
        )
    handle, boundary = header & 0x0FFF, (header >> 12) & 0x3
    key = (handle, packet.sent)
    if boundary == 0b01:  # a continuing fragment
        buffer = partial.get(key)
        if buffer is None:
            return None  # the start was before the capture began
        buffer += data[4:]
    else:
        partial[key] = buffer = bytearray(data[4:])
    if len(buffer) < 4:
        return None
    l2cap_length, cid = struct.unpack_from("<HH", buffer)
    if len(buffer) < 4 + l2cap_length:
        return None
    del partial[key]
    if len(buffer) > 4 + l2cap_length:
        raise CaptureError(
            f"frame {packet.frame}: L2CAP header says {l2cap_length} bytes, "
            f"fragments hold {len(buffer) - 4}"
        )
    if cid != ATT_CID:
        return None
    if l2cap_length == 0:
        raise CaptureError(f"frame {packet.frame}: empty ATT PDU")
    return AttPdu(packet.frame, packet.time_s, handle, buffer[4], bytes(buffer[5:]))
