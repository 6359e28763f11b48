"""The UVA/Padova 2008 type 1 diabetes model, vectorised over patients, on a 1-minute grid.

Equations: Dalla Man, Rizza & Cobelli, "Meal simulation model of the glucose-insulin system",
IEEE TBME 54(10):1740, 2007 (glucose, insulin, endogenous production, utilisation, renal
excretion, oral glucose absorption with the nonlinear gastric emptying of Dalla Man 2006);
Kovatchev et al., JDST 3(1):44, 2009 (type 1: no secretion, subcutaneous insulin ``Isc1``,
``Isc2``, subcutaneous glucose ``Gs``) — the 13-state form that simglucose 0.2.11 implements,
including its meal handling (a meal is eaten at 5 g/min; gastric emptying scales with the amount
``Dbar`` eaten since the meal began plus what was in the stomach then). Plus the exercise states
of ``sim.physiology.exercise`` and, with ``counter_regulation`` (the default), the glucagon
system and hypoglycaemic insulin action of the 2014 model (``sim.physiology.counter_regulation``);
without it, the 2008 model exactly (what ``bench/physiology.py`` compares with simglucose).

State ``x`` has shape ``(19, n)``: rows in ``STATES`` order, one column per patient. Inputs are
constant over each minute (carbohydrate eaten, g/min; insulin, U/min; heart rate above rest),
and each minute is integrated by classical Runge-Kutta in ``substeps`` steps.
"""

from __future__ import annotations

import numpy as np

from sim.physiology import counter_regulation as cr
from sim.physiology import exercise as ex
from sim.physiology.patients import Patients

STATES = (
    "Qsto1",  # solid glucose in the stomach, mg
    "Qsto2",  # liquid glucose in the stomach, mg
    "Qgut",  # glucose in the intestine, mg
    "Gp",  # plasma glucose, mg/kg
    "Gt",  # tissue glucose, mg/kg
    "Ip",  # plasma insulin, pmol/kg
    "X",  # insulin action on utilisation (above basal), pmol/L
    "I1",  # first delay of insulin action on production, pmol/L
    "Id",  # delayed insulin (XL), pmol/L
    "Il",  # liver insulin, pmol/kg
    "Isc1",  # subcutaneous insulin, first compartment, pmol/kg
    "Isc2",  # subcutaneous insulin, second compartment, pmol/kg
    "Gs",  # subcutaneous glucose, mg/kg
    "Y",  # exercise: heart rate effect, bpm
    "Z",  # exercise: lasting effect, 0..1
    "W",  # exercise: accumulated load, bpm·min
    "H",  # plasma glucagon, ng/L
    "XH",  # glucagon action on production, ng/L
    "SRsH",  # static glucagon secretion, ng/L/min
)
QSTO1, QSTO2, QGUT, GP, GT, IP, X, I1, ID, IL, ISC1, ISC2, GS, Y, Z, W, H, XH, SRSH = range(
    len(STATES)
)
EAT_RATE_G_PER_MIN = 5.0  # simglucose's T1DPatient.EAT_RATE
U_TO_PMOL = 6000.0


def initial_state(patients: Patients) -> np.ndarray:
    """The published basal steady state (``x0_1``..``x0_13``), no exercise history, basal
    glucagon."""
    n = patients.n
    return np.concatenate([patients.x0, np.zeros((3, n)), cr.initial_states(n)])


