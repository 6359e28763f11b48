"""The simulated receiver's durable side: what ``world.run`` commits to, and resumes from, a
:class:`~sim.store.ReceiverStore` (an adapter: the pure receiver core knows nothing of it).

One session id per simulation (``f"{profile}-{seed}"``). After every pump of the link that gave
receiver events (or moved the collector's de-duplication state), one ``commit_batch`` writes
together: the new readings (``StoredReading``, delivery live/backfill), the other receiver events
(``StoredEvent``: phase, link, alerts, the simulated user's acknowledgements; ``data`` is the
events.jsonl record) and the state blobs ``receiver`` (``Receiver.snapshot()``), ``progress``
(the virtual time reached, ``now_ms``, the run's counters so far and, with a simulated user,
``pending_acks``: the acknowledgements to come) and ``config`` (what simulation this is). A
process killed at any moment leaves the store at the last commit, where the next run resumes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from firmware.profiles import MINUTE_MS
from firmware.receiver import display
from firmware.receiver.receiver import ReadingShown, Receiver
from sim.store import ReceiverStore, StoredEvent, StoredReading

__all__ = ["DurableReceiver", "ResumeMismatch", "session_id"]

RECEIVER_KEY = "receiver"
PROGRESS_KEY = "progress"
CONFIG_KEY = "config"
_LIMIT_TEXT = {40.0: "LOW", 400.0: "HIGH"}


class ResumeMismatch(Exception):
    """The store holds a session of the same id made by a different simulation."""


def session_id(profile: str, seed: int) -> str:
    return f"{profile}-{seed}"


def fingerprint(config: Any) -> dict[str, Any]:
    """What makes a simulation: resuming with anything else would mix two runs."""
    faults = config.faults
    return json.loads(
        json.dumps(
            {
                "profile": config.profile.name,
                "days": config.days,
                "seed": config.seed,
                "source": config.source.name,
                "ideal_sensor": config.ideal_sensor,
                "faults": {
                    "loss": faults.loss,
                    "outages_min": [list(w) for w in faults.outages_min],
                    "receiver_restarts": faults.receiver_restarts,
                },
                "e2e_crc": config.e2e_crc,
                "clock_at_zero": config.clock_at_zero.isoformat(),
                "alerts": dataclasses.asdict(config.alerts),
                # only when set, so stores made before the simulated user existed still match
                **(
                    {"acknowledge_after_min": config.acknowledge_after_min}
                    if getattr(config, "acknowledge_after_min", None) is not None
                    else {}
                ),
            },
            default=str,
        )
    )


class DurableReceiver:
    """Buffers a run's receiver events and commits them with the receiver's state."""

    def __init__(self, store: ReceiverStore, session: str, config: dict[str, Any]) -> None:
        self.store, self.session, self.config = store, session, config
        self._readings: list[StoredReading] = []
        self._events: list[StoredEvent] = []
        self._mark: tuple[int, int] | None = None
        self.seq = 0  # the place of the next event in the run's whole event history
        saved = store.load_state(session, CONFIG_KEY)
        if saved is not None and saved != config:
            changed = sorted(
                k for k in config.keys() | saved.keys() if config.get(k) != saved.get(k)
            )
            raise ResumeMismatch(
                f"{store.path}: holds session {session!r} of a different simulation"
                f" ({', '.join(changed)} differ); start over with --fresh"
            )
        progress = store.load_state(session, PROGRESS_KEY)
        self.resumed: dict[str, Any] | None = progress  # None: a new session

    # -- resuming ------------------------------------------------------------------------------

    def receiver_state(self) -> dict[str, Any] | None:
        """The last committed ``Receiver.snapshot()``."""
        state = self.store.load_state(self.session, RECEIVER_KEY)
        if state is not None:  # the readings received are the stored ones (see commit)
            state["seen"] = [r.time_offset_min for r in self.store.readings(self.session)]
        return state

    def readings(self) -> list[StoredReading]:
        return self.store.readings(self.session)

    def history(self, stored: list[StoredReading] | None = None) -> list[dict[str, Any]]:
        """The events.jsonl records committed so far, in the order they came: each stored
        event knows its place (``seq``), the readings (rebuilt from the stored readings, in
        the order they were received; ``stored`` when the caller has just read them) fill
        the places between."""
        readings = sorted(
            self.readings() if stored is None else stored,
            key=lambda r: (r.received_ms, r.delivery != "live", r.time_offset_min),
        )
        pending = iter(reading_record(r) for r in readings)
        out: list[dict[str, Any]] = []
        for event in self.store.events(self.session):
            record = dict(event.data)
            seq = record.pop("seq", len(out))
            while len(out) < seq and (reading := next(pending, None)) is not None:
                out.append(reading)
            out.append(record)
        out.extend(pending)
        return out

    # -- committing ----------------------------------------------------------------------------

    def add(self, event: object, record: dict[str, Any] | None) -> None:
        """One receiver event (as the link hands it to the driver), with its events.jsonl form."""
        if record is None:
            return
        seq, self.seq = self.seq, self.seq + 1
        if isinstance(event, ReadingShown):
            self._readings.append(
                StoredReading(
                    event.time_offset,
                    event.glucose_mgdl,
                    event.trend_mgdl_min,
                    "backfill" if event.backfill else "live",
                    event.t_ms,
                )
            )
        else:
            data = {"seq": seq, **record}
            self._events.append(StoredEvent(event_t_ms(event), record["kind"], data))

    def commit(
        self, receiver: Receiver, now_ms: int, counters: Callable[[], dict[str, Any]]
    ) -> bool:
        """Commit what came since the last commit, if anything did; True when it committed."""
        collector = receiver.collector
        mark = (len(collector.seen), len(collector.absent))
        if not self._readings and not self._events and mark == self._mark:
            return False
        self.store.commit_batch(
            self.session,
            readings=self._readings,
            events=self._events,
            states={
                # What the collector has received is the readings table itself: keeping it
                # out of the snapshot keeps each commit small (it grows all session long).
                RECEIVER_KEY: receiver.snapshot(with_seen=False),
                PROGRESS_KEY: {"now_ms": now_ms, **counters()},
                CONFIG_KEY: self.config,
            },
        )
        self._readings, self._events, self._mark = [], [], mark
        return True

    def finish(
        self, receiver: Receiver, now_ms: int, counters: Callable[[], dict[str, Any]]
    ) -> None:
        """The run reached its end: a rerun finds nothing left to simulate."""
        self._mark = None
        self.commit(receiver, now_ms, counters)


def event_t_ms(event: object) -> int:
    return int(event.t_ms)  # type: ignore[attr-defined]


def reading_record(r: StoredReading) -> dict[str, Any]:
    """The events.jsonl record of a stored reading. The text comes from the reported value:
    the sensor limits it to 40-400, so 40 and 400 show as LOW and HIGH (a value that rounds to
    the limit from inside the range, which the sensor flags differently, is not told apart)."""
    glucose = r.glucose_mgdl
    limit = None if glucose is None else _LIMIT_TEXT.get(glucose)
    return {
        "t_min": r.received_ms / MINUTE_MS,
        "kind": "reading",
        "time_offset_min": r.time_offset_min,
        "glucose_mgdl": glucose,
        "text": limit or (display.shown(glucose, None) if glucose is not None else None),
        "trend_mgdl_min": r.trend_mgdl_min,
        "arrow": display.arrow(r.trend_mgdl_min),
        "backfill": r.delivery == "backfill",
    }
