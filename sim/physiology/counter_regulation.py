"""Counter-regulation and hypoglycaemia: the glucagon system and the hypoglycaemia-dependent rise
of insulin action of the UVA/Padova S2013 model (Dalla Man, Micheletto, Lv, Breton, Kovatchev &
Cobelli, "The UVA/PADOVA Type 1 Diabetes Simulator: New Features", J Diabetes Sci Technol
8(1):26, 2014; equation numbers of its appendix).

Three states per patient: plasma glucagon ``H`` (ng/L), its delayed action ``XH`` (ng/L) and the
static secretion ``SRsH`` (ng/L/min):

- (A18) kinetics, one compartment: ``dH/dt = -n·H + SRH`` (no glucagon is given);
- (A20) secretion ``SRH = SRsH + SRdH``: static, following glucose below basal and
  suppressed by plasma insulin above basal,
  ``dSRsH/dt = -rho·(SRsH - max(sigma·(Gb - G)/(1 + max(I - Ib, 0)) + SRbH, 0))`` for
  ``G < Gb`` and ``-rho·(SRsH - max(sigma·(Gb - G) + SRbH, 0))`` above it (secretion falls
  below basal in hyperglycaemia); dynamic, from the rate of fall of glucose,
  ``SRdH = delta·max(-dG/dt, 0)``; basal secretion ``SRbH = n·Hb`` holds ``H`` at ``Hb``;
- (A5, A6) action on endogenous production: ``EGP = kp1 - kp2·Gp - kp3·XL + xi·XH``,
  ``dXH/dt = -kH·XH + kH·max(H - Hb, 0)``;
- (A10, A12) insulin action rises in hypoglycaemia:
  ``Uid = [Vm0 + Vmx·X·(1 + r1·risk)]·Gt/(Km0 + Gt)`` with ``risk = 10·f(G)²``,
  ``f(G) = ln(G)^r2 - ln(Gb)^r2`` for ``Gth <= G < Gb``, ``10·f(Gth)²`` below ``Gth`` =
  60 mg/dL and 0 from ``Gb`` up.

At the basal steady state (``G = Gb``, ``I = Ib``) every new term vanishes, so the published
patients keep their steady state.

Parameters: the 2014 paper publishes the equations and the population's distributions, not
each virtual patient's values, so every patient here has the same population values:

- ``r1``, ``r2``: 1.4407 and 0.8124, the population values of ReplayBG (Cappon et al., IEEE
  Trans Biomed Eng, 2023, from the Padova group), which uses the same risk function;
- ``n`` = 0.2/min: a plasma half-life of 3.5 min; measured in 51 adults, 4 ± 1.1 min
  (Laurenti, Vella, ..., Dalla Man, Am J Physiol Endocrinol Metab, E71-E77);
- ``Hb`` = 60 ng/L (basal glucagon of the 2014 paper's Figure 5; adult reference range
  <= 60 pg/mL), and ``rho``, ``sigma``, ``delta``, ``xi``, ``kH``: the defaults of the T1DMS
  glucagon model as transcribed by LoopInsighT1 (``UvaPadova_T1DMS``, MIT), which lists them
  as unverified against the literature. They are *population placeholders*, checked here
  against the behaviour the paper describes (``tests/sim/test_physiology.py``).
"""

from __future__ import annotations

import numpy as np

R1 = 1.4407  # gain of the hypoglycaemic rise of insulin action
R2 = 0.8124  # exponent of the risk function
G_TH = 60.0  # mg/dL: below it the risk stays at its value at G_TH (2014, A12)
N_CLEARANCE = 0.2  # 1/min, glucagon clearance "n"
H_BASAL = 60.0  # ng/L, basal plasma glucagon "Hb"
RHO = 0.5  # 1/min, static secretion's response rate
SIGMA = 0.2  # ng/L/min per mg/dL, static secretion's sensitivity to glucose below basal
DELTA = 0.1  # ng/L per mg/dL, dynamic secretion per mg/dL/min of glucose fall
XI = 0.01  # mg/kg/min per ng/L, glucagon action on endogenous glucose production
K_H = 0.1  # 1/min, delay of glucagon action
SR_BASAL = N_CLEARANCE * H_BASAL  # ng/L/min, basal secretion "SRbH"


def initial_states(n: int) -> np.ndarray:
    """``H``, ``XH``, ``SRsH`` at the basal steady state, shape ``(3, n)``."""
    return np.stack([np.full(n, H_BASAL), np.zeros(n), np.full(n, SR_BASAL)])


def risk(glucose: np.ndarray, basal: np.ndarray) -> np.ndarray:
    """The 2014 model's hypoglycaemic risk (A12), 0 from basal glucose up."""
    g = np.clip(glucose, G_TH, None)
    f = np.log(g) ** R2 - np.log(basal) ** R2
    return np.where(glucose < basal, 10.0 * f * f, 0.0)


def static_secretion_target(
    glucose: np.ndarray, insulin: np.ndarray, basal_glucose: np.ndarray, basal_insulin: np.ndarray
) -> np.ndarray:
    """What ``SRsH`` tends to (A20): ng/L/min."""
    below = basal_glucose - glucose
    damping = np.where(below > 0, 1.0 + np.maximum(insulin - basal_insulin, 0.0), 1.0)
    return np.maximum(SIGMA * below / damping + SR_BASAL, 0.0)
