"""`cgmsim simulate` with a durable receiver: a real process SIGKILLed mid-run and rerun resumes
from --out/receiver.sqlite, and the session comes out whole (nothing lost, nothing twice)."""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware.profiles import MINUTE_MS

CGMSIM = Path(sys.executable).parent / "cgmsim"
SESSION = "g7-1"
POLL_TIMEOUT_S = 60

pytestmark = pytest.mark.slow  # separate processes, SIGKILLed and resumed


def command(out: Path, *extra: str) -> list[str]:
    return [str(CGMSIM), "simulate", "--out", str(out), "--no-plot", "--json", *extra]


def store_progress(store: Path) -> int | None:
    """The virtual time the store's last commit reached, read as another process would."""
    if not store.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute(
                "SELECT value FROM state WHERE session_id = ? AND key = 'progress'", (SESSION,)
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None  # not created yet
    return None if row is None else int(json.loads(row[0])["now_ms"])


def kill_when(args: list[str], store: Path, reached: int) -> int:
    """Run ``args``; SIGKILL it once its store has committed virtual time ``reached``.
    Returns the progress seen just before the kill (the process got further, not to the end)."""
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + POLL_TIMEOUT_S
    try:
        while True:
            progress = store_progress(store)
            if progress is not None and progress >= reached:
                os.kill(child.pid, signal.SIGKILL)
                break
            assert child.poll() is None, "the run ended before the kill could land"
            assert time.monotonic() < deadline, "no progress in the store"
            time.sleep(0.0005)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
    return progress


def run_killed(out: Path, args_extra: tuple[str, ...], end_ms: int, kills: int, seed: int):
    """Kill the command at ``kills`` seeded moments, rerun it until it completes; returns the
    progress each kill saw and the finished run's summary."""
    rng = random.Random(seed)
    store = out / "receiver.sqlite"
    args = command(out, *args_extra)
    seen: list[int] = []
    for _ in range(kills):
        before = store_progress(store) or 0
        target = before + int(rng.uniform(0.1, 0.5) * (end_ms - before))
        progress = kill_when(args, store, target)
        after = store_progress(store)
        assert after is not None and before < after < end_ms  # partial progress, kept
        assert not (out / "summary.json").exists()
        seen.append(progress)
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert store_progress(store) == end_ms
    return seen, json.loads(done.stdout)


def delivered(out: Path) -> dict[int, str]:
    with (out / "readings.csv").open() as handle:
        return {
            int(row["time_offset_min"]): row["delivery"]
            for row in csv.DictReader(handle)
            if row["delivery"]
        }


def stored_offsets(store: Path) -> list[int]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT time_offset_min FROM readings WHERE session_id = ?", (SESSION,)
        ).fetchall()
    finally:
        conn.close()
    return [offset for (offset,) in rows]


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def test_killed_runs_resume_and_deliver_every_reading_once(tmp_path):
    extra = ("--days", "3", "--faults", "loss=0.2")
    end_ms = 3 * 1440 * MINUTE_MS
    clean_out, killed_out = tmp_path / "clean", tmp_path / "killed"
    clean = subprocess.run(command(clean_out, *extra), capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr
    clean_summary = json.loads(clean.stdout)

    kills, summary = run_killed(killed_out, extra, end_ms, kills=3, seed=20260105)

    assert len(kills) == 3 and kills == sorted(kills)
    readings = summary["readings"]
    assert readings["lost"] == 0 and readings["duplicates"] == 0
    assert readings["generated"] == clean_summary["readings"]["generated"]
    assert readings["displayed"] == clean_summary["readings"]["displayed"]
    # every reading the transmitter produced is stored, each once, as in the clean run
    offsets = stored_offsets(killed_out / "receiver.sqlite")
    assert len(offsets) == len(set(offsets))
    assert set(offsets) == set(stored_offsets(clean_out / "receiver.sqlite"))
    killed_rows, clean_rows = delivered(killed_out), delivered(clean_out)
    assert set(killed_rows) == set(clean_rows) == set(offsets)
    assert "lost" not in killed_rows.values()
    # the event history is whole: one reading event per stored reading, in time order
    history = events(killed_out)
    shown = [e["time_offset_min"] for e in history if e["kind"] == "reading"]
    assert sorted(shown) == sorted(offsets)
    times = [e["t_min"] for e in history]
    assert times == sorted(times)
    # a rerun after completion simulates nothing more and says the same
    again = subprocess.run(command(killed_out, *extra), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["readings"] == readings


def test_an_unacknowledged_urgent_low_keeps_repeating_across_kills(tmp_path):
    trace = tmp_path / "hypo.csv"
    lines = ["time_offset_min,glucose_mgdl"]
    lines += [f"{m},{120 if m < 120 else 48}" for m in range(0, 2 * 1440 + 5, 5)]
    trace.write_text("\n".join(lines) + "\n")
    extra = ("--days", "2", "--trace", str(trace), "--ideal-sensor")
    end_ms = 2 * 1440 * MINUTE_MS
    out = tmp_path / "out"

    # the first kill lands after the urgent low was raised (and committed)
    raised_by = 130 * MINUTE_MS
    kill_when(command(out, *extra), out / "receiver.sqlite", raised_by + 60 * MINUTE_MS)
    kills, summary = run_killed(out, extra, end_ms, kills=2, seed=7)

    history = events(out)
    raised = [e for e in history if e["kind"] == "alert_raised" and e["alert"] == "urgent_low"]
    assert len(raised) == 1 and raised[0]["t_min"] * MINUTE_MS <= raised_by
    assert summary["alerts"]["urgent_low"] == 1
    assert not [e for e in history if e["kind"] == "alert_cleared" and e["alert"] == "urgent_low"]
    repeats = [
        e["t_min"] for e in history if e["kind"] == "alert_repeated" and e["alert"] == "urgent_low"
    ]
    assert any(t * MINUTE_MS > kills[-1] for t in repeats)  # still repeating after the last kill
    # it kept its rhythm across every kill: no gap longer than one repeat interval
    gaps = [b - a for a, b in zip([raised[0]["t_min"], *repeats], repeats, strict=False)]
    assert gaps and max(gaps) <= 5
    assert summary["readings"]["lost"] == 0 and summary["readings"]["duplicates"] == 0


def alert_history(history: list[dict]) -> list[tuple[float, str, str]]:
    return [(e["t_min"], e["kind"], e["alert"]) for e in history if e["kind"].startswith("alert")]


def test_acknowledged_alerts_stay_acknowledged_across_kills(tmp_path):
    trace = tmp_path / "hypo.csv"
    lines = ["time_offset_min,glucose_mgdl"]
    lines += [f"{m},{120 if m < 120 else 48}" for m in range(0, 2 * 1440 + 5, 5)]
    trace.write_text("\n".join(lines) + "\n")
    extra = ("--days", "2", "--trace", str(trace), "--ideal-sensor", "--acknowledge-after", "2")
    end_ms = 2 * 1440 * MINUTE_MS
    clean_out, out = tmp_path / "clean", tmp_path / "killed"
    clean = subprocess.run(command(clean_out, *extra), capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr

    # the first kill lands after the urgent low was raised, acknowledged and re-sounded once
    first = kill_when(command(out, *extra), out / "receiver.sqlite", 190 * MINUTE_MS)
    kills, summary = run_killed(out, extra, end_ms, kills=4, seed=11)
    kills = [first, *kills]

    history = events(out)
    raised = [
        e["t_min"] for e in history if e["kind"] == "alert_raised" and e["alert"] == "urgent_low"
    ]
    assert raised == [120]
    sounded = raised + [
        e["t_min"] for e in history if e["kind"] == "alert_repeated" and e["alert"] == "urgent_low"
    ]
    acked = [
        e["t_min"]
        for e in history
        if e["kind"] == "alert_acknowledged" and e["alert"] == "urgent_low"
    ]
    assert not [e for e in history if e["kind"] == "alert_cleared" and e["alert"] == "urgent_low"]
    # every sound acknowledged 2 min later, each acknowledgement held for its 30 min re-alert
    # interval: never a 5-min repeat, whichever side of a kill it fell
    assert acked == [t + 2 for t in sounded][: len(acked)] and len(acked) >= len(sounded) - 1
    for ack_t, next_t in zip(acked, sounded[1:], strict=False):
        assert next_t == ack_t + 30
    assert all(b - a == 32 for a, b in itertools.pairwise(sounded))
    # the kills fell across the acknowledged stretch, some while an acknowledgement held
    assert sounded[0] * MINUTE_MS < kills[0] and kills[-1] < sounded[-1] * MINUTE_MS
    assert any(a * MINUTE_MS < k < (a + 30) * MINUTE_MS for k in kills for a in acked)
    # the same alert history, acknowledgements included, as the run nobody killed
    assert alert_history(history) == alert_history(events(clean_out))
    assert json.loads(clean.stdout)["alerts"] == summary["alerts"]
    assert summary["readings"]["lost"] == 0 and summary["readings"]["duplicates"] == 0


def test_a_foreign_or_corrupt_store_exits_2_and_is_left_alone(tmp_path):
    cases = {
        "foreign": b"this is not a database at all\n" * 100,
        "corrupt": b"SQLite format 3\x00" + bytes(range(256)) * 16,
    }
    for name, content in cases.items():
        out = tmp_path / name
        out.mkdir()
        store = out / "receiver.sqlite"
        store.write_bytes(content)
        done = subprocess.run(
            command(out, "--days", "0.5"), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, (name, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(store) in lines[0], (name, done.stderr)
        assert "Traceback" not in done.stderr
        assert store.read_bytes() == content
        assert sorted(p.name for p in out.iterdir()) == ["receiver.sqlite"]


def test_fresh_starts_over(tmp_path):
    out = tmp_path / "out"
    first = subprocess.run(command(out, "--days", "0.5"), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    other = subprocess.run(command(out, "--days", "1"), capture_output=True, text=True)
    assert other.returncode == 2 and "--fresh" in other.stderr
    fresh = subprocess.run(command(out, "--days", "1", "--fresh"), capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["session"]["simulated_min"] == 1440
