"""Population studies: patient-sessions per second in this process and on 1 and 2 local Dask
worker processes, and the physiology's share of the time.

Baseline, measured in the same run: the same sessions one at a time in a plain loop in this
process (``--workers 0 --batch 1``: each patient's physiology integrated alone, as before
sessions were batched). Then the default batches (the sessions shared over the workers, at most
``MAX_BATCH`` to a task, each batch's physiology one vectorised loop) in this process and on
Dask. Every run must give the same numbers (checked here too).
Each cluster is started and warmed up (one session per worker) before the timed study, which
goes through its scheduler; the start is reported apart (a study on a cluster that is already
up does not pay it).

Physiology share: the time of the batched physiology alone (``PatientBatch``, the study's
patients in the in-process study's batches) over the time of that study.

Sessions are ``BENCH_POPULATION_PATIENTS`` (default 32) patients, the published ones in turn, of
``BENCH_POPULATION_DAYS`` (default 1) day each.
"""

from __future__ import annotations

import os
import time

from sim.physiology.source import PatientBatch
from sim.population.cluster import MAX_BATCH, Runner
from sim.population.sessions import SessionSpec, physiology_seed, plan
from sim.population.study import run_study

RUNNER_KEYS = ("runner", "wall_seconds")
SAMPLES_PER_DAY = 288


def _timed(runner: Runner, patients: int, days: float) -> tuple[float, dict]:
    started = time.perf_counter()
    data = run_study(patients, days=days, seed=1, runner=runner)
    return time.perf_counter() - started, {k: v for k, v in data.items() if k not in RUNNER_KEYS}


def _physiology_seconds(specs: list[SessionSpec], days: float) -> float:
    started = time.perf_counter()
    for i in range(0, len(specs), MAX_BATCH):
        part = specs[i : i + MAX_BATCH]
        batch = PatientBatch([s.patient for s in part], [physiology_seed(s) for s in part])
        batch.samples(int(days * SAMPLES_PER_DAY) + 1)
    return time.perf_counter() - started


def _row(label: str, seconds: float, patients: int, base_s: float, note: str = "") -> None:
    print(f"{label:44} {seconds:8.2f} {patients / seconds:11.2f} {base_s / seconds:9.2f}  {note}")


def main() -> None:
    patients = int(os.environ.get("BENCH_POPULATION_PATIENTS", "32"))
    days = float(os.environ.get("BENCH_POPULATION_DAYS", "1"))
    print(
        f"{'population study, ' + str(patients) + ' patients x ' + str(days) + ' d':44} "
        f"{'wall s':>8} {'sessions/s':>11} {'vs loop':>9}"
    )
    base_s, base = _timed(Runner(workers=0, batch=1), patients, days)
    _row("baseline: in-process, one patient at a time", base_s, patients, base_s)
    seconds, data = _timed(Runner(workers=0), patients, days)
    same = "same numbers" if data == base else "NUMBERS DIFFER"
    _row("in-process, one batch", seconds, patients, base_s, same)
    physiology_s = _physiology_seconds(plan(patients, 1, days), days)
    print(
        f"physiology share: {physiology_s:.2f} s of {seconds:.2f} s batched "
        f"({physiology_s / seconds:.0%})"
    )
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
        _row(
            f"dask, {workers} worker process(es), a batch each",
            seconds,
            patients,
            base_s,
            f"{same}; cluster start {start_s:.1f} s",
        )
    print(
        f"scaling efficiency 1 -> 2 workers: {rates[2] / (2 * rates[1]):.0%} "
        f"({os.cpu_count()} cores on this machine)"
    )


if __name__ == "__main__":
    main()
