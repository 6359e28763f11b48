"""The dongle's code path without a dongle: two virtual controllers on pseudo-terminals
(``python -m bumble.apps.controllers pty:A pty:B``), and ``cgmsim transmitter`` and
``cgmsim receiver`` in separate processes opening them as ``serial:`` transports (pyserial), in
compressed time. The receiver is stopped and started again, the second time through the bleak
API: its JSON key store lets it re-encrypt without pairing, its store lets it resume, and it
backfills what it missed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.hil import CGMSIM, check_receiver_restarts, check_wrong_passkey

pytestmark = pytest.mark.slow  # separate processes over virtual controllers


def test_transmitter_and_receiver_processes_over_serial_ptys(ptys, tmp_path: Path) -> None:
    check_receiver_restarts(*ptys, tmp_path)


@pytest.mark.parametrize("api", [(), ("--bleak",)], ids=["bumble", "bleak"])
def test_a_wrong_passkey_fails_pairing_with_one_line_and_exit_2(
    ptys, tmp_path: Path, api: tuple[str, ...]
) -> None:
    check_wrong_passkey(*ptys, tmp_path, *api)


def test_a_transport_that_cannot_open_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tty"
    for role in ("transmitter", "receiver"):
        done = subprocess.run(
            [str(CGMSIM), role, "--transport", f"serial:{missing},1000000", "--out", str(tmp_path)]
            if role == "receiver"
            else [str(CGMSIM), role, "--transport", f"serial:{missing},1000000"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"cgmsim: error: cannot open transport 'serial:{missing},1000000'")
