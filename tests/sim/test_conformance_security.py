"""The security suite of ``cgmsim conformance --role sensor`` (``sim.conformance.cases_security``,
issue 19's audit of other devices): every case PASSes against our transmitter, and each FAILs
against a sensor with the defect it is there to find — the rogue sensors of
``tests.support.rogue_sensor`` (Just Works, legacy, open) and our transmitter with one defence
taken away (no privacy, an all-zero IRK, an address that never changes, no Repeated Attempts,
waits that do not grow).

In process, both devices on bumble's in-process link, on the virtual-time loop
(``sim.virtual_loop``): the 10 s idle deadline, the Repeated Attempts waits and a quarter of an
hour of watching an address cost no wall time. One test runs ``cgmsim conformance`` against a
rogue sensor process over virtual controllers.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bumble.device import Device
from bumble.link import LocalLink

from firmware.profiles import G7
from firmware.transmitter.server import Transmitter, TransmitterConfig
from sim.conformance.attacker import SecurityOptions
from sim.conformance.local import SPEED, run_local, with_samples
from sim.conformance.registry import Case, Phase, Result, Verdict
from sim.conformance.runner import TESTER_ADDRESS, SensorRun
from sim.conformance.suite import sensor_cases
from sim.fuzz.corpus import CALIBRATION
from sim.links.ble import in_process_device
from sim.links.ble_security import Privacy, RepeatedAttempts
from sim.virtual_loop import run_virtual
from tests.support.hil import CGMSIM, _rogue
from tests.support.rogue_sensor import ROGUE_ADDRESS, ROGUE_PASSKEY, RogueSensor

SEC = "CGMSIM/SEN/SEC/"
BEFORE_PAIRING = ["BV-01-C", "BI-01-C", "BI-02-C", "BV-02-C", "BI-03-C"]
ATTACKS = ["BI-04-C", "BI-05-C", "BI-06-C", "BI-07-C", "BV-04-C", "BV-05-C", "BI-08-C", "BV-06-C"]
QUICK = SecurityOptions(privacy_wait_s=60.0)  # virtual seconds


def _privacy(seed: int, rotate_s: float = 30.0) -> Privacy:
    rng = np.random.default_rng(seed)
    return Privacy(irk=rng.bytes(16), prand=lambda: rng.bytes(3), rotate_s=rotate_s)


def _security(*names: str) -> Callable[[Case], bool]:
    """The pairing case and the named security cases (``BI-04-C``...); all of them if none."""
    return lambda case: (
        case.phase is Phase.PAIRING
        or (case.id.startswith(SEC) and (not names or case.id.removeprefix(SEC) in names))
    )


def _ours(
    *names: str,
    security: SecurityOptions = QUICK,
    privacy: Privacy | None = None,
    attempts: RepeatedAttempts | None = None,
    sensor_setup: Callable[[Device], None] | None = None,
    speed: float = SPEED,
    bonded_only: bool = False,
) -> dict[str, Result]:
    """The pairing case and the named security cases against our transmitter in process, on
    the virtual-time loop, session time ``speed`` x the loop's."""
    core = with_samples(Transmitter(TransmitterConfig(G7), CALIBRATION, 0))
    results = run_virtual(
        run_local(
            core,
            only=_security(*names),
            security=security,
            privacy=privacy,
            attempts=attempts,
            sensor_setup=sensor_setup,
            speed=speed,
            bonded_only=bonded_only,
        )
    )
    return {r.case.id.removeprefix(SEC): r for r in results}


def test_the_security_cases_are_registered_in_order() -> None:
    cases = [c for c in sensor_cases() if c.id.startswith(SEC)]
    assert [c.id.removeprefix(SEC) for c in cases] == [*BEFORE_PAIRING, "BV-03-C", *ATTACKS]
    assert all(c.phase is Phase.ATTACKS for c in cases[-len(ATTACKS) :])
    assert sensor_cases()[-len(ATTACKS) :] == cases[-len(ATTACKS) :]  # after everything else
    assert all("Core Vol" in c.spec for c in cases[-len(ATTACKS) :])


def test_the_security_suite_passes_against_our_transmitter() -> None:
    results = _ours(privacy=_privacy(1))
    verdicts = {name: r.verdict for name, r in results.items()}
    assert verdicts == dict.fromkeys(verdicts, Verdict.PASS), {
        name: r.reason for name, r in results.items() if r.verdict is not Verdict.PASS
    }
    assert list(results) == [*BEFORE_PAIRING, "BV-03-C", *ATTACKS]
    assert "Pairing Failed 0x03" in results["BI-04-C"].reason
    assert "dropped 10.0 s after connecting" in results["BI-07-C"].reason
    guessing = results["BI-08-C"].reason
    assert "3 wrong passkeys accepted, 5.0 s then 10." in guessing, guessing
    assert "Repeated Attempts" in guessing


