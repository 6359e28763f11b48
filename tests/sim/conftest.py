"""Fixtures shared by the tests of sim/."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hil import virtual_controllers


@pytest.fixture
def ptys(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two virtual controllers on pseudo-terminals (``python -m bumble.apps.controllers``), as
    the ``serial:`` transports of two processes."""
    with virtual_controllers(tmp_path) as transports:
        yield transports
