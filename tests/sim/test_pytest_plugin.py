"""The pytest plugin as a user meets it: installed through its pytest11 entry point, the
README's example test file run by pytest itself (``pytester``), its options registered under
names that do not clash with this suite's own (``--hci-transport``)."""

from __future__ import annotations

import json
import pathlib
from importlib import metadata

# pytester runs pytest in this process and drops the modules a run imported afterwards; numpy
# cannot be imported twice in one process, so what the fixtures import is imported here first.
import bumble.device
import bumble.transport  # noqa: F401
import pytest

import sim.ble_world
import sim.signal.scenarios  # noqa: F401

pytest_plugins = ["pytester"]

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The python block of the README's pytest plugin section, as a user would copy it."""
    section = README.read_text().split("## Testing your code with cgmsim", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_plugin_is_registered_through_its_entry_point() -> None:
    [entry] = [e for e in metadata.entry_points(group="pytest11") if e.name == "cgmsim"]
    assert entry.value == "sim.pytest_plugin"


@pytest.mark.slow
def test_the_readme_example_passes(pytester) -> None:
    pytester.makepyfile(test_example=readme_example())
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_users_failing_check_fails(pytester) -> None:
    pytester.makepyfile(
        """
        def test_no_reading_in_warmup(cgmsim_session):
            result = cgmsim_session(days=0.2, ideal_sensor=True)
            assert not [e for e in result.events if e["kind"] == "reading"]
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)


def test_the_link_option_and_a_recording(pytester, tmp_path) -> None:
    record = tmp_path / "session.jsonl"
    pytester.makepyfile(
        f"""
        def test_record(cgmsim_session):
            cgmsim_session(days=0.1, ideal_sensor=True, record={str(record)!r})
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--cgmsim-link=ble").assert_outcomes(passed=1)
    header = json.loads(record.read_text().splitlines()[0])
    assert header["link"] == "ble" and header["settings"]["days"] == 0.1


def test_the_options_are_listed_beside_this_suites_own(pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["*--cgmsim-transport=T*", "*--cgmsim-peer-transport=T*", "*--cgmsim-link=*"]
    )
