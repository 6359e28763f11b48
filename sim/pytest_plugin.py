"""cgmsim's pytest plugin, for test suites of code that works with CGM sensors (loaded through
the ``pytest11`` entry point once cgmsim is installed; README, "Testing your code with cgmsim").

Fixtures (both are factories: call them with what the test needs):

- ``cgmsim_session(**options)``: simulate a session in virtual time and return its
  ``sim.session.result.SimulationResult`` (rows of readings, receiver events, counters). Options:
  ``days``, ``seed``, ``profile``, ``scenario``, ``link`` (``memory``, ``ble`` or ``bleak``; default
  ``--cgmsim-link``), ``faults`` (``cgmsim simulate --faults`` syntax), ``ideal_sensor``,
  ``acknowledge_after_min``, ``record`` (a path: a recording for ``cgmsim replay``).
- ``cgmsim_transmitter(**options)``: start ``cgmsim transmitter`` as a process serving a
  simulated sensor over BLE, and return a ``TransmitterProcess`` (its ``peer_transport`` is
  where the code under test connects from; ``stop()`` ends it and returns its JSON summary).
  By default it runs on two virtual controllers linked over pseudo-terminals (bumble's
  ``controllers`` app), so no hardware is needed; ``--cgmsim-transport T`` puts it on a real
  controller (a dongle: ``usb:0``, ``serial:/dev/ttyACM0,1000000``...) and
  ``--cgmsim-peer-transport T2`` names the controller the code under test uses.

Options are prefixed ``--cgmsim-`` so that they never clash with a suite's own.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sim.session.result import SimulationResult

START_TIMEOUT_S = 30.0
# The cgmsim command line of this very installation (whatever the PATH holds).
CGMSIM = (sys.executable, "-c", "from sim.cli import main; main()")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cgmsim", "cgmsim simulated CGM sensor")
    group.addoption(
        "--cgmsim-transport",
        default=None,
        metavar="T",
        help="The BLE controller (bumble transport, e.g. usb:0) cgmsim_transmitter serves on; "
        "default: a virtual controller on a pseudo-terminal.",
    )
    group.addoption(
        "--cgmsim-peer-transport",
        default=None,
        metavar="T",
        help="The controller the code under test uses to reach cgmsim_transmitter (with "
        "--cgmsim-transport; by default the virtual controllers' second pseudo-terminal).",
    )
    group.addoption(
        "--cgmsim-link",
        choices=("memory", "ble", "bleak"),
        default="memory",
        help="The link cgmsim_session simulates over unless a test names one (default memory).",
    )


@pytest.fixture
def cgmsim_session(request: pytest.FixtureRequest) -> Callable[..., SimulationResult]:
    """``cgmsim_session(days=1.0, seed=1, ...)``: a simulated session's result."""
    default_link = request.config.getoption("--cgmsim-link")

    def run(
        *,
        days: float = 1.0,
        seed: int = 1,
        profile: str = "g7",
        scenario: str = "daily_life",
        link: str | None = None,
        faults: str = "",
        ideal_sensor: bool = False,
        acknowledge_after_min: float | None = None,
        record: pathlib.Path | str | None = None,
    ) -> SimulationResult:
        from firmware.profiles import PROFILES
        from sim import simulation
        from sim.session.config import Faults, SimulationConfig
        from sim.signal.scenarios import SCENARIOS

        config = SimulationConfig(
            profile=PROFILES[profile],
            days=days,
            seed=seed,
            source=SCENARIOS[scenario],
            ideal_sensor=ideal_sensor,
            faults=Faults.parse(faults),
            acknowledge_after_min=acknowledge_after_min,
        )
        path = None if record is None else pathlib.Path(record)
        return simulation.run(config, link=link or default_link, record=path)

    return run


@dataclass
class TransmitterProcess:
    """A running ``cgmsim transmitter``."""

    transport: str  # the controller it serves on
    peer_transport: str | None  # the controller the code under test connects from
    address: str
    passkey: str
    speed: float
    process: subprocess.Popen[str]
    stderr_path: pathlib.Path
    summary: dict[str, Any] | None = field(default=None)

    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """End it (SIGTERM: it stops cleanly) and return its JSON summary: ``readings`` made,
        ``sent_over_air``, ``connections``..."""
        if self.summary is None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            out, _ = self.process.communicate(timeout=timeout_s)
            if self.process.returncode != 0:
                raise RuntimeError(
                    f"cgmsim transmitter exited {self.process.returncode}: "
                    f"{self.stderr_path.read_text().strip()}"
                )
            self.summary = json.loads(out)
        return self.summary


def _wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not condition():
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the process ended (exit {process.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _end(process: subprocess.Popen[Any], sig: int) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def cgmsim_transmitter(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., TransmitterProcess]]:
    """``cgmsim_transmitter(days=None, seed=1, speed=1500, ...)``: a running transmitter."""
    transport = request.config.getoption("--cgmsim-transport")
    peer = request.config.getoption("--cgmsim-peer-transport")
    folder = tmp_path_factory.mktemp("cgmsim-transmitter")
    started: list[subprocess.Popen[Any]] = []
    controllers: list[subprocess.Popen[Any]] = []

    def virtual_controllers() -> tuple[str, str]:
        a, b = folder / "hci-a", folder / "hci-b"
        process = subprocess.Popen(
            [sys.executable, "-m", "bumble.apps.controllers", f"pty:{a}", f"pty:{b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        controllers.append(process)
        _wait_for(lambda: a.exists() and b.exists(), "the virtual controllers", process)
        return f"serial:{a},1000000", f"serial:{b},1000000"

    def start(
        *,
        days: float | None = None,
        seed: int = 1,
        profile: str = "g7",
        speed: float = 1500.0,
        ideal_sensor: bool = False,
        passkey: str = "123456",
        address: str = "C0:CA:FE:00:00:01",
        privacy: bool = False,
    ) -> TransmitterProcess:
        serve_on, peer_on = (transport, peer) if transport else virtual_controllers()
        err = folder / f"transmitter-{len(started)}.err"
        command = [*CGMSIM, "transmitter", "--transport", serve_on, "--profile", profile]
        command += ["--seed", str(seed), "--speed", str(speed), "--passkey", passkey]
        command += ["--address", address, "--json"]
        # found at ``address`` unless ``privacy``: then at rotating resolvable private addresses
        command += [] if privacy else ["--no-privacy"]
        command += ["--days", str(days)] if days is not None else []
        command += ["--ideal-sensor"] if ideal_sensor else []
        with err.open("w") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        started.append(process)
        _wait_for(lambda: "advertising" in err.read_text(), "cgmsim transmitter", process)
        return TransmitterProcess(serve_on, peer_on, address, passkey, speed, process, err)

    yield start
    for process in started:
        _end(process, signal.SIGTERM)
    for process in controllers:
        _end(process, signal.SIGINT)  # a normal exit removes the pty links
