"""Hypothesis strategies shared by the protocol tests."""

from hypothesis import strategies as st

from protocol import sfloat
from protocol.sfloat import SFloatSpecial

_SPECIAL_CODES = {special.value for special in SFloatSpecial}


def _canonical(raw: int) -> bool:
    """Raw SFLOATs an encoder can produce: the specials and |mantissa| <= 2045 (others decode
    to numbers that come back rounded; see test_sfloat)."""
    mantissa = raw & 0xFFF
    mantissa = mantissa - 0x1000 if mantissa >= 0x800 else mantissa
    return raw in _SPECIAL_CODES or abs(mantissa) <= 2045


sfloats = st.integers(0, 0xFFFF).filter(_canonical).map(sfloat.decode)
"""Decoded SFLOAT values that survive encode -> decode unchanged."""
