"""Replay of a whole 10.5-day G7 recording (``cgmsim replay``), against reading it.

A whole session (daily life, default sensor, memory link, no faults) is recorded once to a
temporary file; then ``sim.recording.replay.replay`` rebuilds both cores and feeds them every
recorded input, comparing every output. The baseline, measured in the same run, is reading and
parsing the same file alone (``fileformat.read``: JSON decoding and line checks), the floor
any replay pays; the rest is the cores' own work and the comparison. Aim: well under 1 s.
"""

from __future__ import annotations

import pathlib
import tempfile

from bench.transmitter import best
from firmware.profiles import MINUTE_MS
from sim import world
from sim.recording import fileformat
from sim.recording.replay import replay
from sim.session.config import SimulationConfig


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "session.jsonl"
        world.run(SimulationConfig(seed=1), record=path)
        size = path.stat().st_size
        result = replay(path)
        assert result.divergence is None, result.divergence
        inputs = sum(result.inputs.values())
        replay_seconds = best(lambda: replay(path), repeat=3)
        read_seconds = best(lambda: fileformat.read(path), repeat=3)
    simulated = result.end_ms / MINUTE_MS / 1440
    print(f"{'replay, 10.5-day G7 recording':34} {'wall s':>9} {'inputs/s':>12} {'vs read':>10}")
    print(
        f"{f'{simulated:.1f} days, {inputs:,} inputs':34} {replay_seconds:9.3f} "
        f"{inputs / replay_seconds:12,.0f} {replay_seconds / read_seconds:10.1f}"
    )
    print(f"{f'baseline: read and parse {size / 1e6:.1f} MB':34} {read_seconds:9.3f}")
    print("aim: a whole session well under 1 s")


if __name__ == "__main__":
    main()
