"""The receiver's durable store: readings, event history and engine state in SQLite (WAL).

An adapter outside the pure cores (``firmware/`` never imports it). A receiver process killed at
any moment restarts with every committed reading, event and state blob, none duplicated.

Guarantees:

* Every public write is one transaction, committed before the call returns (WAL with
  ``synchronous=NORMAL``: it survives the process being killed; an OS crash or power cut may
  lose the last commits). :meth:`ReceiverStore.commit_batch` writes readings, events and state blobs
  together, so a crash or an exception leaves all of them or none.
* Readings are keyed by ``(session_id, time_offset_min)``: adding one again is a no-op that
  keeps the first value (the receiver's de-duplication made durable).
* The file is private: created 0600 (its ``-wal`` and ``-shm`` get the same mode from SQLite),
  and an existing one is tightened to 0600.
* :meth:`ReceiverStore.open` never recreates, truncates or rewrites an existing file. It creates
  the schema only in a new or empty database; anything else must prove to be ours (the
  ``application_id`` header field and the ``meta`` table's schema version) and pass
  ``PRAGMA integrity_check``, otherwise :class:`StoreError` says, in one line naming the file,
  what is wrong. Nothing is written to a file that fails these checks.

Event ``data`` and state blobs are stored as JSON: they round-trip as JSON does (tuples come back
as lists, non-string keys as strings). A NaN glucose or trend is stored, and read back, as None.
``session_id`` ``""`` is free for store-wide state.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from sim.private_files import private_file

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "ReceiverStore",
    "StoreError",
    "StoredEvent",
    "StoredReading",
]

APPLICATION_ID = int.from_bytes(b"CGMS", "big")  # SQLite header offset 68: "this file is ours"
SCHEMA_VERSION = 1
DELIVERIES = ("live", "backfill")
BUSY_TIMEOUT_MS = 5000  # wait this long for another connection's write lock
_SQLITE_MAGIC = b"SQLite format 3\x00"
_TABLES = {"meta", "readings", "events", "state"}

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE readings (
    session_id      TEXT    NOT NULL,
    time_offset_min INTEGER NOT NULL CHECK (typeof(time_offset_min) = 'integer'
                                            AND time_offset_min >= 0),
    glucose_mgdl    REAL,
    trend_mgdl_min  REAL,
    delivery        TEXT    NOT NULL CHECK (delivery IN {DELIVERIES!r}),
    received_ms     INTEGER NOT NULL CHECK (typeof(received_ms) = 'integer'),
    PRIMARY KEY (session_id, time_offset_min)
) WITHOUT ROWID;
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT    NOT NULL,
    t_ms       INTEGER NOT NULL CHECK (typeof(t_ms) = 'integer'),
    kind       TEXT    NOT NULL,
    data       TEXT    NOT NULL
);
CREATE INDEX events_by_session ON events (session_id, id);
CREATE TABLE state (
    session_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (session_id, key)
) WITHOUT ROWID;
"""


class StoreError(Exception):
    """The store file cannot be used (corrupt, not ours, newer schema) or a write failed."""


