"""`scan()`: one bulk walk of a sysfs tree, turned into an `Inventory`."""

from __future__ import annotations

from . import _walk
from .model import Inventory, problem_text

__all__ = ["scan"]


def scan(sysfs: _walk.Root = "/sys", *, read_vpd: bool = True, vf_vpd: bool = False,
         strict_vpd: bool = False) -> Inventory:
    """Scan every PCI function under ``sysfs`` in one pass of the C walker (GIL released).

    VPD is read from PFs and plain functions when ``read_vpd`` (it is slow hardware and needs
    root), from VFs too only with ``vf_vpd``; a VF without its own serial reports its PF's.
    VPD is parsed tolerantly: a card with a bad checksum still reports its serial. With
    ``strict_vpd`` a blob that ``parse_vpd(strict=True)`` rejects counts as absent, as in libvirt
    and so in Nova (its problems stay on the device); ``vf_vpd=True, strict_vpd=True`` gives
    exactly Nova's device dicts (docs/nova-contract.md).
    A function that vanished during the walk, or whose entry is a dangling link, is left out and
    named in ``Inventory.problems``; one with unreadable attributes is kept with ``problems``.
    VFs are computed from their PF's SR-IOV layout and only the first is read (docs/sysfs.md): the
    driver and netdevs of the others are read in one bulk call when first asked for, and a VF
    found gone then carries a problem saying so.
    ``sysfs`` is a ``str``, ``bytes`` or path-like; the inventory's paths are ``str`` either way
    (`os.fsdecode`). Raises `SysfsError` only when ``sysfs`` is not a usable sysfs tree, ValueError
    when it holds a NUL byte (which would cut the path short), TypeError when it is no path.
    """
    root = _walk.root_path(sysfs)
    walk = _walk.walk(root, read_vpd=read_vpd, vf_vpd=vf_vpd)
    addresses, columns, extras = walk.addresses, walk.columns, walk.extras
    new_index: list[int] | None = None
    if walk.factless:
        addresses, columns, extras, new_index = _drop_factless(walk)
    per_device: dict[int, list[str]] = {}
    host: list[str] = []
    for index, attribute, message, path in walk.problems:
        text = problem_text(attribute, message, path)
        new = index if index < 0 or new_index is None else new_index[index]
        if new < 0:
            host.append(f"{walk.addresses[index]}: {text}" if index >= 0 else text)
        else:
            per_device.setdefault(new, []).append(text)
    return Inventory(addresses, columns, extras, {i: tuple(p) for i, p in per_device.items()},
                     tuple(host), walk.counters, root,
                     details_loader=lambda wanted: _walk.details(root, wanted),
                     strict_vpd=strict_vpd)


def _drop_factless(walk: _walk.Walk,
                   ) -> tuple[list[str], _walk.Columns, dict[int, _walk.Extra], list[int]]:
    """Leave out the rows that hold no facts; also returns old -> new index (-1: left out)."""
    gone = set(walk.factless)
    new_index: list[int] = []
    keep: list[int] = []
    for i in range(len(walk.addresses)):
        if i in gone:
            new_index.append(-1)
        else:
            new_index.append(len(keep))
            keep.append(i)
    columns = _walk.Columns._make([col[i] for i in keep] for col in walk.columns)
    columns = columns._replace(parent=[-1 if p < 0 else new_index[p] for p in columns.parent])
    extras = {new_index[i]: e for i, e in walk.extras.items() if new_index[i] >= 0}
    return [walk.addresses[i] for i in keep], columns, extras, new_index
