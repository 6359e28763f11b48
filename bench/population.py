"""Population studies on Dask: patient-sessions per second with 1 and 2 local worker processes
(cluster start included), and the scaling efficiency ``rate(2) / (2 * rate(1))``.

Baseline, measured in the same run: the same sessions in a plain loop in this process, no Dask
(``--workers 0``). Every run must give the same numbers (checked here too). Sessions are
``BENCH_POPULATION_PATIENTS`` (default 8) patients, the published ones in turn, of
``BENCH_POPULATION_DAYS`` (default 2) days each.
"""

from __future__ import annotations

import os
import time

from sim.population.cluster import Runner
from sim.population.study import run_study

RUNNER_KEYS = ("runner", "wall_seconds")


def _timed(runner: Runner, patients: int, days: float) -> tuple[float, dict]:
    started = time.perf_counter()
    data = run_study(patients, days=days, seed=1, runner=runner)
    return time.perf_counter() - started, {k: v for k, v in data.items() if k not in RUNNER_KEYS}


def main() -> None:
    patients = int(os.environ.get("BENCH_POPULATION_PATIENTS", "8"))
    days = float(os.environ.get("BENCH_POPULATION_DAYS", "2"))
    print(
        f"{'population study, ' + str(patients) + ' patients x ' + str(days) + ' d':40} "
        f"{'wall s':>8} {'sessions/s':>11} {'vs loop':>9}"
    )
    base_s, base = _timed(Runner(workers=0), patients, days)
    print(f"{'baseline: in-process loop, no Dask':40} {base_s:8.2f} {patients / base_s:11.2f}")
    rates = {}
    for workers in (1, 2):
        seconds, data = _timed(Runner(workers=workers), patients, days)
        rates[workers] = patients / seconds
        same = "same numbers" if data == base else "NUMBERS DIFFER"
        print(
            f"{f'dask, {workers} worker process(es)':40} {seconds:8.2f} {rates[workers]:11.2f} "
            f"{base_s / seconds:9.2f}  {same}"
        )
    print(
        f"scaling efficiency 1 -> 2 workers: {rates[2] / (2 * rates[1]):.0%} "
        f"({os.cpu_count()} cores on this machine)"
    )


if __name__ == "__main__":
    main()
