"""The bonds of both roles, in a JSON key store file (bumble's ``JsonKeyStore`` format): one
module for where long-term keys live and who may be bonded.

- **Private from the start.** The file is written as bumble does (a temporary file, then an
  atomic rename), but the temporary file is created 0600 with ``O_EXCL``, so there is no moment
  when the keys are readable by others; a missing folder for it is created 0700. An existing
  file written by an older version (0644) is replaced by a 0600 one on the next write.
- **Only authenticated LE Secure Connections bonds are kept** (``secure_keys``): keys from Just
  Works (``authenticated`` false) or LE legacy pairing (an ``ltk_central``/``ltk_peripheral``
  pair with EDIV/Rand instead of one SC ``ltk``) are never written, unless the store was opened
  ``accept_insecure`` (the receiver's lab-only ``--insecure``).
- **A bond limit** (``max_bonds`` per namespace, ``MAX_BONDS`` by default): a new bond that
  would exceed it replaces the least recently used one, the bond whose last encryption (or
  pairing) is the oldest; bonds with no record of use (written by an older version) count as
  the oldest, ties go by address order. ``touch()`` records a use (``sim.hil`` calls it each
  time a link is encrypted), as ``"last_used"`` (Unix seconds) next to the keys, which bumble
  ignores when it reads them back.
- A file that is not a key store (bad JSON, wrong shape) raises ``KeyStoreError`` with one line.

Namespaces are the local device's address (``sim.hil._device``), so one file can hold the bonds
of several devices; ``cgmsim bonds`` lists and deletes across them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import time
from collections.abc import Callable, Iterator, MutableSet
from dataclasses import dataclass
from typing import Any

from bumble.device import Connection, Device
from bumble.keys import JsonKeyStore, PairingKeys

from sim.private_files import DIR_MODE, replace_private

logger = logging.getLogger(__name__)

MAX_BONDS = 3  # per device: a sensor's phone, its receiver and one spare
LAST_USED = "last_used"  # Unix seconds of the last encryption (or the pairing) with the bond


class KeyStoreError(Exception):
    """The key store file cannot be used (not JSON, not a key store, unreadable)."""


def secure_keys(keys: PairingKeys) -> bool:
    """Whether ``keys`` come from authenticated LE Secure Connections pairing: one SC long-term
    key with MITM protection, and no legacy keys. (``sim.links.ble.mitm_protected`` checks
    only the MITM flag, which legacy passkey pairing also sets.)"""
    ltk = keys.ltk
    return (
        ltk is not None
        and ltk.authenticated
        and keys.ltk_central is None
        and keys.ltk_peripheral is None
    )


def describe(keys: PairingKeys) -> str:
    """What kind of pairing made ``keys``: ``secure-connections``, ``just-works`` or ``legacy``."""
    found = [k for k in (keys.ltk, keys.ltk_central, keys.ltk_peripheral) if k is not None]
    if not found or not all(k.authenticated for k in found):
        return "just-works"
    return "secure-connections" if secure_keys(keys) else "legacy"


@dataclass(frozen=True, slots=True)
class Bond:
    """One bond in a key store file, as ``cgmsim bonds list`` shows it."""

    namespace: str  # the local device's address
    address: str  # the peer's identity address
    kind: str  # describe(keys), or "host-stack"
    last_used: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "address": self.address,
            "pairing": self.kind,
            "authenticated_sc": self.kind == "secure-connections",
            "last_used": self.last_used,
        }


class SecureKeyStore(JsonKeyStore):
    """bumble's JSON key store with private files, the SC-only rule and the bond limit (see
    the module docstring)."""

    def __init__(
        self,
        filename: pathlib.Path,
        namespace: str | None = None,
        *,
        max_bonds: int = MAX_BONDS,
        accept_insecure: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bonds < 1:
            raise ValueError(f"max_bonds must be at least 1, not {max_bonds}")
        super().__init__(namespace=namespace, filename=str(filename))
        self.max_bonds, self.accept_insecure, self.clock = max_bonds, accept_insecure, clock
        self.evicted: list[str] = []  # addresses replaced under the limit, oldest first

    def check(self) -> None:
        """Read the file now: ``KeyStoreError`` if it is not a key store."""
        self._load()

    async def load(self) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, Any]]]:
        return self._load()

    def _load(self) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, Any]]]:
        db = read_file(pathlib.Path(self.filename))
        key_map = db.setdefault(self.namespace, {})
        return db, key_map

    async def save(self, db: dict[str, dict[str, dict[str, Any]]]) -> None:
        write_file(pathlib.Path(self.filename), db)

    async def update(self, name: str, keys: PairingKeys) -> None:
        if not self.accept_insecure and not secure_keys(keys):
            logger.info("%s: %s bond with %s not stored", self.filename, describe(keys), name)
            return
        db, key_map = self._load()
        if name not in key_map:
            while len(key_map) >= self.max_bonds:
                oldest = min(key_map, key=lambda a: (key_map[a].get(LAST_USED) or 0.0, a))
                logger.info("bond limit %d: replacing the bond with %s", self.max_bonds, oldest)
                del key_map[oldest]
                self.evicted.append(oldest)
        entry = key_map.setdefault(name, {})
        entry.update(keys.to_dict())
        entry[LAST_USED] = self.clock()
        write_file(pathlib.Path(self.filename), db)

    async def touch(self, name: str) -> None:
        """Record that the bond with ``name`` was just used (a link encrypted with it)."""
        db, key_map = self._load()
        if name in key_map:
            key_map[name][LAST_USED] = self.clock()
            write_file(pathlib.Path(self.filename), db)

    async def delete(self, name: str) -> None:
        """Forget the bond with ``name`` (nothing happens if there is none)."""
        db, key_map = self._load()
        if key_map.pop(name, None) is not None:
            write_file(pathlib.Path(self.filename), db)


def attach(device: Device, store: SecureKeyStore) -> None:
    """Make ``store`` the key store of ``device``, recording each bond's use whenever a link of
    the device is encrypted (or its key refreshed) with it."""
    device.keystore = store
    tasks: set[asyncio.Task[None]] = set()

    def connected(connection: Connection) -> None:
        def encrypted(*_: Any) -> None:
            if connection.is_encrypted:
                task = asyncio.ensure_future(store.touch(str(connection.peer_address)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_CHANGE, encrypted)
        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_KEY_REFRESH, encrypted)

    device.on(device.EVENT_CONNECTION, connected)


HOST_STACK = "host-stack"  # the namespace of bonds the host's own Bluetooth stack keeps


class HostBonds(MutableSet[str]):
    """The sensors this receiver paired with through the host's own Bluetooth stack (bleak on
    BlueZ, CoreBluetooth, WinRT): the keys are the stack's, this file only records the bond
    (``{"host_stack": true, "last_used": ...}`` under the ``host-stack`` namespace)."""

    def __init__(self, path: pathlib.Path, clock: Callable[[], float] = time.time) -> None:
        self.path, self.clock = path, clock
        read_file(path)  # a file that is not a key store is bad input, now

    def _entries(self) -> dict[str, dict[str, Any]]:
        return read_file(self.path).get(HOST_STACK, {})

    def __contains__(self, address: object) -> bool:
        return address in self._entries()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries()))

    def __len__(self) -> int:
        return len(self._entries())

    def add(self, address: str) -> None:
        db = read_file(self.path)
        db.setdefault(HOST_STACK, {})[address] = {"host_stack": True, LAST_USED: self.clock()}
        write_file(self.path, db)

    def discard(self, address: str) -> None:
        db = read_file(self.path)
        if db.get(HOST_STACK, {}).pop(address, None) is not None:
            write_file(self.path, db)


def read_file(path: pathlib.Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The whole key store file: ``{namespace: {address: keys}}`` (empty if there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise KeyStoreError(f"{path}: cannot read the key store: {error}") from None
    try:
        db = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as error:
        raise KeyStoreError(f"{path}: not a key store (bad JSON: {error})") from None
    if not isinstance(db, dict) or not all(
        isinstance(bonds, dict) and all(isinstance(keys, dict) for keys in bonds.values())
        for bonds in db.values()
    ):
        raise KeyStoreError(f"{path}: not a key store (expected {{namespace: {{address: keys}}}})")
    return db


def write_file(path: pathlib.Path, db: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Write ``db`` to ``path`` atomically through a temporary file created 0600."""
    if not path.parent.exists():
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    replace_private(path, json.dumps(db, sort_keys=True, indent=4))


def bonds(path: pathlib.Path) -> list[Bond]:
    """Every bond in the key store file at ``path``, by namespace then least recently used."""
    found = []
    for namespace, entries in read_file(path).items():
        for address, entry in entries.items():
            kind = HOST_STACK if entry.get("host_stack") else describe(_keys(path, address, entry))
            used = entry.get(LAST_USED)
            last = float(used) if isinstance(used, int | float) else None
            found.append(Bond(namespace, address, kind, last))
    return sorted(found, key=lambda b: (b.namespace, b.last_used or 0.0, b.address))


def delete_bonds(path: pathlib.Path, address: str | None) -> list[Bond]:
    """Delete the bonds with ``address`` (every bond if ``None``) in every namespace of the
    file at ``path``; return what was deleted (nothing is written if nothing matched)."""
    db = read_file(path)
    gone = [b for b in bonds(path) if address is None or b.address == address]
    for bond in gone:
        del db[bond.namespace][bond.address]
    if gone:
        write_file(path, db)
    return gone


def _keys(path: pathlib.Path, address: str, entry: dict[str, Any]) -> PairingKeys:
    try:
        return PairingKeys.from_dict(entry)
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise KeyStoreError(f"{path}: bond with {address} is not readable: {error}") from None
