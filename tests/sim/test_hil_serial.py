"""The dongle's code path without a dongle: two virtual controllers on pseudo-terminals
(``python -m bumble.apps.controllers pty:A pty:B``), and ``cgmsim transmitter`` and
``cgmsim receiver`` in separate processes opening them as ``serial:`` transports (pyserial), in
compressed time. The receiver is stopped and started again: its JSON key store lets it
re-encrypt without pairing, its store lets it resume, and it backfills what it missed."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CGMSIM = Path(sys.executable).parent / "cgmsim"
SPEED = 1500  # a 5-minute reading every 0.2 s
START_TIMEOUT_S = 30


def _wait_for(condition, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def ptys(tmp_path: Path) -> Iterator[tuple[str, str]]:
    a, b = tmp_path / "hci-a", tmp_path / "hci-b"
    controllers = subprocess.Popen(
        [sys.executable, "-m", "bumble.apps.controllers", f"pty:{a}", f"pty:{b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: a.exists() and b.exists(), "the virtual controllers' ptys")
        yield f"serial:{a},1000000", f"serial:{b},1000000"
    finally:
        controllers.send_signal(signal.SIGINT)  # a normal exit removes the symlinks
        try:
            controllers.wait(timeout=10)
        except subprocess.TimeoutExpired:
            controllers.kill()
            controllers.wait()


def _transmitter(transport: str, tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    err = (tmp_path / "tx.err").open("w")
    tx = subprocess.Popen(
        [
            str(CGMSIM),
            "transmitter",
            "--transport",
            transport,
            "--speed",
            str(SPEED),
            "--json",
            "--ideal-sensor",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    _wait_for(lambda: "advertising" in (tmp_path / "tx.err").read_text(), "the transmitter")
    return tx


def _receiver(transport: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CGMSIM),
            "receiver",
            "--transport",
            transport,
            "--speed",
            str(SPEED),
            "--out",
            str(out),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stored(store: Path) -> dict[int, tuple[float | None, str]]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT time_offset_min, glucose_mgdl, delivery FROM readings")
        return {offset: (glucose, delivery) for offset, glucose, delivery in rows}
    finally:
        conn.close()


def test_transmitter_and_receiver_processes_over_serial_ptys(ptys, tmp_path: Path) -> None:
    tx_port, rx_port = ptys
    tx = _transmitter(tx_port, tmp_path)  # until SIGTERM
    out = tmp_path / "receiver"

    first = _receiver(rx_port, out, "--days", "0.035")  # 50 min, then it stops
    assert first.returncode == 0, first.stderr
    one = json.loads(first.stdout)
    assert one["connections"] == 1 and one["pairings"] == 1
    assert one["readings"]["live_this_run"] >= 2
    keys = json.loads((out / "keys.json").read_text())
    assert keys, "the bond was written to the JSON key store"

    time.sleep(1.5)  # about 37 min of session with nobody listening
    second = _receiver(rx_port, out, "--days", "0.03")
    assert second.returncode == 0, second.stderr
    two = json.loads(second.stdout)
    assert two["connections"] == 1
    assert two["pairings"] == 0  # re-encrypted with the bond from keys.json
    assert two["readings"]["backfilled_this_run"] >= 3  # the readings made while it was away
    assert one["readings"]["duplicates"] == two["readings"]["duplicates"] == 0

    tx.send_signal(signal.SIGTERM)  # ends cleanly, with its summary
    made_out, _ = tx.communicate(timeout=60)
    assert tx.returncode == 0
    made = {r["time_offset_min"]: r["glucose_mgdl"] for r in json.loads(made_out)["readings"]}
    stored = _stored(out / "receiver.sqlite")
    # every reading the sensor made until the receiver's last one is stored, once, unchanged
    last = max(stored)
    assert {t: g for t, g in made.items() if t <= last} == {t: g for t, (g, _) in stored.items()}
    assert {d for _, d in stored.values()} == {"live", "backfill"}
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert sorted(e["time_offset_min"] for e in events if e["kind"] == "reading") == sorted(stored)


def test_a_wrong_passkey_fails_pairing_with_one_line_and_exit_2(ptys, tmp_path: Path) -> None:
    tx_port, rx_port = ptys
    tx = _transmitter(tx_port, tmp_path, "--days", "0.05", "--passkey", "111111")
    try:
        done = _receiver(rx_port, tmp_path / "rx", "--days", "0.02", "--passkey", "222222")
    finally:
        tx.send_signal(signal.SIGTERM)
        summary, _ = tx.communicate(timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("cgmsim: error: pairing with C0:CA:FE:00:00:01")
    assert "wrong passkey" in lines[-1]
    assert tx.returncode == 0
    assert json.loads(summary)["sent_over_air"] == 0  # no reading leaked


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
