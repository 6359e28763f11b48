"""The receiver's durable store, on real files and real SQLite; crash safety in real processes."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from sim.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    ReceiverStore,
    StoredEvent,
    StoredReading,
    StoreError,
)

ROOT = Path(__file__).resolve().parents[2]


def reading(offset: int, glucose: float | None = 120.0, delivery: str = "live") -> StoredReading:
    return StoredReading(offset, glucose, -1.5, delivery, 60_000 * offset + 17)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def open_fails(path: Path, *needles: str) -> str:
    """Opening must raise StoreError naming the file, and leave every file in its folder as is."""
    before = snapshot(path.parent)
    with pytest.raises(StoreError) as info:
        ReceiverStore.open(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for needle in needles:
        assert needle in message
    assert snapshot(path.parent) == before
    return message


def filled_store(path: Path, n: int = 2000) -> None:
    with ReceiverStore.open(path) as store:
        store.commit_batch(
            "s1",
            readings=[reading(5 * i, 80.0 + i % 200) for i in range(n)],
            events=[StoredEvent(i, "alert_raised", {"alert": "low", "i": i}) for i in range(50)],
            states={"alerts": {"acknowledged": ["low"]}},
        )


# -- round trips ---------------------------------------------------------------------------------


def test_new_store_round_trips_readings_events_and_state(tmp_path):
    path = tmp_path / "receiver.db"
    with ReceiverStore.open(path) as store:
        assert store.readings("s1") == [] and store.events("s1") == []
        assert store.last_time_offset("s1") is None
        assert store.load_state("s1", "alerts") is None

        stored = [reading(10), reading(0, None, "backfill"), reading(5, 39.0)]
        assert store.add_readings("s1", stored) == 3
        events = [
            StoredEvent(1_000, "phase_changed", {"phase": "active"}),
            StoredEvent(500, "alert_raised", {"alert": "urgent_low", "value": 54.0, "n": [1, 2]}),
        ]
        store.add_events("s1", events)
        store.save_state("s1", "alerts", {"acked": {"low": 123}, "repeat_at_ms": None})

        assert store.readings("s1") == sorted(stored, key=lambda r: r.time_offset_min)
        assert store.last_time_offset("s1") == 10
        assert store.events("s1") == events  # insertion order, not time order
        assert store.load_state("s1", "alerts") == {"acked": {"low": 123}, "repeat_at_ms": None}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sessions_are_kept_apart(tmp_path):
    with ReceiverStore.open(tmp_path / "r.db") as store:
        store.commit_batch("a", [reading(0)], [StoredEvent(0, "x", {})], {"k": {"v": 1}})
        store.commit_batch("b", [reading(0, 200.0), reading(5)], [], {"k": {"v": 2}})
        assert store.readings("a") == [reading(0)]
        assert store.last_time_offset("b") == 5
        assert store.events("b") == [] and len(store.events("a")) == 1
        assert store.load_state("a", "k") == {"v": 1} and store.load_state("b", "k") == {"v": 2}


def test_adding_a_reading_again_keeps_the_first_value(tmp_path):
    with ReceiverStore.open(tmp_path / "r.db") as store:
        assert store.add_readings("s1", [reading(0), reading(5, 100.0)]) == 2
        again = [reading(5, 300.0, "backfill"), reading(10), reading(10, 50.0), reading(0)]
        assert store.add_readings("s1", again) == 1
        assert store.add_readings("s1", []) == 0
        assert store.readings("s1") == [reading(0), reading(5, 100.0), reading(10)]


def test_saved_state_is_replaced_whole(tmp_path):
    with ReceiverStore.open(tmp_path / "r.db") as store:
        store.save_state("s1", "alerts", {"a": 1, "b": 2})
        store.save_state("s1", "alerts", {"c": 3})
        assert store.load_state("s1", "alerts") == {"c": 3}


def test_reopening_keeps_everything(tmp_path):
    path = tmp_path / "r.db"
    with ReceiverStore.open(path) as store:
        store.commit_batch("s1", [reading(0), reading(5)], [StoredEvent(7, "e", {"x": 1})])
        store.save_state("s1", "alerts", {"acked": ["high"]})
    with ReceiverStore.open(path) as store:
        assert store.readings("s1") == [reading(0), reading(5)]
        assert store.events("s1") == [StoredEvent(7, "e", {"x": 1})]
        assert store.load_state("s1", "alerts") == {"acked": ["high"]}
        assert store.add_readings("s1", [reading(5), reading(10)]) == 1


def test_an_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "r.db"
    path.touch()
    with ReceiverStore.open(path) as store:
        store.add_readings("s1", [reading(0)])
    with ReceiverStore.open(path) as store:
        assert store.readings("s1") == [reading(0)]


def test_a_nan_value_comes_back_as_none(tmp_path):
    with ReceiverStore.open(tmp_path / "r.db") as store:
        store.add_readings("s1", [StoredReading(0, float("nan"), float("nan"), "live", 1)])
        assert store.readings("s1") == [StoredReading(0, None, None, "live", 1)]


def test_invalid_readings_and_events_are_refused(tmp_path):
    with pytest.raises(ValueError, match="delivery"):
        reading(0, delivery="carrier pigeon")
    with pytest.raises(ValueError, match="time_offset_min"):
        reading(-5)
    with ReceiverStore.open(tmp_path / "r.db") as store, pytest.raises(TypeError, match="dict"):
        store.save_state("s1", "alerts", [1, 2])  # type: ignore[arg-type]


# -- atomicity -----------------------------------------------------------------------------------


def test_a_batch_that_fails_midway_stores_nothing(tmp_path):
    path = tmp_path / "r.db"
    with ReceiverStore.open(path) as store:
        store.commit_batch("s1", [reading(0)], [StoredEvent(0, "e", {})], {"alerts": {"v": 1}})
        bad = StoredEvent(2, "alert_raised", {"alert": {"low"}})  # a set: not JSON
        with pytest.raises(TypeError, match="alert_raised"):
            store.commit_batch(
                "s1",
                readings=[reading(5), reading(10)],
                events=[StoredEvent(1, "ok", {}), bad],
                states={"alerts": {"v": 2}},
            )
        assert store.readings("s1") == [reading(0)]
        assert store.events("s1") == [StoredEvent(0, "e", {})]
        assert store.load_state("s1", "alerts") == {"v": 1}
        assert store.add_readings("s1", [reading(5)]) == 1  # the store is still usable
    with ReceiverStore.open(path) as store:
        assert [r.time_offset_min for r in store.readings("s1")] == [0, 5]


def test_a_failing_readings_generator_stores_nothing(tmp_path):
    def readings():
        yield reading(0)
        yield reading(5)
        raise RuntimeError("link dropped")

    with ReceiverStore.open(tmp_path / "r.db") as store:
        with pytest.raises(RuntimeError, match="link dropped"):
            store.add_readings("s1", readings())
        assert store.readings("s1") == []
        assert store.last_time_offset("s1") is None


# -- files that are not (or no longer) a store ---------------------------------------------------


def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('Ada')")
    conn.commit()
    conn.close()
    open_fails(path, "not a cgmsim store", "application_id")
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_a_database_of_another_application_is_refused(tmp_path):
    path = tmp_path / "other.db"
    filled_store(path, n=10)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.close()
    open_fails(path, "not a cgmsim store")


def test_random_bytes_are_refused_untouched(tmp_path):
    path = tmp_path / "noise.db"
    path.write_bytes(random.Random(1).randbytes(10_000))
    open_fails(path, "not an SQLite database")


def test_a_corrupted_page_is_reported_not_papered_over(tmp_path):
    path = tmp_path / "r.db"
    filled_store(path)
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    pages = len(data) // page_size
    assert pages > 10
    middle = pages // 2 * page_size
    data[middle : middle + page_size] = random.Random(2).randbytes(page_size)
    path.write_bytes(data)
    open_fails(path, "corrupt")


def test_a_truncated_database_is_reported(tmp_path):
    path = tmp_path / "r.db"
    filled_store(path)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)
    open_fails(path, "corrupt")


def test_a_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "r.db"
    filled_store(path, n=10)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,)
        )
    conn.close()
    open_fails(path, "newer", f"schema version {SCHEMA_VERSION + 1}")


def test_a_store_missing_its_tables_is_refused(tmp_path):
    path = tmp_path / "r.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.commit()
    conn.close()
    open_fails(path, "missing table")


def test_a_missing_folder_is_an_error_not_a_crash(tmp_path):
    with pytest.raises(StoreError, match="cannot open"):
        ReceiverStore.open(tmp_path / "no" / "such" / "r.db")


# -- crash safety in real processes --------------------------------------------------------------

BATCH = 3
CHILD = """
import sys, time
from pathlib import Path
from typing import IO
from sim.store import ReceiverStore, StoredEvent, StoredReading

