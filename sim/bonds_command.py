"""``cgmsim bonds list|delete``: the bonds in a key store file, of either role
(``sim.links.keystore``): the transmitter's ``--keys FILE``, or the receiver's ``--keys FILE`` or
``OUT/keys.json`` (``--out DIR``)."""

from __future__ import annotations

import datetime
import json
import pathlib

import click

from sim.links.keystore import MAX_BONDS, Bond, KeyStoreError, bonds, delete_bonds

_WHERE = (
    "The key store: --keys FILE (as given to cgmsim transmitter or receiver), or --out DIR for "
    "the receiver's DIR/keys.json."
)


def _store(keys: pathlib.Path | None, out: pathlib.Path | None) -> pathlib.Path:
    if (keys is None) == (out is None):
        raise click.UsageError("give --keys FILE or --out DIR (one of them)")
    path = keys if keys is not None else out / "keys.json"  # type: ignore[operator]
    if not path.is_file():
        raise click.ClickException(f"no key store file at {path}")
    return path


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _as_json(bond: Bond) -> dict[str, object]:
    return {**bond.as_json(), "last_used": _when(bond.last_used)}


def _same(a: str, b: str) -> bool:
    """Addresses compared as bumble writes them, case and a ``/P`` (public) suffix aside."""
    return a.upper().removesuffix("/P") == b.upper().removesuffix("/P")


_keys_option = click.option(
    "--keys",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    metavar="FILE",
    help="The key store file.",
)
_out_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    metavar="DIR",
    help="A receiver's output folder: its DIR/keys.json.",
)


_GROUP_HELP = f"""List or delete the bonds (long-term keys of paired devices) in a key store file.

Each bond belongs to a local device (DEVICE: the address the transmitter or receiver ran with)
and names its peer (PEER, an identity address). PAIRING says how the keys were made:
secure-connections (authenticated LE Secure Connections: the only kind cgmsim keeps),
just-works or legacy (from older versions, or the receiver's --insecure), or host-stack (the
receiver's bleak runs on the host's own Bluetooth stack, which keeps those keys itself).
At most --max-bonds bonds are kept per device (default {MAX_BONDS}); a new bond beyond that
replaces the least recently used one (the one whose last encryption or pairing is the oldest).
Stop the transmitter or receiver that uses the file before deleting from it."""


@click.group(name="bonds", help=_GROUP_HELP)
def bonds_command() -> None:
    pass


@bonds_command.command(name="list", help="List the bonds, least recently used first. " + _WHERE)
@_keys_option
@_out_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_command(keys: pathlib.Path | None, out: pathlib.Path | None, as_json: bool) -> None:
    path = _store(keys, out)
    try:
        found = bonds(path)
    except KeyStoreError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps([_as_json(b) for b in found]))
        return
    if not found:
        click.echo(f"no bonds in {path}")
        return
    rows = [("DEVICE", "PEER", "PAIRING", "LAST USED")] + [
        (b.namespace, b.address, b.kind, _when(b.last_used) or "-") for b in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + row[3])


@bonds_command.command(
    name="delete",
    help="Delete the bonds with the peer ADDRESS (for every device in the file), or --all. "
    "The peer must pair again afterwards. " + _WHERE,
)
@_keys_option
@_out_option
@click.argument("address", required=False)
@click.option("--all", "every", is_flag=True, help="Delete every bond in the file.")
def delete_command(
    keys: pathlib.Path | None, out: pathlib.Path | None, address: str | None, every: bool
) -> None:
    if (address is None) == (not every):
        raise click.UsageError("give a peer ADDRESS or --all (one of them)")
    path = _store(keys, out)
    try:
        if every:
            gone = delete_bonds(path, None)
        else:
            assert address is not None
            listed = [b.address for b in bonds(path) if _same(b.address, address)]
            if not listed:
                raise click.ClickException(f"no bond with {address} in {path}")
            gone = [b for name in sorted(set(listed)) for b in delete_bonds(path, name)]
    except KeyStoreError as error:
        raise click.ClickException(str(error)) from None
    for bond in gone:
        click.echo(f"deleted the bond of {bond.namespace} with {bond.address}")
