"""IEEE 11073-20601 SFLOAT: a 16-bit decimal float (4-bit exponent, 12-bit mantissa).

``raw = (exponent << 12) | (mantissa & 0xFFF)``, both two's complement; value =
mantissa * 10^exponent. Five raw values are reserved for special values. Finite values decode
to ``float``; special values to :class:`SFloatSpecial`.
"""

from __future__ import annotations

import enum
import math
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from construct import Adapter, Int16ul

from protocol.errors import FrameError


class SFloatSpecial(enum.Enum):
    """The reserved SFLOAT values, by their raw 16-bit code."""

    NAN = 0x07FF
    NRES = 0x0800
    POSITIVE_INFINITY = 0x07FE
    NEGATIVE_INFINITY = 0x0802
    RESERVED = 0x0801

    @property
    def label(self) -> str:
        """The name used in JSON: ``NaN``, ``NRes``, ``+INFINITY``, ``-INFINITY``, ``reserved``."""
        return _LABELS[self]

    @classmethod
    def from_label(cls, label: str) -> SFloatSpecial:
        for special, name in _LABELS.items():
            if name == label:
                return special
        raise ValueError(f"not an SFLOAT special value: {label!r}")


_LABELS = {
    SFloatSpecial.NAN: "NaN",
    SFloatSpecial.NRES: "NRes",
    SFloatSpecial.POSITIVE_INFINITY: "+INFINITY",
    SFloatSpecial.NEGATIVE_INFINITY: "-INFINITY",
    SFloatSpecial.RESERVED: "reserved",
}
_SPECIALS = {special.value: special for special in SFloatSpecial}

SFloat = float | SFloatSpecial
"""A decoded SFLOAT: a finite float, or one of the special values."""

MANTISSA_MAX = 2045  # |mantissa| above this collides with the special codes
EXPONENT_MIN, EXPONENT_MAX = -8, 7


def decode(raw: int) -> SFloat:
    """The value of a raw 16-bit SFLOAT."""
    special = _SPECIALS.get(raw)
    if special is not None:
        return special
    mantissa = raw & 0x0FFF
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    exponent = raw >> 12
    if exponent >= 8:
        exponent -= 16
    if exponent >= 0:
        return float(mantissa * 10**exponent)
    return mantissa / 10**-exponent  # a correctly rounded float, e.g. 1234 / 100 == 12.34


def encode(value: SFloat, what: str = "SFLOAT") -> int:
    """The raw 16-bit SFLOAT for ``value``.

    Picks the exponent that keeps the decimal value exactly (120 -> 120e0, 12.34 -> 1234e-2),
    preferring the exponent nearest zero; a value with more digits than fit is rounded to the
    finest exponent that holds it. NaN and ±inf map to the special codes. A finite value beyond
    ±2045e7 raises :class:`FrameError`, naming ``what``.
    """
    if isinstance(value, SFloatSpecial):
        return value.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FrameError(what, f"expected a number, got {value!r}")
    if math.isnan(value):
        return SFloatSpecial.NAN.value
    if math.isinf(value):
        special = SFloatSpecial.POSITIVE_INFINITY if value > 0 else SFloatSpecial.NEGATIVE_INFINITY
        return special.value
    if value == 0:
        return 0
    mantissa, exponent = _split(Decimal(repr(value)), what)
    if mantissa == 0:  # rounded away entirely
        return 0
    return ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)


def _split(number: Decimal, what: str) -> tuple[int, int]:
    sign, digits, exponent = number.normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)))
    while exponent > 0 and mantissa * 10 <= MANTISSA_MAX:
        mantissa, exponent = mantissa * 10, exponent - 1
    if mantissa > MANTISSA_MAX or exponent < EXPONENT_MIN:
        # Not exactly representable: round to the finest exponent whose mantissa fits.
        exponent = max(EXPONENT_MIN, exponent)
        while True:
            scaled = abs(number).scaleb(-exponent).quantize(Decimal(1), ROUND_HALF_EVEN)
            if scaled <= MANTISSA_MAX:
                mantissa = int(scaled)
                break
            exponent += 1
    if exponent > EXPONENT_MAX:
        raise FrameError(
            what, f"{number} is beyond the SFLOAT range (±{MANTISSA_MAX}e{EXPONENT_MAX})"
        )
    return (-mantissa if sign else mantissa), exponent


def to_json(value: SFloat | None) -> float | str | None:
    """A JSON-ready form: the number, the special value's label, or None."""
    return value.label if isinstance(value, SFloatSpecial) else value


def from_json(value: Any, what: str) -> SFloat:
    """Accept a number or a special value's label (see :meth:`SFloatSpecial.from_label`)."""
    if isinstance(value, str):
        try:
            return SFloatSpecial.from_label(value)
        except ValueError:
            raise FrameError(
                what, f"expected a number or an SFLOAT special value, got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FrameError(what, f"expected a number, got {value!r}")
    return float(value)


class _SFloatAdapter(Adapter):
    def _decode(self, obj: int, context: Any, path: str | None) -> SFloat:
        return decode(obj)

    def _encode(self, obj: SFloat, context: Any, path: str | None) -> int:
        return encode(obj, (path or "SFLOAT").rsplit(" -> ", 1)[-1])


SFLOAT = _SFloatAdapter(Int16ul)
"""The construct field for an SFLOAT (two bytes, little-endian)."""
