"""Where the sessions of a study run: in this process, on a local Dask cluster, or on an
existing one.

- ``workers=0``: a plain loop in this process, no Dask (the baseline of bench/population.py).
- ``workers=K`` (default: every core this process may use): a ``distributed.LocalCluster`` of K
  single-threaded worker processes (``threads=True``: K threads in this process instead, which
  starts in a fraction of a second; the GIL then serialises the work, so it is for tests and
  small runs), its HTTP server on a free port, started and closed around the study.
- ``scheduler="tcp://host:8786"``: the workers of an existing cluster (each needs cgmsim
  installed, the same version as here).

Sessions are submitted ``batch`` to a task (``sim.population.sessions.run_batch``); results come
back as they finish and are put back in session order, so the numbers never depend on the
workers or the batch size.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sim.population.sessions import SessionOutcome, SessionSpec, run_batch

Progress = Callable[[int, int], None]
# Sessions per task at most: their physiology is one vectorised loop (sim.population.sessions)
# whose cost is mostly per step, not per patient: a patient-day costs about 35 ms in a batch of
# 16, 7 ms in a batch of 100 (bench/population.py prints the physiology's share).
MAX_BATCH = 128


def default_workers() -> int:
    """Every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Runner:
    """How to run sessions: ``workers`` (0: in-process, no Dask), ``threads``, ``scheduler``,
    and ``batch``, the sessions of one task (default: the sessions shared evenly over the
    workers, at most ``MAX_BATCH`` to a task)."""

    workers: int = 0
    threads: bool = False
    scheduler: str | None = None
    batch: int | None = None

    def describe(self) -> str:
        batches = (
            "batches shared over the workers" if self.batch is None else f"batches of {self.batch}"
        )
        if self.scheduler is not None:
            return f"dask scheduler {self.scheduler}, {batches}"
        if self.workers == 0:
            return f"in-process, {batches}"
        kind = "threads" if self.threads else "processes"
        return f"local dask cluster, {self.workers} {kind}, {batches}"

    def run(
        self, specs: Sequence[SessionSpec], progress: Progress | None = None
    ) -> list[SessionOutcome]:
        """Every session's outcome, in the order of ``specs``."""
        advance = progress or (lambda done, total: None)
        total = len(specs)
        advance(0, total)
        done = 0
        if self.workers == 0 and self.scheduler is None:
            batches = self._batches(specs, 1)
            outcomes = []
            for batch in batches:
                outcomes.extend(run_batch(batch))
                done += len(batch)
                advance(done, total)
            return outcomes
        from distributed import as_completed

        with self._client() as client:
            batches = self._batches(specs, len(client.scheduler_info()["workers"]))
            futures = client.map(run_batch, batches, pure=False)
            order = {future.key: i for i, future in enumerate(futures)}
            results: list[list[SessionOutcome]] = [[] for _ in batches]
            for future in as_completed(futures):
                k = order[future.key]
                results[k] = future.result()
                done += len(batches[k])
                advance(done, total)
        return [outcome for batch in results for outcome in batch]

    def _batches(self, specs: Sequence[SessionSpec], workers: int) -> list[list[SessionSpec]]:
        size = self.batch or min(MAX_BATCH, max(1, -(-len(specs) // max(workers, 1))))
        return [list(specs[i : i + size]) for i in range(0, len(specs), size)]

    @contextlib.contextmanager
    def _client(self) -> Iterator[object]:
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            with Client(self.scheduler, timeout="10s") as client:
                yield client
            return
        with (
            LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=not self.threads,
                dashboard_address=":0",  # its HTTP server on a free port, never a fixed one
                silence_logs=50,  # logging.CRITICAL: the study's output only
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
