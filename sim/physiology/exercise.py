"""Exercise: the heart-rate model of Breton (JDST 2(1):82, 2008) as put into the UVA/Padova model by
Dalla Man, Breton & Cobelli (JDST 3(1):56, 2009), with their parameter values (as encoded in
``hpeuscher/loopinsight1``, ``UvaPadova_Breton2008``, MIT).

Three extra states per patient, driven by the heart rate above rest ``HR - HRb``:

- ``Y`` (bpm): ``dY/dt = (HR - HRb - Y)/T_HR``: the fast effect, raising insulin-independent
  uptake during exercise: ``Vm0 -> Vm0·(1 + beta·Y)``.
- ``Z`` (0..1): ``dZ/dt = -(f(Y)/T_in + 1/T_ex)·Z + f(Y)``, ``f(Y) = u^n/(1 + u^n)``,
  ``u = Y/(a·HRb)``: switches on within minutes of exercise and decays over ``T_ex`` = 10 h after
  it — the lasting rise of insulin sensitivity after exercise.
- ``W`` (bpm·min): ``dW/dt = HR - HRb``, the accumulated exercise load; reset to 0 once ``Z``
  has fallen below ``W_RESET_Z`` (as loopinsight1 does: the paper leaves the reset open) and,
  our addition, when a new bout starts: ``Z`` takes about 30 h to fall below 0.05, so with daily
  exercise ``W`` would otherwise add up day after day.

Insulin-dependent utilisation becomes
``Uid = [Vm0·(1 + beta·Y) + Vmx·X + Vmx·A·Z·W·(X + Ib)]·Gt / (Km0·(1 - gamma·Z·W·(X + Ib)) + Gt)``,
which is exactly the exercise-free model when ``Y = Z = W = 0``.

Exercise is given as an intensity, the fraction of heart-rate reserve: ``HR = HRb + intensity·
(HRmax - HRb)`` with ``HRb = 60`` bpm and ``HRmax = 220 - age`` (age from the patient's
questionnaire).
"""

from __future__ import annotations

import numpy as np

HR_REST = 60.0  # HRb, bpm (Dalla Man 2009)
T_HR = 5.0  # min
T_IN = 1.0  # min
T_EX = 600.0  # min
A_HR = 0.1  # a
N_HILL = 4.0  # n
BETA = 0.01  # 1/bpm
ALPHA = 3e-4  # "A": 1/(bpm·min)
GAMMA = 1e-7
W_RESET_Z = 0.05


def heart_rate_excess(intensity: np.ndarray, age: np.ndarray) -> np.ndarray:
    """``HR - HRb`` (bpm) for an intensity given as a fraction of heart-rate reserve."""
    return np.asarray(intensity, float) * (220.0 - np.asarray(age, float) - HR_REST)
