"""``cgmsim dongles`` and ``--transport auto`` (sim/dongles.py) with real controllers: bumble's
virtual controllers on pseudo-terminals (the ``ptys`` fixture), which answer HCI Reset over
pyserial as a dongle with HCI UART firmware does. No listing shows a pty, so they are named as
extra candidates (``--candidate`` / ``CGMSIM_DONGLES``), the way docs/hil.md tells."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from click.testing import CliRunner

from sim.cli import cli
from sim.dongles import (
    ENV_CANDIDATES,
    DongleProblem,
    resolve_transport,
    serial_ports,
    usb_controllers,
)
from tests.support.hil import CGMSIM, virtual_controllers

SILENT = "tcp-client:127.0.0.1:9"  # the discard port: nothing listens, nothing answers


@pytest.fixture(scope="module")
def ptys(tmp_path_factory):
    """Two virtual controllers on pseudo-terminals, shared by the tests of this module (a
    Reset leaves them as they were)."""
    with virtual_controllers(tmp_path_factory.mktemp("ptys")) as transports:
        yield transports


@pytest.fixture
def nothing_attached(monkeypatch):
    """The machine's own listing holds no controller (as on CI); CGMSIM_DONGLES unset."""
    monkeypatch.delenv(ENV_CANDIDATES, raising=False)
    attached = [c.transport for c in [*serial_ports(), *usb_controllers()]]
    if attached:
        pytest.skip(f"controllers are attached to this machine: {attached}")


def dongles(*args: str) -> list[dict]:
    done = CliRunner().invoke(cli, ["dongles", "--json", *args])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_a_virtual_controller_answers_hci_reset_and_a_silent_port_does_not(ptys, nothing_attached):
    tx_port, _ = ptys
    listed = dongles("--candidate", tx_port, "--candidate", SILENT)
    assert [(c["transport"], c["answers_reset"]) for c in listed] == [
        (tx_port, True),
        (SILENT, False),
    ]


def test_the_human_listing_names_the_transport_to_pass(ptys, nothing_attached):
    tx_port, _ = ptys
    done = CliRunner().invoke(cli, ["dongles", "--candidate", tx_port])
    assert done.exit_code == 0, done.output
    [line] = done.stdout.splitlines()
    assert line.split("\t")[:3] == [tx_port, "given", "answers HCI Reset"]


def test_auto_picks_the_only_controller_and_says_which(ptys, nothing_attached, monkeypatch):
    tx_port, _ = ptys
    monkeypatch.setenv(ENV_CANDIDATES, f"{SILENT};{tx_port}")
    said: list[str] = []
    assert resolve_transport("auto", said.append) == tx_port
    assert said == [f"cgmsim: --transport auto: using {tx_port}"]


def test_auto_inside_a_running_loop_as_the_hil_commands_call_it(
    ptys, nothing_attached, monkeypatch
):
    tx_port, _ = ptys
    monkeypatch.setenv(ENV_CANDIDATES, tx_port)

    async def open_auto() -> str:
        return resolve_transport("auto", lambda line: None)

    assert asyncio.run(open_auto()) == tx_port


def test_auto_with_several_controllers_is_one_line_naming_them(ptys, nothing_attached, monkeypatch):
    monkeypatch.setenv(ENV_CANDIDATES, ";".join(ptys))
    with pytest.raises(DongleProblem) as problem:
        resolve_transport("auto")
    assert problem.value.exit_code == 2
    message = problem.value.format_message()
    assert "\n" not in message and "2 controllers answer HCI Reset" in message
    assert all(port in message for port in ptys)


def test_auto_with_none_attached_exits_2_with_one_line(nothing_attached, monkeypatch):
    with pytest.raises(DongleProblem) as problem:
        resolve_transport("auto")
    assert problem.value.exit_code == 2
    assert problem.value.format_message() == (
        "--transport auto: no controller found"
        " (cgmsim dongles lists them; docs/hil.md, Finding your dongle)"
    )
    monkeypatch.setenv(ENV_CANDIDATES, SILENT)
    with pytest.raises(DongleProblem, match=f"none answers HCI Reset: {SILENT} "):
        resolve_transport("auto")


def test_a_transport_other_than_auto_is_passed_through_untouched():
    assert resolve_transport("serial:/dev/ttyACM0,1000000,rtscts") == (
        "serial:/dev/ttyACM0,1000000,rtscts"
    )


def test_dongles_with_nothing_attached_says_so(nothing_attached):
    done = CliRunner().invoke(cli, ["dongles"])
    assert done.exit_code == 0
    assert done.stdout == "no controllers found (USB serial ports, USB HCI controllers)\n"


@pytest.mark.slow  # two cgmsim processes
def test_dongles_auto_as_a_process_prints_the_pick_or_exits_2_with_one_line(ptys, nothing_attached):
    """``cgmsim dongles --auto`` prints what ``--transport auto`` would open, for scripts."""
    tx_port, _ = ptys
    picked = subprocess.run(
        [str(CGMSIM), "dongles", "--auto", "--candidate", tx_port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (picked.returncode, picked.stdout) == (0, f"{tx_port}\n"), picked.stderr
    # bumble's serial transport adds its own complaint about a pty's DTR line
    said = [x for x in picked.stderr.splitlines() if "could not assert DTR" not in x]
    assert said == [f"cgmsim: --transport auto: using {tx_port}"]
    none = subprocess.run(
        [str(CGMSIM), "dongles", "--auto"], capture_output=True, text=True, timeout=60
    )
    assert none.returncode == 2 and none.stdout == ""
    [line] = none.stderr.splitlines()
    assert line.startswith("cgmsim: error: --transport auto: no controller found"), line
