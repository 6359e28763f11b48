"""The simglucose peer for ``bench.physiology``; runs under ``.venv-bench/bin/python``.

Reads one JSON object on standard input: ``{"runs": [{"patient": "adult#001", "carbs_g":
[...], "insulin_u_per_min": [...]}, ...]}`` (one value per minute) and steps simglucose's
``T1DPatient`` (its scipy ``dopri5`` integration of the UVA/Padova model) once a minute with
exactly those inputs: a meal's carbohydrate is given in the minute it starts, as simglucose's
scenarios do, and the patient eats it at 5 g/min. Writes one JSON line: per run the plasma
glucose ``x[3]/Vg`` (mg/dL) at minutes 0..T and the seconds the stepping took.

Standard library and simglucose only: nothing from cgmsim is importable here.
"""

from __future__ import annotations

import json
import sys
import time
from importlib import metadata

from simglucose.patient.t1dpatient import Action, T1DPatient


def run(patient_name: str, carbs: list[float], insulin: list[float]) -> dict[str, object]:
    patient = T1DPatient.withName(patient_name)
    vg = float(patient._params.Vg)
    glucose = [float(patient.state[3]) / vg]
    began = time.perf_counter()
    for cho, rate in zip(carbs, insulin, strict=True):
        patient.step(Action(CHO=cho, insulin=rate))
        glucose.append(float(patient.state[3]) / vg)
    seconds = time.perf_counter() - began
    return {"patient": patient_name, "glucose": glucose, "seconds": seconds}


def main() -> None:
    request = json.load(sys.stdin)
    runs = [run(r["patient"], r["carbs_g"], r["insulin_u_per_min"]) for r in request["runs"]]
    versions = {name: metadata.version(name) for name in ("simglucose", "numpy", "scipy")}
    print(json.dumps({"runs": runs, "versions": versions}))


if __name__ == "__main__":
    main()
