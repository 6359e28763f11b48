"""One whole simulated session: sensor -> transmitter -> link -> receiver, in virtual time.

The driver advances a virtual clock straight to the earliest of: the next sensor sample (every
5 minutes), a core's timer, a fault (outage start or end, receiver restart), a simulated user's
acknowledgement (``acknowledge_after_min``). Nothing waits on a wall clock. Randomness: one
``SeedSequence(seed)`` spawned per component (sensor chain, link loss).
"""

from __future__ import annotations

import pathlib

import numpy as np

from sim import durable
from sim.bookkeeping import RECONNECT_MS, SAMPLE_MS, Bookkeeper, Progress, recording_header
from sim.durable import DurableReceiver
from sim.links.memory import MemoryLink
from sim.recording import RecordingWriter
from sim.session.config import SimulationConfig
from sim.session.result import SimulationResult
from sim.store import ReceiverStore


def run(
    config: SimulationConfig,
    store_path: pathlib.Path | None = None,
    *,
    record: pathlib.Path | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate the session. With ``store_path`` the receiver is durable (``sim.durable``):
    every pump that gave receiver events is committed to the SQLite store there, receiver
    restarts reload from it, and a run started on a store that already holds this session (a
    previous process was killed) resumes where the last commit left it. With ``record``, every
    input of both cores and what they emitted is written there (``sim.recording``; gzip when
    the name ends in ``.gz``) for ``cgmsim replay``. ``progress(done_ms, end_ms)`` is called
    after every sensor sample (a progress bar)."""
    if record is not None:
        with RecordingWriter.create(record, recording_header(config, "memory")) as writer:
            return _stored(config, store_path, writer, progress)
    return _stored(config, store_path, None, progress)


def _stored(
    config: SimulationConfig,
    store_path: pathlib.Path | None,
    writer: RecordingWriter | None,
    progress: Progress | None,
) -> SimulationResult:
    if store_path is None:
        return _run(config, None, writer, progress)
    with ReceiverStore.open(store_path) as store:
        session = durable.session_id(config.profile.name, config.seed)
        keeper = durable.DurableReceiver(store, session, durable.fingerprint(config))
        return _run(config, keeper, writer, progress)


def _run(
    config: SimulationConfig,
    keeper: DurableReceiver | None,
    writer: RecordingWriter | None,
    progress: Progress | None,
) -> SimulationResult:
    books = Bookkeeper(config, keeper, writer, progress)
    session = books.session
    end_ms = session.end_ms
    tx = books.transmitter()

    def take_sample(now: int) -> None:
        books.take_sample(tx, now, lambda sample: tx.sample(sample, now))

    now, receiver = books.resume(tx)
    next_sample = (now // SAMPLE_MS + 1) * SAMPLE_MS
    link = MemoryLink(
        tx,
        receiver,
        loss=config.faults.loss,
        rng=np.random.default_rng(session.link_seed),
        on_receiver_event=books.on_event,
    )
    books.lost = lambda: link.lost
    outages, restarts = books.outages_ms, books.restarts_ms
    reconnect_at: int | None = None

    def user_acknowledges(now: int) -> None:
        """One press per acknowledgement due. Each runs the engine up to ``now``: a repeat of
        another alert due at this very moment sounds then (acknowledged after its delay)."""
        for alert in books.due(now):
            if books.press(link.rx, alert, now):
                link.pump(now)

    if books.resumed is None:
        link.connect(0)
    else:
        reconnect_at = now + RECONNECT_MS  # the restarted receiver process reconnects
    fault_times = sorted({t for window in outages for t in window} | set(restarts))
    steps_at_now = 0
    while now < end_ms:
        candidates = [next_sample, tx.get_timer(), link.rx.get_timer(), reconnect_at]
        candidates += [t for t in fault_times if t > now][:1]
        candidates += books.pending_acks.values()
        previous, now = now, min(t for t in candidates if t is not None and t >= now)
        steps_at_now = steps_at_now + 1 if now == previous else 0
        if steps_at_now > 1_000:
            raise RuntimeError(f"virtual time stuck at {now} ms: a timer does not move on")
        if now > end_ms:
            break
        if now in restarts:
            link.disconnect(now, "receiver restart")
            link.replace_receiver(books.restarted(link.rx, now))
            reconnect_at = now + RECONNECT_MS
        if link.up and not books.link_up_at(now):
            link.disconnect(now, "outage")
        if not link.up and reconnect_at is None and books.link_up_at(now) and now not in restarts:
            reconnect_at = now
        if reconnect_at is not None and now >= reconnect_at:
            reconnect_at = None  # in an outage, its end reconnects (above, at that time)
            if books.link_up_at(now):
                link.connect(now)
        user_acknowledges(now)  # before a repeat due now: acknowledged in time, it stays silent
        if now == next_sample:
            take_sample(now)
            link.pump(now)  # a reading reaches the receiver before its timers run
            next_sample += SAMPLE_MS
        if tx.get_timer() is not None and tx.get_timer() <= now:
            tx.handle_timer(now)
        if link.rx.get_timer() is not None and link.rx.get_timer() <= now:
            link.rx.handle_timer(now)
        link.pump(now)
        if not link.up and reconnect_at is None and books.link_up_at(now):
            reconnect_at = now + RECONNECT_MS
        books.commit(link.rx, now)
    return books.finish(link.rx)


__all__ = ["run"]
