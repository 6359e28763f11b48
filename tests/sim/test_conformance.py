"""``cgmsim conformance --role sensor``: the reporters, the verdict on a transmitter with a
planted defect (in process), and the whole suite against ``cgmsim transmitter`` as separate
processes over virtual controllers (g7 with the security attacks, g6, and g7 with E2E-CRC).
The security suite's own tests are in tests/sim/test_conformance_security.py.

Defects of our transmitter the tester found (issue 13), all fixed: 1 (a CCCD read before
pairing refused with ATT 0x0F, CGMSIM/SEN/SEC/BV-02-C), 2 (no SMP Security Request after a
collector connects, CGMSIM/SEN/SEC/BV-01-C), 3 and 4 (CBE/BI-03-C, CGMCP/BV-24-C), and 5 (a
RACP write sent right after the previous response indication was confirmed refused with ATT
0xFE, where a case's procedures go back to back: RAR/BV-03-C, RAD/BV-01-C; its own test is
tests/sim/test_ble_racp_order.py). No case may FAIL.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from bumble.device import Device

from firmware.events import Respond
from firmware.profiles import G7
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms.racp import RacpResponseCode
from sim.cli import cli
from sim.conformance import report
from sim.conformance.attacker import SecurityOptions
from sim.conformance.local import run_local, with_samples
from sim.conformance.registry import Case, Phase, Result, Verdict
from sim.conformance.suite import sensor_cases
from sim.fuzz.corpus import CALIBRATION
from tests.support.hil import CGMSIM, _transmitter

DEFECT_1 = "CGMSIM/SEN/SEC/BV-02-C"  # CCCD read refused before pairing (issue 13 defect 1, fixed)
DEFECT_2 = "CGMSIM/SEN/SEC/BV-01-C"  # no SMP Security Request (issue 13 defect 2, fixed)


def _case(id: str, destructive: bool = False) -> Case:
    async def run(tester: object) -> str:
        return "ok"

    return Case(id, f"title of {id}", "CGMS §3.6", run, destructive=destructive)


RESULTS = [
    Result(_case("CGMS/SEN/SD/BV-01-C"), Verdict.PASS, "one CGM service", ["R 2AA8 -> 00"], 0.01),
    Result(
        _case("CGMS/SEN/CBE/BI-03-C"),
        Verdict.FAIL,
        "expected RACP 06 00 01 04, got 06 00 01 03",
        ["W 2A52 0107 -> ok", "I 2A52 06000103"],
        0.02,
    ),
    Result(_case("CGMS/SEN/CR/BV-09-C"), Verdict.NOT_APPLICABLE, "bit 12 is 0"),
    Result(_case("CGMS/SEN/RAA/BV-01-C"), Verdict.INCONCLUSIVE, "report too short"),
    Result(_case("CGMS/SEN/RAD/BV-01-C", True), Verdict.NOT_RUN, "destructive"),
]


def test_junit_xml_has_one_testcase_per_case_and_the_failure_with_its_frames() -> None:
    root = ET.fromstring(report.to_junit(RESULTS, "suite", 1.5))
    (suite,) = root.iter("testsuite")
    assert suite.get("tests") == "5"
    assert suite.get("failures") == "1"
    assert suite.get("skipped") == "3"
    cases = {case.get("name", "").split()[0]: case for case in suite.iter("testcase")}
    assert list(cases) == [r.case.id for r in RESULTS]
    failure = cases["CGMS/SEN/CBE/BI-03-C"].find("failure")
    assert failure is not None
    assert "06 00 01 03" in failure.get("message", "")
    assert "I 2A52 06000103" in (failure.text or "")
    assert cases["CGMS/SEN/CBE/BI-03-C"].get("classname") == "CGMS.SEN.CBE"
    skipped = cases["CGMS/SEN/RAD/BV-01-C"].find("skipped")
    assert skipped is not None and skipped.get("message", "").startswith("NOT RUN")
    assert cases["CGMS/SEN/SD/BV-01-C"].find("failure") is None
    assert cases["CGMS/SEN/SD/BV-01-C"].find("skipped") is None


def test_json_and_lines() -> None:
    data = report.to_json(RESULTS, role="sensor")
    assert data["role"] == "sensor"
    assert data["summary"] == {
        "PASS": 1,
        "FAIL": 1,
        "INCONCLUSIVE": 1,
        "NOT APPLICABLE": 1,
        "NOT RUN": 1,
    }
    first = data["cases"][1]
    assert set(first) == {
        "id",
        "title",
        "spec",
        "verdict",
        "reason",
        "destructive",
        "seconds",
        "frames",
    }
    assert first["verdict"] == "FAIL" and first["frames"][-1] == "I 2A52 06000103"
    lines = [report.line(r) for r in RESULTS]
    assert lines[1].startswith("FAIL") and "CGMS/SEN/CBE/BI-03-C" in lines[1]
    assert "frames: W 2A52 0107 -> ok; I 2A52 06000103" in lines[1]
    assert "frames" not in lines[0]
    assert report.failed(RESULTS) and not report.failed(RESULTS[2:])


def test_case_ids_are_unique_and_every_case_names_its_spec_section() -> None:
    cases = sensor_cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    assert all(any(ref in c.spec for ref in ("§", "CGMS.TS", "Core Vol")) for c in cases)
    assert all(c.id.startswith(("CGMS/SEN/", "CGMSIM/SEN/")) for c in cases)
    phases = [c.phase for c in cases]
    assert phases == sorted(phases)
    assert not any(c.destructive for c in cases[: ids.index("CGMS/SEN/CGMCP/BV-08-C")])


class RfuOperatorIsInvalid(Transmitter):
    """Our transmitter before the fix of issue 13 defect 3: a RACP request with an RFU
    operator answered Invalid Operator (0x03)."""

    def _write_racp(self, value: bytes, now_ms: int) -> None:
        if len(value) == 2 and value[1] > 6:
            self.out.append(Respond(0x2A52))
            self._indicate_racp(value[0], RacpResponseCode.INVALID_OPERATOR)
            return
        super()._write_racp(value, now_ms)


def _only(*ids: str) -> Callable[[Case], bool]:
    return lambda case: case.phase is Phase.PAIRING or case.id in ids


def test_a_planted_defect_fails_the_case_that_catches_it() -> None:
    core = with_samples(RfuOperatorIsInvalid(TransmitterConfig(G7), CALIBRATION, 0))
    results = asyncio.run(
        run_local(core, only=_only("CGMS/SEN/CBE/BI-03-C", "CGMS/SEN/CBE/BI-02-C"))
    )
    verdicts = {r.case.id: r for r in results}
    assert verdicts["CGMSIM/SEN/SEC/BV-03-C"].verdict is Verdict.PASS  # paired
    assert verdicts["CGMS/SEN/CBE/BI-02-C"].verdict is Verdict.PASS  # Null operator: 0x03
    failed = verdicts["CGMS/SEN/CBE/BI-03-C"]
    assert failed.verdict is Verdict.FAIL
    assert "expected RACP 06 00 01 04, got 06 00 01 03" in failed.reason
    assert "I 2A52 06000103" in failed.frames
    assert "CGMS/SEN/CBE/BI-03-C" in report.line(failed)


def test_a_security_request_sent_at_once_is_seen() -> None:
    """What CGMSIM/SEN/SEC/BV-01-C asks (CGMP §6.1; issue 13 defect 2), done by a sensor that
    requests security the moment a collector connects: the case PASSes."""

    def request_security(sensor: Device) -> None:
        sensor.on(sensor.EVENT_CONNECTION, lambda connection: connection.request_pairing())

    core = with_samples(Transmitter(TransmitterConfig(G7), CALIBRATION, 0))
    results = asyncio.run(
        run_local(core, only=lambda case: case.id == DEFECT_2, sensor_setup=request_security)
    )
    assert [(r.case.id, r.verdict) for r in results] == [(DEFECT_2, Verdict.PASS)], results


def test_destructive_cases_are_not_run_without_allow_destructive() -> None:
    core = with_samples(Transmitter(TransmitterConfig(G7), CALIBRATION, 0))
    results = asyncio.run(
        run_local(core, allow_destructive=False, only=_only("CGMS/SEN/CGMCP/BV-23-C"))
    )
    (stop,) = [r for r in results if r.case.id == "CGMS/SEN/CGMCP/BV-23-C"]
    assert stop.verdict is Verdict.NOT_RUN
    assert "--allow-destructive" in stop.reason
    assert core.session is not None and core.session.running(core.last_now_ms)


def test_start_session_on_a_sensor_with_no_session_yet() -> None:
    """CGMS/SEN/CGMCP/BV-22-C needs a sensor that never ran a session: one made so."""
    core = Transmitter(TransmitterConfig(G7), CALIBRATION, 0, start_session=False)
    results = asyncio.run(run_local(core, only=_only("CGMS/SEN/CGMCP/BV-22-C"), start_ms=0))
    (start,) = [r for r in results if r.case.id == "CGMS/SEN/CGMCP/BV-22-C"]
    assert start.verdict is Verdict.PASS, start


@pytest.mark.slow  # about 5 s: every case over the in-process link
@pytest.mark.parametrize("e2e", [False, True], ids=["plain", "e2e-crc"])
def test_the_whole_suite_in_process(e2e: bool) -> None:
    """In real time; the attacks, whose waits are long, run on the virtual-time loop in
    tests/sim/test_conformance_security.py."""
    core = with_samples(Transmitter(TransmitterConfig(G7, e2e_crc=e2e), CALIBRATION, 0))
    results = asyncio.run(run_local(core, security=SecurityOptions(attacks=False)))
    failed = {r.case.id: r.reason for r in results if r.verdict is Verdict.FAIL}
    assert failed == {}, failed
    by_id = {r.case.id: r.verdict for r in results}
    assert (by_id["CGMS/SEN/CR/BV-09-C"] is Verdict.NOT_APPLICABLE) is not e2e


# --- cgmsim conformance against cgmsim transmitter, separate processes --------------------------


# g7 with the security attacks (about 30 s more: the 10 s idle deadline, 15 s of Repeated
# Attempts waits), its private address renewed every 20 s so that the tester sees it change;
# the other two without them.
ATTACKS = ("--rpa-interval", "20"), ("--privacy-wait", "40")
NO_ATTACKS = (), ("--no-attacks",)


@pytest.mark.slow  # separate processes over virtual controllers
@pytest.mark.parametrize(
    ("options", "security"),
    [
        (("--profile", "g7"), ATTACKS),
        (("--profile", "g6"), NO_ATTACKS),
        (("--profile", "g7", "--e2e-crc"), NO_ATTACKS),
    ],
    ids=["g7", "g6", "g7-e2e-crc"],
)
def test_conformance_against_cgmsim_transmitter(
    ptys: tuple[str, str],
    tmp_path: Path,
    options: tuple[str, ...],
    security: tuple[tuple[str, ...], tuple[str, ...]],
) -> None:
    tx_port, tester_port = ptys
    tx_security, tester_security = security
    tx = _transmitter(tx_port, tmp_path, *options, *tx_security)
    junit = tmp_path / "junit.xml"
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [
                str(CGMSIM),
                "conformance",
                *("--role", "sensor", "--transport", tester_port, "--passkey", "123456"),
                *("--allow-destructive", "--json", "--junit", str(junit)),
                *tester_security,
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        tx.send_signal(signal.SIGTERM)
        tx.communicate(timeout=30)
    wall = time.perf_counter() - started
    data = json.loads(done.stdout)
    results = {case["id"]: case for case in data["cases"]}
    print(f"{options}: {data['summary']} in {wall:.1f} s wall ({data['wall_seconds']} s run)")
    # issue 13 defects 2 and 1, fixed: the sensor asks for security; a CCCD reads unpaired
    assert results[DEFECT_2]["verdict"] == "PASS", results[DEFECT_2]["reason"]
    assert results[DEFECT_1]["verdict"] == "PASS", results[DEFECT_1]["reason"]
    # issue 13 defect 5, fixed: procedures back to back are served, so nothing FAILs
    failed = {
        i: (c["reason"], c["frames"][-6:]) for i, c in results.items() if c["verdict"] == "FAIL"
    }
    assert failed == {}, failed
    assert data["summary"]["FAIL"] == 0
    assert done.returncode == 0, done.stderr
    # the fixes of issue 13 defects 3 and 4, over the air
    assert results["CGMS/SEN/CBE/BI-03-C"]["verdict"] == "PASS"
    assert results["CGMS/SEN/CGMCP/BV-24-C"]["verdict"] == "PASS"
    # applicability from the Feature bits: E2E-CRC cases run exactly when bit 12 is set
    e2e = "--e2e-crc" in options
    assert data["features"]["e2e_crc"] is e2e
    for case_id in ("CGMS/SEN/CR/BV-09-C", "CGMS/SEN/CBE/BI-06-C", "CGMS/SEN/CBE/BI-07-C"):
        assert (results[case_id]["verdict"] == "NOT APPLICABLE") is not e2e, case_id
    assert (results["CGMS/SEN/CGMCP/BV-02-C"]["verdict"] == "NOT APPLICABLE") is e2e
    # the security suite (issue 19): every case PASSes against our transmitter
    security = {i: c for i, c in results.items() if i.startswith("CGMSIM/SEN/SEC/")}
    attacks = {i for i, c in security.items() if "not run with --no-attacks" in c["reason"]}
    if "--no-attacks" in tester_security:
        assert len(attacks) == data["summary"]["NOT RUN"] == 8
    else:
        assert data["summary"]["NOT RUN"] == 0
    passed = {i for i, c in security.items() if c["verdict"] == "PASS"}
    # Passkey guessing measures the sensor's waits in wall time: on a machine busy enough that
    # an attempt takes longer than the waits it measures, it cannot conclude (seen once in ten
    # loaded runs). Its PASS and its FAILs are shown on the virtual-time loop, where it always
    # concludes (tests/sim/test_conformance_security.py); here it may only be INCONCLUSIVE.
    guessing = "CGMSIM/SEN/SEC/BI-08-C"
    if guessing not in attacks and security[guessing]["verdict"] == "INCONCLUSIVE":
        passed.add(guessing)
    assert passed == set(security) - attacks, {i: security[i]["reason"] for i in security}
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("failures", "-1")) == data["summary"]["FAIL"]
    assert int(suite.get("tests", "-1")) == len(results)


def test_a_case_that_hangs_ends_at_its_timeout_and_the_run_goes_on(monkeypatch) -> None:
    async def hang(tester: object) -> str:
        await asyncio.sleep(60)
        return "never"

    async def after(tester: object) -> str:
        return "ran"

    pairing = next(c for c in sensor_cases() if c.phase is Phase.PAIRING)
    cases = [
        pairing,
        Case("CGMSIM/SEN/X/BI-01-C", "hangs", "CGMS §3.8.1", hang, timeout_s=0.3),
        Case("CGMSIM/SEN/X/BV-02-C", "after", "CGMS §3.8.1", after),
    ]
    monkeypatch.setattr("sim.conformance.runner.sensor_cases", lambda: cases)
    core = with_samples(Transmitter(TransmitterConfig(G7), CALIBRATION, 0))
    results = asyncio.run(run_local(core))
    assert [(r.case.id, r.verdict) for r in results[1:]] == [
        ("CGMSIM/SEN/X/BI-01-C", Verdict.FAIL),
        ("CGMSIM/SEN/X/BV-02-C", Verdict.PASS),
    ]
    assert "timeout of 0.3 s" in results[1].reason
    assert results[1].seconds < 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--role", "collector", "--transport", "serial:/nonexistent/tty,1000000"],
            "cannot open",
        ),
        (
            [
                *("--role", "sensor", "--transport", "usb:0"),
                *("--address", "C0:CA:FE:00:00:01", "--name", "cgmsim"),
            ],
            "exclude each other",
        ),
        (["--role", "sensor", "--transport", "usb:0", "--passkey", "12"], "6 digits"),
        (["--role", "sensor", "--transport", "serial:/nonexistent/tty,1000000"], "cannot open"),
    ],
    ids=["collector", "address-and-name", "passkey", "transport"],
)
def test_bad_input_exits_2_with_one_line(capsys, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["conformance", *args], prog_name="cgmsim")
    assert done.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("cgmsim: error:") and message in line, line
