"""``cgmsim conformance --role collector``: cgmsim plays the sensor and judges the collector.

In process on the virtual-time loop (the 30 s timeout case costs no wall time): our receiver
passes every case, and receivers with a planted defect FAIL the case that catches it. As
separate processes over virtual controllers: ``cgmsim conformance --role collector`` against
``cgmsim receiver``, driving bumble and through the bleak API, with no FAIL.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from firmware.receiver.collector import Collector, State
from firmware.receiver.receiver import Receiver
from sim.conformance.collector_cases import collector_cases
from sim.conformance.collector_local import SPEED, receiver_core, run_collector_local
from sim.conformance.registry import Verdict
from sim.virtual_loop import run_virtual
from tests.support.hil import CGMSIM, wait_for

IDS = [c.id for c in collector_cases()]


def _verdicts(make_receiver=receiver_core) -> dict[str, tuple[Verdict, str]]:
    results = run_virtual(run_collector_local(make_receiver))
    return {r.case.id: (r.verdict, r.reason) for r in results}


def test_case_ids_are_unique_and_every_case_names_its_spec_section() -> None:
    assert len(IDS) == len(set(IDS))
    assert all(i.startswith("CGMSIM/COL/") for i in IDS)
    assert all(any(ref in c.spec for ref in ("§", "Core Vol")) for c in collector_cases())


def test_our_receiver_passes_every_collector_case() -> None:
    verdicts = _verdicts()
    assert list(verdicts) == IDS
    assert {i: v for i, v in verdicts.items() if v[0] is not Verdict.PASS} == {}
    assert "dropped the link after 30.0 s" in verdicts["CGMSIM/COL/RAE/BI-03-C"][1]


class NeverBackfills(Collector):
    """A collector that never asks for stored records: live readings only."""

    def _write_racp(self, state: State, request: object, now_ms: int) -> None:
        self.state, self.holes, self.checking = State.LIVE, None, False


def _with_collector(kind: type[Collector]):
    def make(speed: float) -> Receiver:
        receiver = receiver_core(speed)
        receiver.collector.__class__ = kind
        return receiver

    return make


def test_a_collector_that_never_backfills_fails_the_backfill_cases() -> None:
    verdicts = _verdicts(_with_collector(NeverBackfills))
    assert verdicts["CGMSIM/COL/SEC/BV-02-C"][0] is Verdict.PASS  # it does reconnect
    failed = verdicts["CGMSIM/COL/RAR/BV-01-C"]
    assert failed[0] is Verdict.FAIL, failed
    assert "the collector got 0" in failed[1]
    for case_id in ("CGMSIM/COL/RAE/BI-01-C", "CGMSIM/COL/RAE/BI-03-C"):
        assert verdicts[case_id][0] is Verdict.FAIL, verdicts[case_id]  # no RACP request


def test_a_collector_without_the_procedure_timeout_fails_the_timeout_case() -> None:
    def make(speed: float) -> Receiver:
        receiver = receiver_core(speed)
        config = receiver.collector.config
        receiver.collector.config = dataclasses.replace(config, procedure_timeout_ms=10**12)
        return receiver

    verdicts = _verdicts(make)
    assert verdicts["CGMSIM/COL/RAR/BV-01-C"][0] is Verdict.PASS
    failed = verdicts["CGMSIM/COL/RAE/BI-03-C"]
    assert failed[0] is Verdict.FAIL, failed
    assert "it hangs" in failed[1]


@pytest.mark.slow  # separate processes over virtual controllers; the 30 s timeout in real time
@pytest.mark.parametrize("api", [(), ("--bleak",)], ids=["bumble", "bleak"])
def test_conformance_collector_against_cgmsim_receiver(
    ptys: tuple[str, str], tmp_path: Path, api: tuple[str, ...]
) -> None:
    sensor_port, rx_port = ptys
    err = (tmp_path / "conformance.err").open("w")
    started = time.perf_counter()
    tester = subprocess.Popen(
        [
            str(CGMSIM),
            *("conformance", "--role", "collector", "--transport", sensor_port),
            *("--speed", str(int(SPEED)), "--connect-wait", "30", "--json"),
        ],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    wait_for(lambda: "advertising" in (tmp_path / "conformance.err").read_text(), "the sensor")
    rx = subprocess.Popen(
        [
            str(CGMSIM),
            *("receiver", "--transport", rx_port, "--speed", str(int(SPEED))),
            *("--out", str(tmp_path / "rx"), *api),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, _ = tester.communicate(timeout=400)
    finally:
        rx.send_signal(signal.SIGTERM)
        _, rx_err = rx.communicate(timeout=60)
        if tester.poll() is None:
            tester.kill()
    wall = time.perf_counter() - started
    data = json.loads(out)
    print(f"{api}: {data['summary']} in {wall:.1f} s wall")
    verdicts = {c["id"]: (c["verdict"], c["reason"]) for c in data["cases"]}
    assert list(verdicts) == IDS
    assert {i: v for i, v in verdicts.items() if v[0] != "PASS"} == {}, (
        verdicts,
        (tmp_path / "conformance.err").read_text()[-2000:],
        rx_err[-2000:],
    )
    assert tester.returncode == 0
