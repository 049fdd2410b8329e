"""`scan()`: one bulk walk of a sysfs tree, turned into an `Inventory`."""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import _walk
from .model import Inventory

__all__ = ["scan"]


def scan(sysfs: str | os.PathLike[str] = "/sys", *, read_vpd: bool = True,
         vf_vpd: bool = False) -> Inventory:
    """Scan every PCI function under ``sysfs`` in one pass of the C walker (GIL released).

    VPD is read from PFs and plain functions when ``read_vpd`` (it is slow hardware and needs
    root), from VFs too only with ``vf_vpd``; a VF without its own serial reports its PF's. A
    device that vanishes mid-scan is left out; one with unreadable attributes carries
    ``problems``. Raises `SysfsError` only when ``sysfs`` is not a usable sysfs tree.
    """
    root = os.fspath(sysfs)
    walk = _walk.walk(root, read_vpd=read_vpd, vf_vpd=vf_vpd)
    per_device: dict[int, list[str]] = {}
    host: list[str] = []
    for index, attribute, message, path in walk.problems:
        text = f"{attribute}: {message} ({path})" if attribute else f"{message} ({path})"
        if index < 0:
            host.append(text)
        else:
            per_device.setdefault(index, []).append(text)
    problems: Mapping[int, tuple[str, ...]] = {i: tuple(p) for i, p in per_device.items()}
    return Inventory(walk.devices, problems, tuple(host), walk.counters, root,
                     details_loader=lambda addresses: _walk.details(root, addresses))
