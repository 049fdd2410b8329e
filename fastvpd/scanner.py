"""`scan()`: one bulk walk of a sysfs tree, turned into an `Inventory`."""

from __future__ import annotations

import os
from typing import Any

from . import _walk
from .model import Inventory, problem_text

__all__ = ["scan"]

_NO_FACTS = _walk.F_GONE | _walk.F_BROKEN
_FLAGS, _PARENT = _walk.DEVICE_FIELDS.index("flags"), _walk.DEVICE_FIELDS.index("parent")


def scan(sysfs: str | os.PathLike[str] = "/sys", *, read_vpd: bool = True,
         vf_vpd: bool = False) -> Inventory:
    """Scan every PCI function under ``sysfs`` in one pass of the C walker (GIL released).

    VPD is read from PFs and plain functions when ``read_vpd`` (it is slow hardware and needs
    root), from VFs too only with ``vf_vpd``; a VF without its own serial reports its PF's.
    A function that vanished during the walk, or whose entry is a dangling link, is left out and
    named in ``Inventory.problems``; one with unreadable attributes is kept with ``problems``.
    VFs are computed from their PF's SR-IOV layout and only the first is read (design.md): the
    driver and netdevs of the others are read in one bulk call when first asked for, and a VF
    found gone then carries a problem saying so.
    Raises `SysfsError` only when ``sysfs`` is not a usable sysfs tree.
    """
    root = os.fspath(sysfs)
    walk = _walk.walk(root, read_vpd=read_vpd, vf_vpd=vf_vpd)
    rows, renumber = _drop_factless(walk.devices)
    per_device: dict[int, list[str]] = {}
    host: list[str] = []
    for index, attribute, message, path in walk.problems:
        text = problem_text(attribute, message, path)
        new = renumber(index) if index >= 0 else -1
        if new < 0:
            host.append(f"{walk.devices[index][0]}: {text}" if index >= 0 else text)
        else:
            per_device.setdefault(new, []).append(text)
    return Inventory(rows, {i: tuple(p) for i, p in per_device.items()}, tuple(host),
                     walk.counters, root,
                     details_loader=lambda addresses: _walk.details(root, addresses))


def _drop_factless(rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], Any]:
    """Leave out rows that hold no facts; returns the rows and an old -> new index map (-1: gone)."""
    if not any(r[_FLAGS] & _NO_FACTS for r in rows):
        return rows, lambda i: i
    new_index: dict[int, int] = {}
    for i, r in enumerate(rows):
        if not r[_FLAGS] & _NO_FACTS:
            new_index[i] = len(new_index)
    kept = []
    for i in new_index:
        r = rows[i]
        if r[_PARENT] >= 0:
            r = r[:_PARENT] + (new_index.get(r[_PARENT], -1),) + r[_PARENT + 1:]
        kept.append(r)
    return kept, lambda i: new_index.get(i, -1)