def test_a_sensor_that_drops_strangers_at_once_is_not_failed_for_it() -> None:
    """``cgmsim transmitter --bonded-only``: once the tester has bonded, every attacker is
    dropped as soon as it connects, before connect() has returned to the tester. The pairing
    attacks see the dropped link (PASS, saying so), the idle link is gone at once, and passkey
    guessing has nothing to measure (INCONCLUSIVE, not PASS)."""
    results = _ours(
        privacy=_privacy(4), bonded_only=True, security=SecurityOptions(guess_wait_s=10.0)
    )
    for name in ("BI-04-C", "BI-05-C", "BI-06-C"):
        assert results[name].verdict is Verdict.PASS, results[name].reason
        assert "the sensor dropped the link (HCI reason 0x05)" in results[name].reason
    assert results["BI-07-C"].verdict is Verdict.PASS
    assert "dropped 0.0 s after connecting" in results["BI-07-C"].reason
    assert results["BI-08-C"].verdict is Verdict.INCONCLUSIVE
    assert "no pairing attempt accepted in 10 s" in results["BI-08-C"].reason


# --- against the rogue sensors ------------------------------------------------------------------

ATTACKED = ["BI-04-C", "BI-05-C", "BI-06-C", "BI-07-C", "BV-04-C", "BI-08-C"]
ROGUE_FAILS = {
    # kind: every security case that must FAIL; the others PASS or (the address cases a static
    # address makes moot) are NOT APPLICABLE. BV-01-C (no Security Request) and BV-02-C (a
    # CCCD that needs encryption to be read) are the rogue's GATT server, not its pairing.
    "just-works": ["BV-01-C", "BV-02-C", *ATTACKED],
    "legacy": ["BV-01-C", "BV-02-C", "BV-03-C", *ATTACKED],  # BV-03-C: no LE SC key
    "open": ["BV-01-C", "BI-01-C", "BI-02-C", "BI-03-C", *ATTACKED],
}


async def _against_rogue(kind: str, security: SecurityOptions) -> list[Result]:
    link = LocalLink()
    device = in_process_device(link, "rogue", ROGUE_ADDRESS)
    tester = in_process_device(link, "tester", TESTER_ADDRESS)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    rogue = RogueSensor(
        device,
        kind,
        lambda: round((loop.time() - t0) * 1000 * SPEED),
        lambda ms: t0 + ms / 1000 / SPEED,
    )
    await device.power_on()
    await tester.power_on()
    await rogue.start()
    try:
        run = SensorRun(
            tester,
            device.random_address,
            passkey=ROGUE_PASSKEY,
            allow_destructive=False,
            only=_security(),
            security=security,
        )
        return await run.run()
    finally:
        rogue.stop()


@pytest.mark.parametrize("kind", list(ROGUE_FAILS))
def test_the_security_cases_fail_against_a_rogue_sensor(kind: str) -> None:
    results = {r.case.id.removeprefix(SEC): r for r in run_virtual(_against_rogue(kind, QUICK))}
    failed = sorted(name for name, r in results.items() if r.verdict is Verdict.FAIL)
    assert failed == sorted(ROGUE_FAILS[kind]), {n: r.reason for n, r in results.items()}
    # a static address: the resolution and rotation cases do not apply
    assert results["BV-05-C"].verdict is results["BV-06-C"].verdict is Verdict.NOT_APPLICABLE
    assert "random static address" in results["BV-04-C"].reason
    assert "still connected 30 s after connecting" in results["BI-07-C"].reason
    if kind == "legacy":  # the passkey is checked, but wrong guesses meet no wait
        assert "no waiting interval" in results["BI-08-C"].reason
        assert "legacy passkey entry" in results["BI-04-C"].reason
    else:  # Just Works: any passkey pairs
        assert "paired" in results["BI-08-C"].reason
    assert "Just Works" in results["BI-05-C"].reason
    assert "then read 0x2AA8" in results["BI-06-C"].reason


# --- against our transmitter with one defence taken away ----------------------------------------