@dataclass(frozen=True, slots=True)
class StoredReading:
    """One reading as the receiver got it; ``glucose_mgdl`` None when none was reported."""

    time_offset_min: int
    glucose_mgdl: float | None
    trend_mgdl_min: float | None
    delivery: str  # 'live' | 'backfill'
    received_ms: int

    def __post_init__(self) -> None:
        offset = self.time_offset_min
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"time_offset_min must be an int >= 0, not {offset!r}")
        if self.delivery not in DELIVERIES:
            raise ValueError(f"delivery must be one of {DELIVERIES}, not {self.delivery!r}")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One entry of the alert/phase/link history; ``data`` must be JSON-serialisable."""

    t_ms: int
    kind: str
    data: dict[str, Any]


def _json(value: Mapping[str, Any], what: str) -> str:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what}: expected a dict, not {type(value).__name__}")
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: not JSON-serialisable: {exc}") from exc


class ReceiverStore:
    """A receiver's SQLite store; build it with :meth:`open`, one per thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str) -> Self:
        """Open the store at ``path``, creating it when the file is missing or empty."""
        path = Path(path)
        _check_header(path)
        try:  # 0600 from creation, -wal and -shm too (SQLite gives them the database's mode)
            for own in (
                path,
                path.with_name(path.name + "-wal"),
                path.with_name(path.name + "-shm"),
            ):
                if own is path or own.exists():
                    private_file(own)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open: {exc}") from exc
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open: {exc}") from exc
        try:
            # Connection settings only: nothing is written to the file before it is verified.
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # WAL + NORMAL: a committed transaction survives the process being killed at any
            # moment (SIGKILL); only an OS crash or power cut may lose the last few commits.
            # FULL would fsync every commit (~1 ms each, several seconds per simulated session).
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA cell_size_check = ON")
            conn.execute("PRAGMA trusted_schema = OFF")
            if _is_blank(conn):
                _create(conn)
            _verify(conn, path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{path}: cannot use WAL mode (journal_mode is {mode!r})")
        except sqlite3.OperationalError as exc:  # locked, read-only, I/O error: not corruption
            conn.close()
            raise StoreError(f"{path}: cannot use: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{path}: corrupt database: {exc}".replace("\n", "; ")) from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        """Close the connection (the last one checkpoints the WAL into the main file)."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    def add_readings(self, session_id: str, readings: Iterable[StoredReading]) -> int:
        """Store readings not stored yet; returns how many were new."""
        return self.commit_batch(session_id, readings=readings)

    def add_events(self, session_id: str, events: Iterable[StoredEvent]) -> None:
        """Append events to the session's history."""
        self.commit_batch(session_id, events=events)

    def save_state(self, session_id: str, key: str, state: Mapping[str, Any]) -> None:
        """Replace the state blob ``key`` of the session (e.g. the alert engine's)."""
        self.commit_batch(session_id, states={key: state})

    def commit_batch(
        self,
        session_id: str,
        readings: Iterable[StoredReading] = (),
        events: Iterable[StoredEvent] = (),
        states: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> int:
        """Write readings, events and state blobs in one transaction; returns new readings.

        The iterables are consumed inside the transaction: if anything raises (a generator,
        data that is not JSON-serialisable), nothing of the batch is stored.
        """
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (session_id, time_offset_min) DO NOTHING",
                (
                    (
                        session_id,
                        r.time_offset_min,
                        r.glucose_mgdl,
                        r.trend_mgdl_min,
                        r.delivery,
                        r.received_ms,
                    )
                    for r in readings
                ),
            )
            added = conn.total_changes - before
            conn.executemany(
                "INSERT INTO events (session_id, t_ms, kind, data) VALUES (?, ?, ?, ?)",
                (
                    (session_id, e.t_ms, e.kind, _json(e.data, f"event {e.kind!r} data"))
                    for e in events
                ),
            )
            conn.executemany(
                "INSERT INTO state VALUES (?, ?, ?)"
                " ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value",
                (
                    (session_id, key, _json(value, f"state {key!r}"))
                    for key, value in (states or {}).items()
                ),
            )
        return added

    # -- reading -------------------------------------------------------------------------------

    def readings(self, session_id: str) -> list[StoredReading]:
        """The session's readings, ordered by time offset."""
        rows = self._query(
            "SELECT time_offset_min, glucose_mgdl, trend_mgdl_min, delivery, received_ms"
            " FROM readings WHERE session_id = ? ORDER BY time_offset_min",
            (session_id,),
        )
        return [StoredReading(*row) for row in rows]

    def last_time_offset(self, session_id: str) -> int | None:
        """The highest stored time offset of the session, None before its first reading."""
        rows = self._query(
            "SELECT max(time_offset_min) FROM readings WHERE session_id = ?", (session_id,)
        )
        return rows[0][0]

    def events(self, session_id: str) -> list[StoredEvent]:
        """The session's events in the order they were added."""
        rows = self._query(
            "SELECT t_ms, kind, data FROM events WHERE session_id = ? ORDER BY id", (session_id,)
        )
        return [StoredEvent(t_ms, kind, json.loads(data)) for t_ms, kind, data in rows]

    def load_state(self, session_id: str, key: str) -> dict[str, Any] | None:
        """The state blob last saved under ``key``, None if there is none."""
        rows = self._query(
            "SELECT value FROM state WHERE session_id = ? AND key = ?", (session_id, key)
        )
        return json.loads(rows[0][0]) if rows else None

    # -- plumbing ------------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: read failed: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            with _atomically(self._conn):
                yield self._conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: write failed: {exc}") from exc


@contextmanager
def _atomically(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed at the end, rolled back if anything raises."""
    conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first write
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _check_header(path: Path) -> None:
    """Reject a non-empty file that is not SQLite at all, before SQLite touches it."""
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc}") from exc
    if header and header != _SQLITE_MAGIC:
        raise StoreError(f"{path}: not a cgmsim store (not an SQLite database)")


def _is_blank(conn: sqlite3.Connection) -> bool:
    """A new or empty database: no schema objects, no application id."""
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    (objects,) = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    return app_id == 0 and objects == 0


def _create(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode = WAL")  # persistent; only allowed outside a transaction
    with _atomically(conn):
        if _is_blank(conn):  # re-check under the write lock: another process may have won
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def _verify(conn: sqlite3.Connection, path: Path) -> None:
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{path}: not a cgmsim store (SQLite application_id {app_id:#010x},"
            f" expected {APPLICATION_ID:#010x})"
        )
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    if missing := sorted(_TABLES - tables):
        raise StoreError(f"{path}: damaged cgmsim store: missing table(s) {', '.join(missing)}")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise StoreError(f"{path}: damaged cgmsim store: no valid schema version in meta")
    if (version := int(row[0])) != SCHEMA_VERSION:
        newer = "newer" if version > SCHEMA_VERSION else "older"
        raise StoreError(
            f"{path}: written by a {newer} cgmsim (schema version {version}; this one reads"
            f" {SCHEMA_VERSION} and does not migrate)"
        )
    report = [row[0] for row in conn.execute("PRAGMA integrity_check(3)")]
    if report != ["ok"]:
        lines = (line for text in report for line in text.splitlines())
        problems = [line for line in lines if line and not line.startswith("***")]
        raise StoreError(f"{path}: corrupt database: {'; '.join(problems)}")
