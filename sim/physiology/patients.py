"""The 30 published virtual patients of the UVA/Padova T1D simulator, as parameter arrays.

The numbers are read from ``data/vpatient_params.csv`` and ``data/quest.csv``, copied unchanged
from simglucose 0.2.11 (MIT), which took them from the academic version of the UVA/Padova
simulator (Kovatchev et al., JDST 3(1):44, 2009); see ``data/README.md``.

A ``Patients`` holds one array of shape ``(n,)`` per parameter, so a population of ``n`` patients
(repeats allowed) is integrated in one vectorised step. Names are ``adolescent#001`` ...
``child#010``; a group name (``adolescent``, ``adult``, ``child``) or ``all`` stands for its
members in order.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
GROUPS = ("adolescent", "adult", "child")
STATE_COLUMNS = tuple(f"x0_{i:2d}" for i in range(1, 14))  # "x0_ 1" ... "x0_13"


@dataclass(frozen=True, eq=False)
class Patients:
    """Parameters of ``n`` virtual patients (Dalla Man 2007 notation as used by simglucose):
    masses per kg of body weight (mg/kg, pmol/kg), rates per minute."""

    names: tuple[str, ...]
    BW: np.ndarray  # body weight, kg
    Vg: np.ndarray  # glucose distribution volume, dL/kg
    Vi: np.ndarray  # insulin distribution volume, L/kg
    Gb: np.ndarray  # basal plasma glucose, mg/dL
    Ib: np.ndarray  # basal plasma insulin, pmol/L
    kabs: np.ndarray
    kmax: np.ndarray
    kmin: np.ndarray
    b: np.ndarray
    d: np.ndarray
    f: np.ndarray
    kp1: np.ndarray
    kp2: np.ndarray
    kp3: np.ndarray
    Fsnc: np.ndarray
    ke1: np.ndarray
    ke2: np.ndarray
    k1: np.ndarray
    k2: np.ndarray
    Vm0: np.ndarray
    Vmx: np.ndarray
    Km0: np.ndarray
    p2u: np.ndarray
    m1: np.ndarray
    m2: np.ndarray
    m4: np.ndarray
    m30: np.ndarray
    ki: np.ndarray
    kd: np.ndarray
    ka1: np.ndarray
    ka2: np.ndarray
    ksc: np.ndarray
    u2ss: np.ndarray  # basal insulin infusion at steady state, pmol/kg/min
    x0: np.ndarray  # (13, n) basal steady state
    CR: np.ndarray  # carbohydrate ratio, g/U (quest.csv)
    CF: np.ndarray  # correction factor, mg/dL/U (quest.csv)
    age: np.ndarray  # years (quest.csv)

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def basal_u_per_min(self) -> np.ndarray:
        """The basal insulin rate that holds the steady state: ``u2ss·BW/6000`` U/min
        (1 U = 6000 pmol)."""
        return self.u2ss * self.BW / 6000.0

    def take(self, index: Sequence[int] | np.ndarray) -> Patients:
        """The patients at ``index`` (repeats allowed), as a new population."""
        index = np.asarray(index, dtype=np.int64)
        values = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "names":
                values["names"] = tuple(value[i] for i in index)
            elif field.name == "x0":
                values["x0"] = value[:, index]
            else:
                values[field.name] = value[index]
        return Patients(**values)


@cache
def _table() -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Every column of both files, rows in the order of ``vpatient_params.csv``."""
    with open(DATA / "vpatient_params.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(DATA / "quest.csv", newline="") as handle:
        quest = {row["Name"]: row for row in csv.DictReader(handle)}
    names = tuple(row["Name"] for row in rows)
    columns = {key: np.array([float(row[key]) for row in rows]) for key in rows[0] if key != "Name"}
    for key in ("CR", "CF", "Age"):
        columns[key] = np.array([float(quest[name][key]) for name in names])
    return names, columns


def patient_names() -> tuple[str, ...]:
    """The 30 published patients: adolescent#001-#010, adult#001-#010, child#001-#010."""
    return _table()[0]


def resolve(name: str) -> tuple[str, ...]:
    """Patient names for ``name``: one patient, a group (``adult``) or ``all``.
    Raises ``ValueError`` naming the valid choices."""
    names = patient_names()
    if name in names:
        return (name,)
    if name == "all":
        return names
    if name in GROUPS:
        return tuple(n for n in names if n.startswith(name + "#"))
    raise ValueError(
        f"unknown virtual patient {name!r}: use adolescent#001-#010, adult#001-#010, "
        "child#001-#010, a group (adolescent, adult, child) or all"
    )


def load_patients(names: Iterable[str]) -> Patients:
    """Parameters of the named patients, in the order given (repeats allowed)."""
    all_names, columns = _table()
    index = []
    for name in names:
        index.extend(all_names.index(member) for member in resolve(name))
    if not index:
        raise ValueError("no virtual patients named")
    rows = np.array(index)
    values = {
        field.name: columns[field.name][rows] for field in fields(Patients) if field.name in columns
    }
    return Patients(
        names=tuple(all_names[i] for i in rows),
        x0=np.stack([columns[column][rows] for column in STATE_COLUMNS]),
        age=columns["Age"][rows],
        **values,
    )
