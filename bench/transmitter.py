"""The transmitter alone over a whole 10.5-day G7 session, its sensor input precomputed.

Measures wall time and simulated time per wall second of the sans-I/O transmitter: every
5-minute sample processed, every record stored and notified to a subscribed collector that
confirms each notification. The baseline, measured in the same run, is the bare wire cost of
the same session: encoding every record once (``measurement.encode``). Aim: under 0.2 s.
"""

from __future__ import annotations

import time

from firmware.events import Connected, Notify, SensorSample, SensorState, Sent, Subscribe
from firmware.profiles import G7, MINUTE_MS
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt, measurement
from sim.signal.models import G7_SENSOR
from sim.signal.scenarios import DAILY_LIFE
from sim.signal.sensor import SensorArray

SAMPLE_MS = 5 * MINUTE_MS


def session_input() -> tuple[list[SensorSample], object]:
    samples = G7.end_ms // SAMPLE_MS
    array = SensorArray(G7_SENSOR, DAILY_LIFE, 1, samples, 1)
    chunk = array.next(samples)
    inputs = [
        SensorSample(int(raw), SensorState(int(state)))
        for raw, state in zip(chunk.raw_counts[0], chunk.state[0], strict=True)
    ]
    return inputs, array.calibrations[0]


def run_session(inputs: list[SensorSample], calibration: object) -> int:
    tx = Transmitter(TransmitterConfig(G7), calibration, 0)  # type: ignore[arg-type]
    tx.receive(Connected(), 0)
    tx.receive(Subscribe(gatt.MEASUREMENT.uuid, notify=True), 0)
    notified = 0
    for index, sample in enumerate(inputs, 1):
        now = index * SAMPLE_MS
        tx.sample(sample, now)
        while (event := tx.next_event()) is not None:
            if isinstance(event, Notify):
                notified += 1
                tx.receive(Sent(), now)
    return notified


def best(function, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    inputs, calibration = session_input()
    notified = run_session(inputs, calibration)
    tx_seconds = best(lambda: run_session(inputs, calibration))
    records = [
        measurement.MeasurementRecord(glucose=120.0, time_offset=i * 5, trend=0.5, quality=100.0)
        for i in range(notified)
    ]
    encode_seconds = best(lambda: [measurement.encode([r]) for r in records])
    simulated = G7.end_ms / 1000
    print(
        f"{'transmitter, 10.5-day G7 session':34} {'wall s':>9} {'sim/wall':>12} {'vs encode':>10}"
    )
    print(
        f"{f'{len(inputs)} samples, {notified} notified':34} {tx_seconds:9.3f} "
        f"{simulated / tx_seconds:12,.0f} {tx_seconds / encode_seconds:10.1f}"
    )
    print(f"{'baseline: encode each record once':34} {encode_seconds:9.3f}")
    print("aim: a whole session under 0.2 s")


if __name__ == "__main__":
    main()
