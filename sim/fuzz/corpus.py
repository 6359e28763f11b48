"""Seed inputs for the fuzz engine: the traffic of a short memory-link session, recorded at
the core boundaries, plus frames drawn from the public strategies (``protocol.cgms.strategies``:
valid frames and structure-aware invalid ones). The engine mutates these.

Both are deterministic: the session has a fixed sensor input, and the strategies are drawn
under ``hypothesis.seed``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from firmware.events import Indicate, Notify, Respond, SensorSample
from firmware.profiles import G7, MINUTE_MS
from firmware.receiver.collector import CollectorConfig, WriteRequest
from firmware.receiver.receiver import Receiver, ReceiverConfig
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt, strategies
from protocol.cgms.codecs import CODECS
from sim.links.memory import MemoryLink

CALIBRATION = FactoryCalibration(770.0, 25_700.0)
CLOCK_AT_ZERO = datetime.datetime(2025, 1, 1, 8, 0, 0)
SAMPLE_MS = 5 * MINUTE_MS
UUID_OF = {name: codec.characteristic.uuid for name, codec in CODECS.items()}
NAME_OF = {uuid: name for name, uuid in UUID_OF.items()}


def counts_at(now_ms: int) -> int:
    """The sensor's raw counts at ``now_ms``: a slow swing between about 70 and 250 mg/dL."""
    mgdl = 160 + 90 * math.sin(now_ms / (90 * MINUTE_MS))
    return round(mgdl * CALIBRATION.sensitivity_counts_per_mgdl + CALIBRATION.background_counts)


@dataclass
class Traffic:
    """Values seen crossing the link, by direction and characteristic UUID."""

    writes: dict[int, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    reads: dict[int, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    notifications: list[bytes] = field(default_factory=list)
    indications: dict[int, list[bytes]] = field(default_factory=lambda: defaultdict(list))


class _RecordingLink(MemoryLink):
    traffic: Traffic

    def _from_receiver(self, event: object, now_ms: int) -> None:
        if isinstance(event, WriteRequest):
            self.traffic.writes[event.uuid].append(event.value)
        super()._from_receiver(event, now_ms)

    def _from_transmitter(self, event: object, now_ms: int) -> None:
        match event:
            case Respond(uuid=uuid, value=value) if value is not None:
                self.traffic.reads[uuid].append(value)
            case Notify(value=value):
                self.traffic.notifications.append(value)
            case Indicate(uuid=uuid, value=value):
                self.traffic.indications[uuid].append(value)
        super()._from_transmitter(event, now_ms)


@functools.cache
def recorded_traffic(minutes: int = 120) -> Traffic:
    """A session's first ``minutes`` over the memory link, with and without E2E-CRC, with one
    link loss in the middle (so the reconnection's RACP backfill is recorded too)."""
    traffic = Traffic()
    for e2e in (False, True):
        tx = Transmitter(TransmitterConfig(G7, e2e_crc=e2e), CALIBRATION, 0)
        rx = Receiver(ReceiverConfig(G7, CollectorConfig(CLOCK_AT_ZERO)), 0)
        link = _RecordingLink(tx, rx, mtu=23 if e2e else 185)
        link.traffic = traffic
        link.connect(0)
        outage = (minutes // 2 * MINUTE_MS, (minutes // 2 + 20) * MINUTE_MS)
        for now in range(SAMPLE_MS, minutes * MINUTE_MS + 1, SAMPLE_MS):
            if outage[0] <= now < outage[1]:
                link.disconnect(now, "outage")
            else:
                link.connect(now)
            tx.sample(SensorSample(counts_at(now)), now)
            link.pump(now)
    return traffic


@functools.cache
def strategy_frames(count: int = 300, seed: int = 0) -> tuple[strategies.Frame, ...]:
    """``count`` frames from :func:`protocol.cgms.strategies.frames`, valid and invalid."""
    found: list[strategies.Frame] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategies.frames())
    def collect(frame: strategies.Frame) -> None:
        found.append(frame)

    with _without_local_constants():
        collect()
    return tuple(found)


@contextlib.contextmanager
def _without_local_constants() -> Iterator[None]:
    """hypothesis mixes constants found in the modules loaded so far into what it draws, so
    one seed gave other frames in another process (after other imports); drawn without them,
    the corpus depends on the seed alone. An internal of hypothesis (pinned below 7): when it
    is not there, frames are drawn as they come."""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.conjecture.providers import Constants, SortedSet, float_to_int
    except ImportError:
        yield
        return
    empty = Constants(
        integers=SortedSet(),
        floats=SortedSet(key=float_to_int),
        bytes=SortedSet(),
        strings=SortedSet(),
    )
    original = providers._get_local_constants
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()  # it holds the constants of earlier draws
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE.cache.clear()  # ours are not for later draws


@dataclass(frozen=True)
class Seeds:
    """Seed values per characteristic name (``measurement``, ``racp``, ...)."""

    by_name: dict[str, tuple[bytes, ...]]

    def __getitem__(self, name: str) -> tuple[bytes, ...]:
        return self.by_name[name]


@functools.cache
def seeds(count: int = 300, seed: int = 0) -> Seeds:
    """Recorded traffic and strategy frames together, by characteristic name."""
    traffic = recorded_traffic()
    by_name: dict[str, list[bytes]] = defaultdict(list)
    for uuid, values in (*traffic.writes.items(), *traffic.reads.items()):
        by_name[NAME_OF[uuid]] += values
    for uuid, values in traffic.indications.items():
        by_name[NAME_OF[uuid]] += values
    by_name["measurement"] += traffic.notifications
    for frame in strategy_frames(count, seed):
        by_name[frame.name] += frame.chunks or (frame.data,)
    return Seeds(
        {name: tuple(dict.fromkeys(v for v in values if v)) for name, values in by_name.items()}
    )


MEASUREMENT = gatt.MEASUREMENT.uuid
