"""The CGM service's side of an ATT conversation: who asked what of which characteristic, what
came back, and what the sensor sent on its own.

What is left out, because no firmware core sees it (the host stacks around the cores do it):
GATT discovery, the MTU exchange's requests themselves (its outcome is kept), handle value
confirmations' bookkeeping (kept as ``Confirmation``), traffic on other services, and a request
refused for security (ATT errors 0x05, 0x08, 0x0C, 0x0F: the link was not yet encrypted, which
the stack answers and then pairs) together with its refusal.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sim.capture.att_stream import AttPdu, LinkEvent
from sim.capture.cgms_handles import CgmsHandles

# ATT opcodes (Core Vol 3 Part F §3.4.8)
ERROR_RSP = 0x01
EXCHANGE_MTU_REQ = 0x02
EXCHANGE_MTU_RSP = 0x03
READ_REQ = 0x0A
READ_RSP = 0x0B
WRITE_REQ = 0x12
WRITE_RSP = 0x13
NOTIFICATION = 0x1B
INDICATION = 0x1D
CONFIRMATION = 0x1E
_REQUESTS = frozenset({0x02, 0x04, 0x06, 0x08, 0x0A, 0x0C, 0x0E, 0x10, 0x12, 0x16, 0x18, 0x20})
_ANSWERS = frozenset({0x01, 0x03, 0x05, 0x07, 0x09, 0x0B, 0x0D, 0x0F, 0x11, 0x13, 0x17, 0x19})
# insufficient authentication, authorization, encryption key size, encryption
SECURITY_ERRORS = frozenset({0x05, 0x08, 0x0C, 0x0F})


@dataclass(frozen=True, slots=True)
class Frame:
    number: int
    time_s: float


@dataclass(frozen=True, slots=True)
class Link:
    frame: Frame
    up: bool


@dataclass(frozen=True, slots=True)
class Mtu:
    frame: Frame
    mtu: int


@dataclass(frozen=True, slots=True, eq=False)
class Request:
    frame: Frame
    kind: str  # read, write or subscribe
    uuid: int
    value: bytes | None = None  # a write's
    notify: bool = False  # a subscription's
    indicate: bool = False


def as_event(request: Request, read: type, write: type, subscribe: type) -> object:
    """``request`` as the event a core takes or emits: ``read(uuid)``, ``write(uuid, value)``
    or ``subscribe(uuid, notify, indicate)``."""
    if request.kind == "read":
        return read(request.uuid)
    if request.kind == "write":
        return write(request.uuid, request.value or b"")
    return subscribe(request.uuid, request.notify, request.indicate)


@dataclass(frozen=True, slots=True)
class Answer:
    frame: Frame
    request: Request
    value: bytes | None  # a read's
    error: int | None


@dataclass(frozen=True, slots=True)
class Value:
    frame: Frame
    uuid: int
    value: bytes
    indication: bool


@dataclass(frozen=True, slots=True)
class Confirmation:
    frame: Frame


Exchange = Link | Mtu | Request | Answer | Value | Confirmation


def _frame(item: AttPdu | LinkEvent) -> Frame:
    return Frame(item.frame, item.time_s)


def cgms_exchanges(items: list[AttPdu | LinkEvent], handles: CgmsHandles) -> list[Exchange]:
    """The CGM service's exchanges in capture order (``handles`` learns from discovery)."""
    out: list[Exchange] = []
    opened: dict[int, Frame] = {}  # connection -> its Connection Complete
    live: set[int] = set()  # connections that carried CGM traffic (and are up)
    pending: dict[int, tuple[int, Request | int | None]] = {}  # connection -> (opcode, what)

    early_mtu: dict[int, Mtu] = {}  # exchanged before the link carried CGM traffic

    def touch(connection: int, frame: Frame) -> None:
        if connection not in live:
            live.add(connection)
            out.append(Link(opened.pop(connection, frame), True))
            if connection in early_mtu:
                out.append(early_mtu.pop(connection))

    for item in items:
        if isinstance(item, LinkEvent):
            pending.pop(item.connection, None)
            early_mtu.pop(item.connection, None)
            if item.up:
                opened[item.connection] = _frame(item)
            elif item.connection in live:
                live.discard(item.connection)
                out.append(Link(_frame(item), False))
            continue
        handles.learn(item)
        opcode, params, connection = item.opcode, item.params, item.connection
        frame = _frame(item)
        if opcode in _REQUESTS:
            request = _request(frame, opcode, params, handles)
            if isinstance(request, Request):
                touch(connection, frame)
                out.append(request)
            pending[connection] = (opcode, request)
        elif opcode in _ANSWERS:
            asked = pending.pop(connection, None)
            if asked is None:
                continue  # its request is before the capture began
            if asked[0] == EXCHANGE_MTU_REQ and connection not in live:
                mtu: list[Exchange] = []
                _answer(mtu, frame, opcode, params, asked)
                for found in mtu:
                    if isinstance(found, Mtu):
                        early_mtu[connection] = found
                continue
            _answer(out, frame, opcode, params, asked)
        elif opcode in (NOTIFICATION, INDICATION) and len(params) >= 2:
            uuid = handles.values.get(struct.unpack_from("<H", params)[0])
            if uuid is not None:
                touch(connection, frame)
                out.append(Value(frame, uuid, bytes(params[2:]), opcode == INDICATION))
        elif opcode == CONFIRMATION and connection in live:
            out.append(Confirmation(frame))
    return out


def _request(
    frame: Frame, opcode: int, params: bytes, handles: CgmsHandles
) -> Request | int | None:
    """A CGMS request, the client's MTU for an MTU exchange, or None for anything else."""
    if opcode == EXCHANGE_MTU_REQ and len(params) >= 2:
        return int(struct.unpack_from("<H", params)[0])
    if opcode not in (READ_REQ, WRITE_REQ) or len(params) < 2:
        return None
    handle = struct.unpack_from("<H", params)[0]
    if opcode == READ_REQ and handle in handles.values:
        return Request(frame, "read", handles.values[handle])
    if opcode == WRITE_REQ and handle in handles.values:
        return Request(frame, "write", handles.values[handle], bytes(params[2:]))
    if opcode == WRITE_REQ and handle in handles.cccds:
        bits = int.from_bytes(params[2:4], "little")
        return Request(
            frame,
            "subscribe",
            handles.cccds[handle],
            notify=bool(bits & 1),
            indicate=bool(bits & 2),
        )
    return None


def _answer(
    out: list[Exchange],
    frame: Frame,
    opcode: int,
    params: bytes,
    asked: tuple[int, Request | int | None],
) -> None:
    request_opcode, what = asked
    if isinstance(what, int) and opcode == EXCHANGE_MTU_RSP and len(params) >= 2:
        out.append(Mtu(frame, min(what, struct.unpack_from("<H", params)[0])))
        return
    if not isinstance(what, Request):
        return
    if opcode == ERROR_RSP and len(params) >= 4:
        error = params[3]
        if error in SECURITY_ERRORS:
            out.remove(what)
            return
        out.append(Answer(frame, what, None, error))
    elif opcode == READ_RSP and request_opcode == READ_REQ:
        out.append(Answer(frame, what, bytes(params), None))
    elif opcode == WRITE_RSP and request_opcode == WRITE_REQ:
        out.append(Answer(frame, what, None, None))
