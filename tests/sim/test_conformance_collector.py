"""``cgmsim conformance --role collector``: cgmsim plays the sensor and judges the collector.

In process on the virtual-time loop (the 30 s timeout case costs no wall time): our receiver
passes every case, and receivers with a planted defect FAIL the case that catches it. As
separate processes over virtual controllers: ``cgmsim conformance --role collector`` against
``cgmsim receiver``, driving bumble and through the bleak API, with no FAIL; the receiver
refuses each rogue sensor with one line and exit 2, and is started again for the next.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from firmware.receiver.collector import Collector, State
from firmware.receiver.receiver import Receiver
from sim.conformance.collector_codes import CODE_CASES
from sim.conformance.collector_local import SPEED, receiver_core, run_collector_local
from sim.conformance.collector_suite import collector_suite
from sim.conformance.registry import Verdict
from sim.conformance.scripted_sensor import ROGUE_KINDS
from sim.links.gatt_client import WEAKNESSES
from sim.virtual_loop import run_virtual
from tests.support.hil import CGMSIM, wait_for

IDS = [c.id for c in collector_suite()]


CODE_IDS = {case_id for case_id, _, _ in CODE_CASES}
COUNT_TIMEOUT = "CGMSIM/COL/RAE/BI-10-C"  # 30 s of real time as processes: in process only
ROGUE = "CGMSIM/COL/SEC/BI-"
ROGUE_IDS = [i for i in IDS if i.startswith(ROGUE)]
# what cgmsim receiver says when it refuses each rogue, in the order the cases run
REFUSALS = [WEAKNESSES[kind] for kind in ROGUE_KINDS]


def _verdicts(make_receiver=receiver_core, **options) -> dict[str, tuple[Verdict, str]]:
    results = run_virtual(run_collector_local(make_receiver, **options))
    return {r.case.id: (r.verdict, r.reason) for r in results}


def test_case_ids_are_unique_and_every_case_names_its_spec_section() -> None:
    assert len(IDS) == len(set(IDS))
    assert all(i.startswith("CGMSIM/COL/") for i in IDS)
    assert all(any(ref in c.spec for ref in ("§", "Core Vol")) for c in collector_suite())


def test_our_receiver_passes_every_collector_case() -> None:
    refusals: list[str] = []
    verdicts = _verdicts(refusals=refusals)
    assert list(verdicts) == IDS
    assert {i: v for i, v in verdicts.items() if v[0] is not Verdict.PASS} == {}
    assert "dropped the link after 30.0 s" in verdicts["CGMSIM/COL/RAE/BI-03-C"][1]
    # each rogue refused once, the bonded receiver meeting it as its sensor without the bond
    assert len(ROGUE_IDS) == 3
    assert [any(r in said for said in refusals) for r in REFUSALS] == [True] * 3, refusals
    assert "paired (unauthenticated, SC)" in verdicts["CGMSIM/COL/SEC/BI-01-C"][1]
    assert "paired (authenticated, legacy)" in verdicts["CGMSIM/COL/SEC/BI-02-C"][1]
    assert "read 2AA8 in clear" in verdicts["CGMSIM/COL/SEC/BI-03-C"][1]


def test_our_receiver_passes_every_collector_case_with_an_e2e_crc_sensor() -> None:
    """The sensor's every value carries an E2E-CRC (Feature bit 12): the records the cases
    count are decoded with it, and the receiver must read the Feature to take them."""
    verdicts = _verdicts(e2e_crc=True)
    assert list(verdicts) == IDS
    assert {i: v for i, v in verdicts.items() if v[0] is not Verdict.PASS} == {}
    feature = bytes.fromhex(verdicts["CGMSIM/COL/CR/BV-01-C"][1].split("(")[1].split(")")[0])
    assert int.from_bytes(feature[:3], "little") & 1 << 12  # E2E-CRC Supported
    assert "retrieved with RACP" in verdicts["CGMSIM/COL/RAR/BV-01-C"][1]


def test_a_new_receiver_refuses_each_rogue_met_as_its_first_sensor() -> None:
    refusals: list[str] = []
    verdicts = _verdicts(refusals=refusals, only=lambda case: case.id.startswith(ROGUE))
    assert {i: v[0] for i, v in verdicts.items()} == dict.fromkeys(ROGUE_IDS, Verdict.PASS)
    assert [any(r in said for said in refusals) for r in REFUSALS] == [True] * 3, refusals


def test_a_receiver_that_trusts_any_sensor_fails_every_rogue_case() -> None:
    """``--insecure`` (lab only) lets weak sensors through: a new receiver meeting each rogue
    as its first sensor subscribes to it."""
    verdicts = _verdicts(insecure=True, only=lambda case: case.id.startswith(ROGUE))
    assert list(verdicts) == ROGUE_IDS
    for case_id, (verdict, reason) in verdicts.items():
        assert verdict is Verdict.FAIL, (case_id, reason)
        assert "trusted the rogue sensor" in reason and "subscribed to CGM Measurement" in reason


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
    answered = [i for i in IDS if i.startswith("CGMSIM/COL/RAE/") and i != COUNT_TIMEOUT]
    assert len(answered) == 9  # every response code to a report but Abort Unsuccessful; 0xFE;
    for case_id in answered:  # silence
        assert verdicts[case_id][0] is Verdict.FAIL, verdicts[case_id]  # no RACP request
    # no report to answer, no count to leave unanswered: not a PASS either
    assert verdicts[COUNT_TIMEOUT][0] is Verdict.INCONCLUSIVE, verdicts[COUNT_TIMEOUT]


def test_a_collector_without_the_procedure_timeout_fails_the_timeout_case() -> None:
    def make(speed: float) -> Receiver:
        receiver = receiver_core(speed)
        config = receiver.collector.config
        receiver.collector.config = dataclasses.replace(config, procedure_timeout_ms=10**12)
        return receiver

    verdicts = _verdicts(make)
    assert verdicts["CGMSIM/COL/RAR/BV-01-C"][0] is Verdict.PASS
    for case_id in ("CGMSIM/COL/RAE/BI-03-C", COUNT_TIMEOUT):  # a report, a count unanswered
        failed = verdicts[case_id]
        assert failed[0] is Verdict.FAIL, failed
        assert "it hangs" in failed[1]


@pytest.mark.slow  # separate processes over virtual controllers; the 30 s timeout in real time
@pytest.mark.parametrize("api", [(), ("--bleak",)], ids=["bumble", "bleak"])
def test_conformance_collector_against_cgmsim_receiver(
    ptys: tuple[str, str], tmp_path: Path, api: tuple[str, ...]
) -> None:
    sensor_port, rx_port = ptys
    # The response-code cases test the core's handling, the same on both paths (and run in
    # process above): through bleak, the rest, to keep this test short; the unanswered count
    # (another 30 s) runs in process only.
    ids = [i for i in IDS if i != COUNT_TIMEOUT and not (api and i in CODE_IDS)]
    only = [f"--only={i}" for i in ids]
    e2e = ["--e2e-crc"] if api else []  # the bleak run's sensor with E2E-CRC: both covered
    err = (tmp_path / "conformance.err").open("w")
    started = time.perf_counter()
    tester = subprocess.Popen(
        [
            str(CGMSIM),
            *("conformance", "--role", "collector", "--transport", sensor_port),
            *("--speed", str(int(SPEED)), "--connect-wait", "30", "--json", *e2e, *only),
        ],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    wait_for(lambda: "advertising" in (tmp_path / "conformance.err").read_text(), "the sensor")

    def receiver(run: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                str(CGMSIM),
                *("receiver", "--transport", rx_port, "--speed", str(int(SPEED))),
                *("--out", str(tmp_path / "rx"), *api),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"rx{run}.err").open("w"),
            text=True,
        )

    # the receiver exits 2 when it refuses a rogue sensor; started again as a user would
    runs = [receiver(0)]
    try:
        while tester.poll() is None and time.perf_counter() - started < 400:
            if runs[-1].poll() is not None and len(runs) < len(REFUSALS):
                runs.append(receiver(len(runs)))
            time.sleep(0.2)
        out, _ = tester.communicate(timeout=10)
        for rx in runs[: len(REFUSALS)]:  # the last refusal may come as the run ends
            with contextlib.suppress(subprocess.TimeoutExpired):
                rx.wait(timeout=15)
    finally:
        for rx in runs:
            if rx.poll() is None:
                rx.send_signal(signal.SIGTERM)
                rx.wait(timeout=60)
        if tester.poll() is None:
            tester.kill()
    wall = time.perf_counter() - started
    data = json.loads(out)
    assert data["e2e_crc"] is bool(e2e)
    took = {c["id"].removeprefix("CGMSIM/COL/"): round(c["seconds"], 1) for c in data["cases"]}
    print(f"{api}: {data['summary']} in {wall:.1f} s wall, {len(runs)} receiver runs; {took}")
    errs = [(tmp_path / f"rx{run}.err").read_text() for run in range(len(runs))]
    ended = [rx.returncode for rx in runs[: len(REFUSALS)]]
    verdicts = {c["id"]: (c["verdict"], c["reason"]) for c in data["cases"]}
    assert list(verdicts) == ids
    assert {i: v for i, v in verdicts.items() if v[0] != "PASS"} == {}, (
        verdicts,
        (tmp_path / "conformance.err").read_text()[-2000:],
        [err[-1000:] for err in errs],
    )
    assert tester.returncode == 0
    assert ended == [2] * len(REFUSALS), errs
    for err, refusal in zip(errs, REFUSALS, strict=False):
        said = [line for line in err.splitlines() if "refused sensor" in line]
        assert len(said) == 1 and refusal in said[0], err[-1000:]
