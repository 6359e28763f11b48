"""Population studies on Dask: patient-sessions per second with 1 and 2 local worker processes,
and the scaling efficiency ``rate(2) / (2 * rate(1))``. Each cluster is started and warmed up
(one session per worker) before the timed study, which goes through its scheduler; the start
is reported apart (a study on a cluster that is already up does not pay it).

Baseline, measured in the same run: the same sessions in a plain loop in this process, no Dask
(``--workers 0``). Every run must give the same numbers (checked here too). Sessions are
``BENCH_POPULATION_PATIENTS`` (default 12) patients, the published ones in turn, of
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
    patients = int(os.environ.get("BENCH_POPULATION_PATIENTS", "12"))
    days = float(os.environ.get("BENCH_POPULATION_DAYS", "2"))
    print(
        f"{'population study, ' + str(patients) + ' patients x ' + str(days) + ' d':40} "
        f"{'wall s':>8} {'sessions/s':>11} {'vs loop':>9}"
    )
    base_s, base = _timed(Runner(workers=0), patients, days)
    print(f"{'baseline: in-process loop, no Dask':40} {base_s:8.2f} {patients / base_s:11.2f}")
    from distributed import LocalCluster

    rates = {}
    for workers in (1, 2):
        started = time.perf_counter()
        with LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=50,
        ) as cluster:
            runner = Runner(scheduler=cluster.scheduler_address)
            run_study(workers, days=0.1, seed=2, runner=runner)  # workers up, modules imported
            start_s = time.perf_counter() - started
            seconds, data = _timed(runner, patients, days)
        rates[workers] = patients / seconds
        same = "same numbers" if data == base else "NUMBERS DIFFER"
        print(
            f"{f'dask, {workers} worker process(es)':40} {seconds:8.2f} {rates[workers]:11.2f} "
            f"{base_s / seconds:9.2f}  {same}; cluster start {start_s:.1f} s"
        )
    print(
        f"scaling efficiency 1 -> 2 workers: {rates[2] / (2 * rates[1]):.0%} "
        f"({os.cpu_count()} cores on this machine)"
    )


if __name__ == "__main__":
    main()
