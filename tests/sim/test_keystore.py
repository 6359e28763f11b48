"""The bonds' key store (``sim.links.keystore``; issue 19, findings 6 and 8) over the real bumble
stack in process: a peripheral keeping its bonds in a ``SecureKeyStore`` file, centrals pairing
with it (LE Secure Connections with the passkey, or Just Works), on a virtual-time loop. And
``cgmsim bonds list|delete`` on the files that made."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from bumble.link import LocalLink

from sim.links.ble import in_process_device
from sim.links.keystore import KeyStoreError, SecureKeyStore
from sim.virtual_loop import run_virtual
from tests.support.bonding import (
    CENTRALS,
    SENSOR,
    just_works,
    mode,
    sensor_device,
    stored_bonds,
    umask_022,
    visit,
)

__all__ = ["umask_022"]  # the autouse fixture


def test_the_bond_limit_replaces_the_least_recently_used_bond(tmp_path: Path) -> None:
    """Limit 2; A pairs, B pairs, A comes back (re-encrypts), C pairs: B goes, not A, although
    A paired first: the rule is the last use, recorded on each encryption."""
    keys = tmp_path / "keys.json"
    ticks = itertools.count(1000)
    store = SecureKeyStore(keys, SENSOR, max_bonds=2, clock=lambda: float(next(ticks)))

    async def main() -> None:
        link = LocalLink()
        sensor = await sensor_device(link, store)
        a, b, c = (in_process_device(link, f"c{i}", addr) for i, addr in enumerate(CENTRALS))
        for central in (a, b, c):
            await central.power_on()
        await visit(a, sensor, pair=True)
        await visit(b, sensor, pair=True)
        assert sorted(stored_bonds(keys)) == CENTRALS[:2]
        await visit(a, sensor, pair=False)  # A's bond used again: now B's is the oldest
        await visit(c, sensor, pair=True)

    run_virtual(main())
    bonds = stored_bonds(keys)
    assert sorted(bonds) == [CENTRALS[0], CENTRALS[2]]
    assert store.evicted == [CENTRALS[1]]
    assert bonds[CENTRALS[2]]["last_used"] > bonds[CENTRALS[0]]["last_used"] > 1001


def test_only_authenticated_secure_connections_bonds_are_written(tmp_path: Path) -> None:
    """A central pairing Just Works with a sensor that accepts it: the keys never reach the
    file (unless the store was opened ``accept_insecure``, the receiver's --insecure)."""
    for accept, expected in ((False, {}), (True, {CENTRALS[0]: False})):
        keys = tmp_path / f"keys-{accept}.json"
        store = SecureKeyStore(keys, SENSOR, accept_insecure=accept)

        async def main(store: SecureKeyStore = store) -> None:
            link = LocalLink()
            sensor = await sensor_device(link, store)
            sensor.pairing_config_factory = lambda connection: just_works()
            central = in_process_device(link, "c", CENTRALS[0])
            await central.power_on()
            await visit(central, sensor, pair=True, config=just_works())

        run_virtual(main())
        stored = stored_bonds(keys) if keys.exists() else {}
        assert {a: k["ltk"]["authenticated"] for a, k in stored.items()} == expected


def test_the_key_file_is_0600_from_its_creation_and_a_new_folder_0700(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written through a temporary file renamed over it (as bumble does): the temporary file is
    already 0600 when it is renamed, so there is no moment when the keys are readable by
    others; an older 0644 file is replaced by a 0600 one at the next write."""
    keys = tmp_path / "new-folder" / "keys.json"
    renamed: list[tuple[str, int]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        renamed.append((Path(dst).name, mode(Path(src))))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    store = SecureKeyStore(keys, SENSOR)

    async def main() -> None:
        link = LocalLink()
        sensor = await sensor_device(link, store)
        central = in_process_device(link, "c", CENTRALS[0])
        await central.power_on()
        await visit(central, sensor, pair=True)

    run_virtual(main())
    assert list(stored_bonds(keys)) == [CENTRALS[0]]
    assert renamed and all(mode == 0o600 for _, mode in renamed), renamed
    assert mode(keys) == 0o600
    assert mode(keys.parent) == 0o700
    keys.chmod(0o644)  # as an older version left it
    asyncio.run(store.touch(CENTRALS[0]))
    assert mode(keys) == 0o600


def test_a_file_that_is_not_a_key_store_is_one_clear_error(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text("{not json")
    with pytest.raises(KeyStoreError, match="not a key store"):
        SecureKeyStore(keys, SENSOR).check()
    keys.write_text('{"ns": ["a list"]}')
    with pytest.raises(KeyStoreError, match="not a key store"):
        SecureKeyStore(keys, SENSOR).check()
