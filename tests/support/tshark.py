"""Wireshark's tshark, the independent decoder of the interoperability tests.

``scripts/install-test-deps`` installs it where it can (root with apt; `make test` and .ci/run
run it first). Where it could not, the tests marked ``tshark`` are skipped with ``HINT`` as the
reason -- but never under CI (``CI`` set), where they run and fail with ``HINT`` instead.
"""

from __future__ import annotations

import os
import shutil

import pytest

HINT = (
    "tshark is not installed: install Debian's tshark (as root, scripts/install-test-deps does "
    "it non-interactively; or sudo apt-get install tshark)"
)


def missing() -> bool:
    return shutil.which("tshark") is None


def skipped() -> bool:
    """Whether the tshark tests are skipped in this run (tshark missing, not under CI)."""
    return missing() and not os.environ.get("CI")


def require() -> None:
    """Fail the test in hand when tshark is missing (under CI, where it is not skipped)."""
    if missing():
        pytest.fail(HINT, pytrace=False)
