"""Rules every CGMS codec shares: E2E-CRC presence and checking, construct error wrapping."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

from construct import (
    Adapter,
    Construct,
    ConstructError,
    Container,
    FormatField,
    IfThenElse,
    Pass,
    Rebuild,
    Renamed,
    Struct,
    Terminated,
    evaluate,
)

from protocol.crc import crc16
from protocol.errors import CrcError, FrameError, MissingCrcError


def crc_present(title: str, data: bytes, plain_size: int, e2e_crc: bool | None) -> bool:
    """Whether ``data`` (a fixed-size value of ``plain_size`` bytes without CRC) carries a CRC.

    ``e2e_crc``: None = the length tells; True = a CRC is mandatory; False = none is allowed.
    A CRC that is present is checked.
    """
    size = len(data)
    if size == plain_size:
        if e2e_crc:
            raise MissingCrcError(title, f"E2E-CRC required, frame has {size} bytes and no CRC")
        return False
    if size == plain_size + 2 and e2e_crc is not False:
        check_crc(title, data)
        return True
    if e2e_crc is False:
        expected = f"{plain_size} bytes (E2E-CRC off)"
    elif e2e_crc:
        expected = f"{plain_size + 2} bytes (with E2E-CRC)"
    else:
        expected = f"{plain_size} bytes, or {plain_size + 2} with E2E-CRC"
    raise FrameError(title, f"frame has {size} bytes, expected {expected}")


def check_crc(title: str, data: bytes) -> None:
    """Check the E2E-CRC in the last two bytes of ``data`` against the bytes before it."""
    carried = int.from_bytes(data[-2:], "little")
    computed = crc16(data[:-2])
    if carried != computed:
        raise CrcError(title, f"E2E-CRC is 0x{carried:04X}, computed 0x{computed:04X}")


def with_crc(data: bytes) -> bytes:
    """``data`` whose last two bytes (a placeholder) are replaced by the E2E-CRC of the rest."""
    return data[:-2] + crc16(data[:-2]).to_bytes(2, "little")


def parse(title: str, fmt: Construct, data: bytes, **params: Any) -> Any:
    """``fmt.parse`` with every construct error turned into a :class:`FrameError`."""
    try:
        return fmt.parse(data, **params)
    except ConstructError as error:
        raise FrameError(title, _describe(error)) from None


def build(title: str, fmt: Construct, value: Any, **params: Any) -> bytes:
    """``fmt.build`` with every construct or range error turned into a :class:`FrameError`."""
    try:
        return fmt.build(value, **params)
    except ConstructError as error:
        raise FrameError(title, _describe(error)) from None
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise FrameError(title, f"cannot build: {error}") from None


# construct's message for a value its struct format cannot hold, e.g. 70000 for '<H'
_FORMAT_OVERFLOW = re.compile(
    r"struct '[<>!=@]?([bBhHiIqQ])' error during building, given value (.+)"
)
_FORMAT_RANGES = {
    code: (
        (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1)
        if code.islower()
        else (0, (1 << (8 * size)) - 1)
    )
    for code, size in {"b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "q": 8, "Q": 8}.items()
}


def _describe(error: ConstructError) -> str:
    """One line: the field path and what was wrong (construct puts them on two lines); a value
    out of its field's range says the range."""
    message = str(error).strip()
    if message.startswith("Error in path"):
        message = message.split("\n", 1)[-1].strip()
    path = (error.path or "").replace("(parsing)", "").replace("(building)", "")
    parts = [part.strip() for part in path.split("->") if part.strip()]
    parts = [part for i, part in enumerate(parts) if i == 0 or part != parts[i - 1]]
    field = " -> ".join(parts) or "frame"
    overflow = _FORMAT_OVERFLOW.fullmatch(message)
    if overflow:
        code, given = overflow.groups()
        low, high = _FORMAT_RANGES[code]
        signed = "signed " if code.islower() else ""
        bits = 8 * struct.calcsize(code)
        return f"{field} is {given}, allowed {low}..{high} ({signed}{bits}-bit field)"
    return f"{field}: {message}".replace("\n", " ")


def require_int(title: str, field: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``, else a :class:`FrameError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameError(title, f"{field} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise FrameError(title, f"{field} is {value}, allowed {low}..{high}")
    return value


@dataclass(frozen=True, slots=True)
class FlatLayout:
    """A flat construct ``Struct`` resolved for one context: one ``struct.Struct`` plus the
    adapters' decoders and encoders. Parses and builds exactly what the construct declaration
    does, several times faster; for hot paths whose input is already validated (length for
    ``unpack``; every value, ``Rebuild`` fields included, for ``pack``)."""

    packer: struct.Struct
    names: tuple[str, ...]
    adapters: tuple[Adapter | None, ...]

    def unpack(self, data: bytes) -> dict[str, Any]:
        values = self.packer.unpack(data)
        return {
            name: value if adapter is None else adapter._decode(value, None, name)
            for name, value, adapter in zip(self.names, values, self.adapters, strict=True)
        }

    def pack(self, values: dict[str, Any]) -> bytes:
        return self.packer.pack(
            *(
                values[name] if adapter is None else adapter._encode(values[name], None, name)
                for name, adapter in zip(self.names, self.adapters, strict=True)
            )
        )


def flat_layout(fmt: Struct, context: Container) -> FlatLayout:
    """Resolve ``fmt`` (fields of fixed-size integers, adapters over them, ``If`` and ``Rebuild``,
    a final ``Terminated``) for ``context``, the values its conditions read."""
    codes, names, adapters = [], [], []
    for field in fmt.subcons:
        inner, adapter = field, None
        while True:
            if isinstance(inner, Renamed | Rebuild):
                inner = inner.subcon
            elif isinstance(inner, IfThenElse):
                chosen = evaluate(inner.condfunc, context)
                inner = inner.thensubcon if chosen else inner.elsesubcon
            elif isinstance(inner, Adapter):
                adapter = inner
                inner = inner.subcon
            else:
                break
        if isinstance(inner, FormatField) and inner.fmtstr[0] == "<":
            codes.append(inner.fmtstr[1:])
            names.append(field.name)
            adapters.append(adapter)
        elif inner is not Pass and inner is not Terminated:
            raise TypeError(f"{field!r} is not a flat little-endian field")
    return FlatLayout(struct.Struct("<" + "".join(codes)), tuple(names), tuple(adapters))