class Physiology:
    """``n`` patients stepped one minute at a time.

    ``step(carbs_g, insulin_u_per_min, hr_excess_bpm)``: ``carbs_g`` is carbohydrate announced
    this minute (a whole meal at once; it is eaten at 5 g/min over the following minutes),
    insulin is a rate held for the minute (a bolus of B units is B U/min for one minute),
    ``hr_excess_bpm`` the heart rate above rest."""

    def __init__(
        self,
        patients: Patients,
        substeps: int = 1,
        state: np.ndarray | None = None,
        counter_regulation: bool = True,
    ):
        if substeps < 1:
            raise ValueError("substeps must be >= 1")
        self.patients, self.substeps = patients, substeps
        self.counter_regulation = counter_regulation
        self.x = initial_state(patients) if state is None else np.array(state, float)
        self.minute = 0
        n = patients.n
        # meal bookkeeping, as simglucose's T1DPatient.step
        self.planned_g = np.zeros(n)
        self.last_eaten_g = np.zeros(n)
        self.eating = np.zeros(n, bool)
        self.last_qsto = self.x[QSTO1] + self.x[QSTO2]
        self.food_taken_g = np.zeros(n)
        self.last_hr = np.zeros(n)
        p = patients
        self.half_span = (p.kmax - p.kmin) / 2.0
        self.ra_gain = p.f * p.kabs / p.BW
        self.m2m4 = p.m2 + p.m4
        self.m1m30 = p.m1 + p.m30
        self.ka1kd = p.ka1 + p.kd
        self.insulin_gain = U_TO_PMOL / p.BW
        self.hr_scale = 1.0 / (ex.A_HR * ex.HR_REST)
        self.alpha_vmx = ex.ALPHA * p.Vmx
        self.basal_insulin = p.Ib  # pmol/L

    @property
    def glucose(self) -> np.ndarray:
        """Plasma (blood) glucose ``Gp/Vg``, mg/dL, shape ``(n,)``."""
        return self.x[GP] / self.patients.Vg

    @property
    def subcutaneous_glucose(self) -> np.ndarray:
        """``Gs/Vg``, mg/dL (what simglucose reports as BG and feeds its sensor)."""
        return self.x[GS] / self.patients.Vg

    def step(
        self,
        carbs_g: np.ndarray | float = 0.0,
        insulin_u_per_min: np.ndarray | float = 0.0,
        hr_excess_bpm: np.ndarray | float = 0.0,
    ) -> None:
        n = self.patients.n
        self.planned_g = self.planned_g + carbs_g
        to_eat = np.where(self.planned_g > 0, np.minimum(EAT_RATE_G_PER_MIN, self.planned_g), 0.0)
        self.planned_g = np.maximum(self.planned_g - to_eat, 0.0)
        starts = (to_eat > 0) & (self.last_eaten_g <= 0)
        self.last_qsto = np.where(starts, self.x[QSTO1] + self.x[QSTO2], self.last_qsto)
        self.food_taken_g = np.where(starts, 0.0, self.food_taken_g)
        self.eating |= starts
        self.food_taken_g = np.where(self.eating, self.food_taken_g + to_eat, self.food_taken_g)
        self.eating &= ~((to_eat <= 0) & (self.last_eaten_g > 0))
        self.last_eaten_g = to_eat

        hr = np.broadcast_to(np.asarray(hr_excess_bpm, float), (n,))
        bout_starts = (hr > 0) & (self.last_hr <= 0)
        if bout_starts.any():  # W is the load of the latest bout (sim.physiology.exercise)
            self.x[W] = np.where(bout_starts, 0.0, self.x[W])
        self.last_hr = hr.copy()
        dbar = self.last_qsto + self.food_taken_g * 1000.0
        inputs = _Inputs(
            meal_mg=to_eat * 1000.0,
            insulin=np.broadcast_to(insulin_u_per_min * self.insulin_gain, (n,)),
            hr=hr,
            b_dbar=self.patients.b * dbar,
            d_dbar=self.patients.d * dbar,
            exercise=bool(hr.any() or self.x[Y : W + 1].any()),
            has_dbar=dbar > 0,
            aa=5.0 / (2.0 * np.where(dbar > 0, dbar, 1.0) * (1.0 - self.patients.b)),
            cc=5.0 / (2.0 * np.where(dbar > 0, dbar, 1.0) * self.patients.d),
        )
        h = 1.0 / self.substeps
        x = self.x
        for _ in range(self.substeps):
            k1 = self.derivatives(x, inputs)
            k2 = self.derivatives(x + (0.5 * h) * k1, inputs)
            k3 = self.derivatives(x + (0.5 * h) * k2, inputs)
            k4 = self.derivatives(x + h * k3, inputs)
            x = x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        x[W] = np.where(x[Z] < ex.W_RESET_Z, 0.0, x[W])
        self.x = x
        self.minute += 1

    def derivatives(self, x: np.ndarray, u: _Inputs) -> np.ndarray:
        p = self.patients
        dx = np.empty_like(x)
        qsto = x[QSTO1] + x[QSTO2]
        # gastric emptying (Dalla Man 2006/2007; simglucose's Dbar)
        kgut = p.kmin + self.half_span * (
            np.tanh(u.aa * (qsto - u.b_dbar)) - np.tanh(u.cc * (qsto - u.d_dbar)) + 2.0
        )
        kgut = np.where(u.has_dbar, kgut, p.kmax)
        dx[QSTO1] = -p.kmax * x[QSTO1] + u.meal_mg
        dx[QSTO2] = p.kmax * x[QSTO1] - kgut * x[QSTO2]
        dx[QGUT] = kgut * x[QSTO2] - p.kabs * x[QGUT]
        ra = self.ra_gain * x[QGUT]
        production = p.kp1 - p.kp2 * x[GP] - p.kp3 * x[ID]
        if self.counter_regulation:
            production = production + cr.XI * x[XH]
            glucose = x[GP] / p.Vg
            insulin_action = p.Vmx * x[X] * (1.0 + cr.R1 * cr.risk(glucose, p.Gb))
        else:
            insulin_action = p.Vmx * x[X]
        egp = np.maximum(production, 0.0)
        renal = p.ke1 * np.maximum(x[GP] - p.ke2, 0.0)
        dx[GP] = egp + ra - p.Fsnc - renal - p.k1 * x[GP] + p.k2 * x[GT]
        # insulin-dependent utilisation; the exercise terms vanish exactly when Y = Z = W = 0,
        # so they are skipped while no patient has any exercise state (same numbers, faster)
        if u.exercise:
            zw = x[Z] * x[W]
            insulin_total = x[X] + p.Ib
            vm = (
                p.Vm0 * (1.0 + ex.BETA * x[Y])
                + insulin_action
                + self.alpha_vmx * zw * insulin_total
            )
            km = p.Km0 * np.maximum(1.0 - ex.GAMMA * zw * insulin_total, 0.1)
        else:
            vm, km = p.Vm0 + insulin_action, p.Km0
        uid = vm * x[GT] / (km + x[GT])
        dx[GT] = -uid + p.k1 * x[GP] - p.k2 * x[GT]
        dx[IP] = -self.m2m4 * x[IP] + p.m1 * x[IL] + p.ka1 * x[ISC1] + p.ka2 * x[ISC2]
        plasma_insulin = x[IP] / p.Vi
        dx[X] = p.p2u * (plasma_insulin - p.Ib - x[X])
        dx[I1] = p.ki * (plasma_insulin - x[I1])
        dx[ID] = p.ki * (x[I1] - x[ID])
        dx[IL] = -self.m1m30 * x[IL] + p.m2 * x[IP]
        dx[ISC1] = u.insulin - self.ka1kd * x[ISC1]
        dx[ISC2] = p.kd * x[ISC1] - p.ka2 * x[ISC2]
        dx[GS] = p.ksc * (x[GP] - x[GS])
        # simglucose holds these states at zero rather than let them go negative
        dx[GP : IP + 1] *= x[GP : IP + 1] >= 0
        dx[IL : GS + 1] *= x[IL : GS + 1] >= 0
        # exercise (sim.physiology.exercise)
        if u.exercise:
            dx[Y] = (u.hr - x[Y]) / ex.T_HR
            ratio = np.maximum(x[Y], 0.0) * self.hr_scale
            hill = ratio * ratio
            hill *= hill  # n = ex.N_HILL = 4
            fy = hill / (1.0 + hill)
            dx[Z] = -(fy / ex.T_IN + 1.0 / ex.T_EX) * x[Z] + fy
            dx[W] = u.hr
        else:
            dx[Y : W + 1] = 0.0
        # glucagon (sim.physiology.counter_regulation)
        if self.counter_regulation:
            falling = np.maximum(-dx[GP] / p.Vg, 0.0)  # mg/dL/min
            dx[H] = -cr.N_CLEARANCE * x[H] + x[SRSH] + cr.DELTA * falling
            dx[XH] = cr.K_H * (np.maximum(x[H] - cr.H_BASAL, 0.0) - x[XH])
            target = cr.static_secretion_target(glucose, plasma_insulin, p.Gb, self.basal_insulin)
            dx[SRSH] = -cr.RHO * (x[SRSH] - target)
        else:
            dx[H:] = 0.0
        return dx


class _Inputs:
    """What is constant over one minute."""

    __slots__ = ("aa", "b_dbar", "cc", "d_dbar", "exercise", "has_dbar", "hr", "insulin", "meal_mg")

    def __init__(self, **values: np.ndarray | bool) -> None:
        for key, value in values.items():
            setattr(self, key, value)


def simulate(
    patients: Patients,
    carbs_g: np.ndarray,
    insulin_u_per_min: np.ndarray,
    hr_excess_bpm: np.ndarray | None = None,
    substeps: int = 1,
    counter_regulation: bool = True,
) -> np.ndarray:
    """Blood glucose (mg/dL) at minutes 0..T for open-loop inputs of shape ``(n, T)``:
    ``(n, T + 1)``, column 0 the initial state."""
    n, minutes = np.shape(carbs_g)
    body = Physiology(patients, substeps, counter_regulation=counter_regulation)
    out = np.empty((n, minutes + 1))
    out[:, 0] = body.glucose
    for minute in range(minutes):
        hr = 0.0 if hr_excess_bpm is None else hr_excess_bpm[:, minute]
        body.step(carbs_g[:, minute], insulin_u_per_min[:, minute], hr)
        out[:, minute + 1] = body.glucose
    return out
