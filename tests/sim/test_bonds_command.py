"""``cgmsim bonds list|delete`` (issue 19, finding 8) on a key store file made by real pairings
over the in-process bumble stack (``tests.sim.test_keystore``)."""

from __future__ import annotations

import itertools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from bumble.link import LocalLink
from click.testing import CliRunner

from sim.cli import cli
from sim.links.ble import in_process_device
from sim.links.keystore import SecureKeyStore
from sim.virtual_loop import run_virtual
from tests.support.bonding import (
    CENTRALS,
    SENSOR,
    mode,
    sensor_device,
    stored_bonds,
    umask_022,
    visit,
)
from tests.support.hil import CGMSIM

__all__ = ["umask_022"]  # the fixture, for these tests too


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def _cgmsim(*args: str, process: bool = False) -> Done:
    """``cgmsim ARGS``: in this process (click's runner), or as a process (the console script)."""
    if process:
        done = subprocess.run([str(CGMSIM), *args], capture_output=True, text=True, timeout=60)
        return Done(done.returncode, done.stdout, done.stderr)
    result = CliRunner().invoke(cli, list(args))
    return Done(result.exit_code, result.stdout, result.stderr)


@pytest.mark.slow  # a cgmsim process per command
def test_cgmsim_bonds_lists_and_deletes_bonds(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    ticks = itertools.count(1_700_000_000)
    store = SecureKeyStore(keys, SENSOR, clock=lambda: float(next(ticks)))

    async def main() -> None:
        link = LocalLink()
        sensor = await sensor_device(link, store)
        for i, address in enumerate(CENTRALS[:2]):
            central = in_process_device(link, f"c{i}", address)
            await central.power_on()
            await visit(central, sensor, pair=True)

    run_virtual(main())
    listed = _cgmsim("bonds", "list", "--keys", str(keys), "--json", process=True)
    assert listed.returncode == 0, listed.stderr
    bonds = json.loads(listed.stdout)
    assert [(b["namespace"], b["address"], b["pairing"]) for b in bonds] == [
        (SENSOR, CENTRALS[0], "secure-connections"),
        (SENSOR, CENTRALS[1], "secure-connections"),
    ]
    assert all(b["authenticated_sc"] and b["last_used"].endswith("Z") for b in bonds)
    table = _cgmsim("bonds", "list", "--keys", str(keys))
    assert table.returncode == 0 and CENTRALS[1] in table.stdout and "LAST USED" in table.stdout

    deleted = _cgmsim("bonds", "delete", "--keys", str(keys), CENTRALS[0].lower())
    assert deleted.returncode == 0, deleted.stderr
    assert list(stored_bonds(keys)) == [CENTRALS[1]]
    assert mode(keys) == 0o600

    for args, message in [
        (("delete", "--keys", str(keys), CENTRALS[0]), f"no bond with {CENTRALS[0]}"),
        (("delete", "--keys", str(keys)), "give a peer ADDRESS or --all"),
        (("list", "--keys", str(tmp_path / "none.json")), "no key store file at"),
        (("list", "--keys", str(keys), "--out", str(tmp_path)), "give --keys FILE or --out"),
    ]:
        failed = _cgmsim("bonds", *args)
        assert failed.returncode == 2, (args, failed.stderr)
        [line] = failed.stderr.strip().splitlines()
        assert line.startswith("cgmsim: error: ") and message in line, line

    emptied = _cgmsim("bonds", "delete", "--out", str(tmp_path), "--all")  # OUT/keys.json
    assert emptied.returncode == 0 and CENTRALS[1] in emptied.stdout
    assert stored_bonds(keys) == {}

    keys.write_text("{corrupt")
    corrupt = _cgmsim("bonds", "list", "--out", str(tmp_path))
    assert corrupt.returncode == 2
    [line] = corrupt.stderr.strip().splitlines()
    assert "not a key store" in line
