"""Conformance cases and verdicts.

A case is an async function of a ``Tester`` that returns why it passed, or raises
``CaseFailed`` / ``Inconclusive`` / ``NotApplicable`` with the reason. Ids follow the SIG test
suite CGMS.TS (p6, 2020-12-22): ``CGMS/SEN/<group>/<BV|BI>-<nn>-C``. Cases the test suite does
not have (security, the SOCP op-code and extra out-of-range checks) are named
``CGMSIM/SEN/...`` and rest on the section of the service, profile or core specification named
in ``spec``.

Applicability is the test suite's ICS, read from the device: ``applies`` gets the CGM Feature
the device reported and returns None when the case applies, or why it does not. A case may also
find out from the device's answer (an optional RACP operator answered Operator Not Supported)
and raise ``NotApplicable`` itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bumble.core import BaseBumbleError

from sim.conformance.verdicts import (
    CaseFailed,
    Features,
    Inconclusive,
    NotApplicable,
    Phase,
    Verdict,
)

if TYPE_CHECKING:
    from sim.conformance.tester import Tester

Applies = Callable[[Features | None], str | None]
Run = Callable[["Tester"], Awaitable[str]]
Budget = Callable[[Any], float]  # extra seconds of timeout, from the run's security options


def always(features: Features | None) -> str | None:
    return None


FEATURE_NAMES = {
    0: "Calibration",
    1: "Patient High/Low Alerts",
    2: "Hypo Alerts",
    3: "Hyper Alerts",
    4: "Rate of Increase/Decrease Alerts",
    5: "Device Specific Alert",
    12: "E2E-CRC",
    13: "Multiple Bond",
    14: "Multiple Sessions",
    15: "CGM Trend Information",
    16: "CGM Quality",
}


def feature(bit: int, present: bool = True) -> Applies:
    """Applies when Feature bit ``bit`` is set (or, ``present=False``, clear)."""
    name = FEATURE_NAMES.get(bit, f"bit {bit}")

    def check(features: Features | None) -> str | None:
        if features is None:
            return None  # unknown: the case runs and finds out
        if features.has(bit) != present:
            state = "0" if present else "1"
            return f"CGM Feature bit {bit} ({name} supported) is {state}"
        return None

    return check


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    spec: str  # the section(s) the verdict rests on
    run: Run
    applies: Applies = always
    destructive: bool = False
    timeout_s: float = 20.0
    phase: Phase = Phase.PAIRED
    order: int = 0  # running order after the phase: 0 the others, 10 the destructive ones
    budget: Budget | None = None  # added to timeout_s: waits the run's options set

    @property
    def group(self) -> str:
        return "/".join(self.id.split("/")[:3])


@dataclass
class Result:
    case: Case
    verdict: Verdict
    reason: str
    frames: list[str] = field(default_factory=list)
    seconds: float = 0.0


REGISTRY: list[Case] = []


def case(
    id: str,
    title: str,
    spec: str,
    *,
    applies: Applies = always,
    destructive: bool = False,
    timeout_s: float = 20.0,
    phase: Phase = Phase.PAIRED,
    order: int | None = None,
    budget: Budget | None = None,
) -> Callable[[Run], Run]:
    """Register the decorated coroutine as a case. Within a phase cases run by ``order``
    (default 0, destructive ones 10: after the others), then in the order of registration."""
    rank = order if order is not None else (10 if destructive else 0)

    def register(run: Run) -> Run:
        if any(known.id == id for known in REGISTRY):
            raise ValueError(f"case {id} registered twice")
        REGISTRY.append(
            Case(id, title, spec, run, applies, destructive, timeout_s, phase, rank, budget)
        )
        return run

    return register


async def judge(run: Awaitable[str], timeout_s: float) -> tuple[Verdict, str]:
    """Run one case's coroutine with its timeout: its verdict and the reason. A case that
    overruns FAILs; a link that breaks under it makes it INCONCLUSIVE."""
    try:
        return Verdict.PASS, await asyncio.wait_for(run, timeout_s)
    except CaseFailed as failed:
        return Verdict.FAIL, str(failed)
    except Inconclusive as why:
        return Verdict.INCONCLUSIVE, str(why)
    except NotApplicable as why:
        return Verdict.NOT_APPLICABLE, str(why)
    except TimeoutError:
        return Verdict.FAIL, f"did not complete within its timeout of {timeout_s:g} s"
    except (BaseBumbleError, ConnectionError, OSError) as error:
        return Verdict.INCONCLUSIVE, f"link problem: {type(error).__name__}: {error}"
