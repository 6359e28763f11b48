"""Fixtures shared by the tests of sim/ (defined in tests/support, offered here)."""

from tests.support.hil import ptys  # noqa: F401  (the virtual controllers of the HIL tests)
