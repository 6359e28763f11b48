"""``cgmsim transmitter`` and ``cgmsim receiver`` as separate processes on two controllers:
the checks shared by the virtual-controller tests (tests/sim/test_hil_serial.py) and the
hardware set (tests/hardware/), which differ only in the transports they are given."""

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


def wait_for(condition, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def ptys(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two virtual controllers on pseudo-terminals (``python -m bumble.apps.controllers``),
    as the ``serial:`` transports of two processes."""
    a, b = tmp_path / "hci-a", tmp_path / "hci-b"
    controllers = subprocess.Popen(
        [sys.executable, "-m", "bumble.apps.controllers", f"pty:{a}", f"pty:{b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: a.exists() and b.exists(), "the virtual controllers' ptys")
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
    wait_for(lambda: "advertising" in (tmp_path / "tx.err").read_text(), "the transmitter")
    return tx


def _receiver_args(transport: str, out: Path, *extra: str) -> list[str]:
    return [
        str(CGMSIM),
        "receiver",
        *("--transport", transport, "--speed", str(SPEED), "--out", str(out), "--json"),
        *extra,
    ]


def _receiver(transport: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """A receiver run to its end (``--days``, or a failure that ends it)."""
    return subprocess.run(
        _receiver_args(transport, out, *extra), capture_output=True, text=True, timeout=120
    )


def _receiver_until(
    transport: str, out: Path, condition, what: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """A receiver run until ``condition()`` holds, then stopped as a user stops it (SIGTERM,
    as Ctrl-C): its session time depends on how fast the machine is, what it did does not."""
    rx = subprocess.Popen(
        _receiver_args(transport, out, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: condition() or rx.poll() is not None, what, timeout_s=90)
    finally:
        rx.send_signal(signal.SIGTERM)
        stdout, stderr = rx.communicate(timeout=60)
    return subprocess.CompletedProcess(rx.args, rx.returncode, stdout, stderr)


def _stored(store: Path) -> dict[int, tuple[float | None, str]]:
    """The readings the receiver has committed, read as another process would."""
    if not store.exists():
        return {}
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("SELECT time_offset_min, glucose_mgdl, delivery FROM readings")
            return {offset: (glucose, delivery) for offset, glucose, delivery in rows}
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return {}  # not created yet


def _sampled_min(recording: Path) -> list[int]:
    """The session minutes of the sensor samples in a transmitter's recording (written a line
    at a time), so a test can wait for the sensor's clock, not the wall clock."""
    return [
        json.loads(line)["t"] // 60_000
        for line in recording.read_text().splitlines()
        if '"in":"sample"' in line
    ]


def check_receiver_restarts(tx_port: str, rx_port: str, tmp_path: Path) -> None:
    """Transmitter on ``tx_port``; the receiver on ``rx_port`` runs (driving bumble), stops, and
    runs again on the same --out through the bleak API (``--bleak``, the bleak backend over
    bumble): it re-encrypts with the bond the first run stored, resumes and backfills the gap,
    and every reading the sensor made until then is stored once, unchanged.

    Every wait is on what the processes did (the receiver's store, the transmitter's
    recording), never on a wall-clock margin: a loaded machine only makes the runs longer."""
    tx_record = tmp_path / "tx.jsonl"
    tx = _transmitter(tx_port, tmp_path, "--record", str(tx_record))  # to SIGTERM
    out = tmp_path / "receiver"
    store = out / "receiver.sqlite"

    def live() -> list[int]:
        return sorted(t for t, (_, delivery) in _stored(store).items() if delivery == "live")

    first = _receiver_until(
        rx_port,
        out,
        lambda: len(live()) >= 2,
        "two live readings in the first run",
        "--record",
        str(tmp_path / "rx.jsonl.gz"),
    )
    assert first.returncode == 0, first.stderr
    one = json.loads(first.stdout)
    assert one["connections"] == 1 and one["pairings"] == 1
    assert one["readings"]["live_this_run"] >= 2
    keys = json.loads((out / "keys.json").read_text())
    assert keys, "the bond was written to the JSON key store"

    # three readings made with nobody listening (the sensor's clock, read from its recording)
    last_stored = max(_stored(store))

    def gap() -> list[int]:
        return [t for t in _sampled_min(tx_record) if t > last_stored]

    wait_for(lambda: len(gap()) >= 3, "three readings made meanwhile")
    missed = gap()

    def caught_up() -> bool:  # the gap backfilled, and live readings again after it
        stored = _stored(store)
        return all(t in stored for t in missed) and any(t > missed[-1] for t in live())

    second = _receiver_until(
        rx_port, out, caught_up, "the gap backfilled and a live reading after it", "--bleak"
    )
    assert second.returncode == 0, second.stderr
    two = json.loads(second.stdout)
    assert (one["api"], two["api"]) == ("bumble", "bleak")
    assert two["connections"] == 1
    assert two["pairings"] == 0  # re-encrypted with the bond from keys.json
    assert two["readings"]["backfilled_this_run"] >= 3, two  # made while it was away
    assert one["readings"]["duplicates"] == two["readings"]["duplicates"] == 0

    tx.send_signal(signal.SIGTERM)  # ends cleanly, with its summary
    made_out, _ = tx.communicate(timeout=60)
    assert tx.returncode == 0
    made = {r["time_offset_min"]: r["glucose_mgdl"] for r in json.loads(made_out)["readings"]}
    stored = _stored(store)
    # every reading the sensor made until the receiver's last one is stored, once, unchanged
    last = max(stored)
    assert {t: g for t, g in made.items() if t <= last} == {t: g for t, (g, _) in stored.items()}
    assert {d for _, d in stored.values()} == {"live", "backfill"}
    # the hardware runs' recordings replay: the same inputs give the same outputs
    for recording in ("tx.jsonl", "rx.jsonl.gz"):
        replayed = subprocess.run(
            [str(CGMSIM), "replay", str(tmp_path / recording), "--check"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert sorted(e["time_offset_min"] for e in events if e["kind"] == "reading") == sorted(stored)


def check_wrong_passkey(tx_port: str, rx_port: str, tmp_path: Path, *api: str) -> None:
    """A receiver typing the wrong passkey: pairing fails, one line, exit 2, nothing sent.
    ``api``: extra receiver options (``--bleak``)."""
    tx = _transmitter(tx_port, tmp_path, "--passkey", "111111")  # until SIGTERM
    try:
        # no --days: the refused pairing must end the run by itself (the timeout is a backstop)
        done = _receiver(rx_port, tmp_path / "rx", "--passkey", "222222", *api)
    finally:
        tx.send_signal(signal.SIGTERM)
        summary, _ = tx.communicate(timeout=30)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("cgmsim: error: pairing with C0:CA:FE:00:00:01"), done.stderr
    assert "wrong passkey" in lines[-1]
    assert tx.returncode == 0
    assert json.loads(summary)["sent_over_air"] == 0  # no reading leaked
