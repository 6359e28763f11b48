"""The receiver's security as users run it (issue 19, findings 5, 6 and 8): ``cgmsim receiver``
as a process on a virtual controller (``serial:`` on bumble's pty controllers), against a rogue
sensor process (``tests.support.rogue_sensor``) or ``cgmsim transmitter``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.hil import (
    CGMSIM,
    check_insecure_allows_a_rogue,
    check_keys_and_store_private,
    check_rogue_refused,
)
from tests.support.rogue_sensor import KINDS

pytestmark = pytest.mark.slow  # separate processes over virtual controllers


@pytest.mark.parametrize("api", [(), ("--bleak",)], ids=["bumble", "bleak"])
@pytest.mark.parametrize("kind", KINDS)
def test_cgmsim_receiver_refuses_a_rogue_sensor_with_one_line_and_exit_2(
    ptys: tuple[str, str], tmp_path: Path, kind: str, api: tuple[str, ...]
) -> None:
    check_rogue_refused(*ptys, tmp_path, kind, *api)


def test_keys_receiver_store_and_output_folder_are_private_and_bonds_listed(
    ptys: tuple[str, str], tmp_path: Path
) -> None:
    check_keys_and_store_private(*ptys, tmp_path)


def test_insecure_lets_a_just_works_sensor_through_with_a_warning_and_says_so(
    ptys: tuple[str, str], tmp_path: Path
) -> None:
    check_insecure_allows_a_rogue(*ptys, tmp_path)


@pytest.mark.parametrize("role", ["transmitter", "receiver"])
def test_a_keys_file_that_is_not_a_key_store_exits_2_with_one_line(
    tmp_path: Path, role: str
) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text("{corrupt")
    done = subprocess.run(
        [str(CGMSIM), role, "--transport", "serial:/nonexistent,1000000", "--keys", str(keys)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"cgmsim: error: {keys}: not a key store"), line
