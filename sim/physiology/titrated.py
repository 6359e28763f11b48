"""The published patients' titrated settings: ``data/titration.csv``, written by
``sim.physiology.titration`` (which explains the run-in that gives them)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from functools import cache

import numpy as np

from sim.physiology.patients import DATA

TABLE = DATA / "titration.csv"


@cache
def _table() -> dict[str, tuple[float, float]]:
    with open(TABLE, newline="") as handle:
        return {
            row["Name"]: (float(row["basal_scale"]), float(row["bolus_scale"]))
            for row in csv.DictReader(handle)
        }


def settings(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The titrated basal and bolus scales of the named published patients."""
    table = _table()
    rows = np.array([table[name] for name in names]).reshape(len(names), 2)
    return rows[:, 0].copy(), rows[:, 1].copy()
