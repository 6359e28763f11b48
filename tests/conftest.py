"""Test-wide settings. CI runs hypothesis derandomized, so a red CI reproduces exactly."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# --- hardware-in-the-loop: tests/hardware/ runs against real controllers when told where ---

HARDWARE_HINT = (
    "needs a BLE controller: pytest --hci-transport=T (and --hci-peer-transport=T2 for the "
    "two-controller tests), e.g. usb:0 or serial:/dev/ttyACM0,1000000,rtscts; see docs/hil.md"
)


def pytest_addoption(parser):
    group = parser.getgroup("cgmsim hardware-in-the-loop")
    group.addoption(
        "--hci-transport",
        default=None,
        metavar="T",
        help="The bumble transport of a BLE controller (dongle) for tests/hardware.",
    )
    group.addoption(
        "--hci-peer-transport",
        default=None,
        metavar="T",
        help="A second controller, for the transmitter-to-receiver tests in tests/hardware.",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "hardware(peer=False): runs only against real controllers (--hci-transport)"
    )
    config.addinivalue_line(
        "markers", "tshark: needs Debian's tshark (skipped without it, except under CI)"
    )
    config.addinivalue_line(
        "markers",
        "slow: multi-process, kill/resume, whole-session or long-campaign test; `make check` "
        "leaves it out, `make test` runs it",
    )


def pytest_report_header(config):
    from tests.support import tshark

    if tshark.skipped():
        return f"SKIPPING the tshark tests: {tshark.HINT}"
    return None


def pytest_collection_modifyitems(config, items):
    import pytest

    from tests.support import tshark

    transport = config.getoption("--hci-transport")
    peer = config.getoption("--hci-peer-transport")
    for item in items:
        if tshark.skipped() and item.get_closest_marker("tshark") is not None:
            item.add_marker(pytest.mark.skip(reason=tshark.HINT))
        marker = item.get_closest_marker("hardware")
        if marker is None:
            continue
        if transport is None or (marker.kwargs.get("peer") and peer is None):
            item.add_marker(pytest.mark.skip(reason=HARDWARE_HINT))