def test_a_sensor_without_privacy_fails_the_address_case() -> None:
    results = _ours("BV-04-C", "BV-05-C", "BV-06-C", privacy=None)
    assert results["BV-04-C"].verdict is Verdict.FAIL
    assert "random static address, F0:F0:F0:F0:F0:C1" in results["BV-04-C"].reason
    assert results["BV-05-C"].verdict is results["BV-06-C"].verdict is Verdict.NOT_APPLICABLE


def test_an_all_zero_irk_fails() -> None:
    def zero_irk(sensor: Device) -> None:
        sensor.irk = bytes(16)  # distributed at bonding; its addresses are still made right

    results = _ours("BV-05-C", privacy=_privacy(2), sensor_setup=zero_irk)
    assert results["BV-05-C"].verdict is Verdict.FAIL
    assert "all zeros" in results["BV-05-C"].reason


@pytest.mark.slow  # a quarter of an hour of advertising every 20 ms: ~5 s of bumble's CPU
def test_an_address_that_never_changes_fails_after_a_quarter_of_an_hour() -> None:
    fixed = _privacy(3, rotate_s=10 * 3600.0)
    slow = SecurityOptions(privacy_wait_s=960.0)
    waited = _ours("BV-06-C", privacy=fixed, security=slow, speed=10.0)  # few samples meanwhile
    assert waited["BV-06-C"].verdict is Verdict.FAIL
    assert "longer than the 15 min" in waited["BV-06-C"].reason
    short = _ours("BV-06-C", privacy=fixed, security=SecurityOptions(privacy_wait_s=60.0))
    assert short["BV-06-C"].verdict is Verdict.INCONCLUSIVE  # cannot wait: no verdict
    assert "--privacy-wait 960" in short["BV-06-C"].reason


def test_no_repeated_attempts_fails_the_guessing_case() -> None:
    results = _ours("BI-08-C", attempts=RepeatedAttempts(first_wait_s=0.0))
    assert results["BI-08-C"].verdict is Verdict.FAIL
    assert "no waiting interval" in results["BI-08-C"].reason


def test_waits_that_do_not_grow_fail_the_guessing_case() -> None:
    results = _ours("BI-08-C", attempts=RepeatedAttempts(first_wait_s=5.0, growth=1.0))
    guessing = results["BI-08-C"]
    assert guessing.verdict is Verdict.FAIL, guessing.reason
    assert "growing x1.0" in guessing.reason and "faster than" in guessing.reason


def test_a_sensor_that_holds_idle_links_longer_than_the_limit_fails() -> None:
    """Our transmitter drops an idle link after 10 s; a tester told 5 s must FAIL it."""
    results = _ours("BI-07-C", security=SecurityOptions(idle_limit_s=5.0))
    assert results["BI-07-C"].verdict is Verdict.FAIL
    assert "still connected 5 s after connecting" in results["BI-07-C"].reason


def test_no_attacks_reports_them_not_run() -> None:
    results = _ours(security=SecurityOptions(attacks=False))
    assert {n for n, r in results.items() if r.verdict is Verdict.NOT_RUN} == set(ATTACKS)
    assert all(results[n].verdict is Verdict.PASS for n in [*BEFORE_PAIRING, "BV-03-C"])


# --- cgmsim conformance against a rogue sensor process ------------------------------------------


@pytest.mark.slow  # separate processes over virtual controllers, in real time
def test_cgmsim_conformance_fails_a_just_works_rogue_process(
    ptys: tuple[str, str], tmp_path: Path
) -> None:
    rogue_port, tester_port = ptys
    rogue = _rogue(rogue_port, "just-works", tmp_path)
    try:
        done = subprocess.run(
            [
                str(CGMSIM),
                "conformance",
                *("--role", "sensor", "--transport", tester_port, "--passkey", "123456"),
                *("--only", SEC, "--idle-limit", "2", "--privacy-wait", "0", "--json"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        rogue.send_signal(signal.SIGTERM)
        rogue.communicate(timeout=30)
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    verdicts = {c["id"].removeprefix(SEC): c["verdict"] for c in data["cases"]}
    failed = [n for n, v in verdicts.items() if v == "FAIL"]
    assert sorted(failed) == sorted(ROGUE_FAILS["just-works"]), data["cases"]
    assert data["security"]["idle_limit_s"] == 2.0


def test_too_few_guesses_is_bad_input(capsys) -> None:
    from sim.cli import cli

    with pytest.raises(SystemExit) as done:
        cli.main(
            ["conformance", "--role", "sensor", "--transport", "usb:0", "--guesses", "2"],
            prog_name="cgmsim",
        )
    assert done.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("cgmsim: error:") and "--guesses" in line, line
