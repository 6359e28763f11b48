"""``cgmsim import`` of captures from the HIL processes: ``cgmsim transmitter`` and
``cgmsim receiver`` in separate processes over two virtual controllers on pseudo-terminals
(docs/hil.md, "Without hardware"), each writing bumble's btsnoop of its own HCI traffic
(``BUMBLE_SNOOPER``), at ``--speed 300`` with E2E-CRC. Both captures, the sensor's and the
collector's, imported from either side with the same ``--speed``, replay green against our
receiver core and our transmitter core."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli import cli
from tests.support.hil import CGMSIM, wait_for

pytestmark = pytest.mark.slow  # separate processes over virtual controllers, in radio time

SPEED = "300"  # a reading a second: the 1 ms a frame takes on a loaded host is 0.3 s of session


def _cgmsim(*args: str | Path, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen([str(CGMSIM), *map(str, args)], env=env, text=True, **popen)


def test_captures_of_the_hil_processes_replay_green(ptys, tmp_path: Path) -> None:
    tx_port, rx_port = ptys
    tx_capture, rx_capture = tmp_path / "tx.btsnoop", tmp_path / "rx.btsnoop"
    tx_err = (tmp_path / "tx.err").open("w")
    tx = _cgmsim(
        "transmitter", "--transport", tx_port, "--speed", SPEED, "--ideal-sensor", "--e2e-crc",
        env={**os.environ, "BUMBLE_SNOOPER": f"btsnoop:file:{tx_capture}"},
        stdout=subprocess.DEVNULL, stderr=tx_err,
    )  # fmt: skip
    try:
        wait_for(lambda: "advertising" in (tmp_path / "tx.err").read_text(), "the transmitter")
        rx = _cgmsim(
            "receiver", "--transport", rx_port, "--speed", SPEED, "--days", "0.05",
            "--out", tmp_path / "rx",
            env={**os.environ, "BUMBLE_SNOOPER": f"btsnoop:file:{rx_capture}"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = rx.communicate(timeout=120)
        assert rx.returncode == 0, err
        assert "readings displayed" in out
    finally:
        tx.terminate()
        tx.wait(timeout=30)
        tx_err.close()
    runner = CliRunner()  # imported and replayed in this process
    for capture in (tx_capture, rx_capture):
        for side, core in (("sensor", "rx"), ("collector", "tx")):
            recording = capture.with_suffix(f".{side}.jsonl")
            imported = runner.invoke(
                cli,
                ["import", str(capture), "--out", str(recording), "--side", side,
                 "--speed", SPEED],
            )  # fmt: skip
            assert imported.exit_code == 0, imported.stderr
            replayed = runner.invoke(cli, ["replay", str(recording), "--check", "--json"])
            what = f"{capture.name} {side}: {replayed.stdout}{replayed.stderr}"
            assert replayed.exit_code == 0, what
            result = json.loads(replayed.stdout)
            assert result["identical"] is True
            assert result["inputs"][core] >= 10 and result["outputs"] >= 8
