"""Where the sessions of a study run: in this process, on a local Dask cluster, or on an
existing one.

- ``workers=0``: a plain loop in this process, no Dask (the baseline of bench/population.py).
- ``workers=K`` (default: every core this process may use): a ``distributed.LocalCluster`` of K
  single-threaded worker processes (``threads=True``: K threads in this process instead, which
  starts in a fraction of a second; the GIL then serialises the work, so it is for tests and
  small runs), its HTTP server on a free port, started and closed around the study.
- ``scheduler="tcp://host:8786"``: the workers of an existing cluster (each needs cgmsim
  installed, the same version as here).

Sessions are submitted one task each; results come back as they finish and are put back in
session order by the caller, so the numbers never depend on the workers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sim.population.sessions import SessionOutcome, SessionSpec, run_session

Progress = Callable[[int, int], None]


def default_workers() -> int:
    """Every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Runner:
    """How to run sessions: ``workers`` (0: in-process, no Dask), ``threads``, ``scheduler``."""

    workers: int = 0
    threads: bool = False
    scheduler: str | None = None

    def describe(self) -> str:
        if self.scheduler is not None:
            return f"dask scheduler {self.scheduler}"
        if self.workers == 0:
            return "in-process"
        return f"local dask cluster, {self.workers} {'threads' if self.threads else 'processes'}"

    def run(
        self, specs: Sequence[SessionSpec], progress: Progress | None = None
    ) -> list[SessionOutcome]:
        """Every session's outcome, in the order of ``specs``."""
        advance = progress or (lambda done, total: None)
        total = len(specs)
        advance(0, total)
        if self.workers == 0 and self.scheduler is None:
            outcomes = []
            for done, spec in enumerate(specs, 1):
                outcomes.append(run_session(spec))
                advance(done, total)
            return outcomes
        from distributed import as_completed

        with self._client() as client:
            futures = client.map(run_session, list(specs), pure=False)
            order = {future.key: i for i, future in enumerate(futures)}
            results: list[SessionOutcome | None] = [None] * total
            for done, future in enumerate(as_completed(futures), 1):
                results[order[future.key]] = future.result()
                advance(done, total)
        return [r for r in results if r is not None]

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