path, session, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = ReceiverStore.open(path)
last = store.last_time_offset(session)
progress = store.load_state(session, "progress")
if (progress and progress["last"]) != last:
    sys.exit(f"state {progress} disagrees with the last reading {last}")
offset = 0 if last is None else last + 5
print("start", offset, flush=True)
deadline = time.monotonic() + 20  # should the parent never kill us
while time.monotonic() < deadline:
    last = offset + 5 * (batch - 1)
    new = store.commit_batch(
        session,
        readings=[StoredReading(offset + 5 * i, 100.0 + i, 0.5, "live", 7) for i in range(batch)],
        events=[StoredEvent(last, "batch", {"last": last})],
        states={"progress": {"last": last}},
    )
    if new != batch:
        sys.exit(f"only {new} of {batch} readings at {offset} were new")
    print(last, flush=True)
    offset = last + 5
sys.exit("never killed")
"""


def text_of(file: IO[str]) -> str:
    file.seek(0)
    return file.read()


def check_store(path: Path, reported: list[int]) -> int:
    """Everything reported is there, once, consistent across tables; returns the last offset."""
    with ReceiverStore.open(path) as store:  # runs integrity_check
        offsets = [r.time_offset_min for r in store.readings("s1")]
        events = store.events("s1")
        progress = store.load_state("s1", "progress")
    assert offsets == list(range(0, 5 * len(offsets), 5))  # no gap, no duplicate
    assert set(reported) <= set(offsets)
    assert len(offsets) == BATCH * len(events)  # readings and their event: all or nothing
    assert [e.data["last"] for e in events] == offsets[BATCH - 1 :: BATCH]
    assert progress == {"last": offsets[-1]}
    return offsets[-1]


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    rng = random.Random(20240605)
    path = tmp_path / "receiver.db"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    reported: list[int] = []
    last = None
    for _ in range(5):
        with (tmp_path / "child.err").open("w+") as err:
            child = subprocess.Popen(
                [sys.executable, str(script), str(path), "s1", str(BATCH)],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
            assert child.stdout is not None
            try:
                start = child.stdout.readline()
                assert start == f"start {0 if last is None else last + 5}\n", text_of(err)
                for _ in range(rng.randint(1, 20)):
                    line = child.stdout.readline()
                    assert line, f"child died: {text_of(err)}"
                    reported.append(int(line))
                time.sleep(rng.uniform(0, 0.01))  # land anywhere: mid-commit, between commits
                os.kill(child.pid, signal.SIGKILL)
            finally:
                child.kill()
                child.wait(timeout=10)
            reported.extend(int(line) for line in child.stdout.read().split())
            child.stdout.close()
            assert child.returncode == -signal.SIGKILL, text_of(err)
        last = check_store(path, reported)
        assert last >= reported[-1]

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
