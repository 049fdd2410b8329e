"""The "nova-like" baseline: per-VF sysfs lookups the way Nova does them today.

Nova's libvirt driver learns each VF's logical number and its PF's MAC one VF at a time, with
the helpers of ``nova/pci/utils.py`` (openstack/nova master):

- ``get_vf_num_by_pci_address(pci_addr)`` globs ``/sys/bus/pci/devices/<vf>/physfn/virtfn*``
  and ``os.readlink``s each match until ``re.search(pci_addr, target)`` hits, then takes the
  number from ``virtfn(\\d+)`` in the link's path. For a PF with K VFs that is one directory
  listing plus K/2 readlinks per VF on average: quadratic per PF.
- ``get_mac_by_pci_address(pci_addr, pf_interface=True)`` lists ``<vf>/physfn/net``
  (``get_ifname_by_pci_address``: ``os.listdir(...).pop()``, i.e. the *last* entry in directory
  order) and reads ``net/<ifname>/address`` with ``next(f).strip()``.

The functions below do the same file system work (written here, not copied), rooted at a sysfs
directory so they run on synthetic trees. `nova_like_scan` applies them to every VF of a host,
as a compute agent's periodic resource update does.
"""

from __future__ import annotations

import glob
import os
import re

__all__ = ["NotFound", "nova_vf_num", "nova_pf_mac", "nova_vf_facts", "nova_like_scan"]

_VIRTFN = re.compile(r"virtfn(\d+)")


class NotFound(LookupError):
    """What Nova raises as PciDeviceNotFoundById."""


def _device_path(sysfs: str | os.PathLike[str], address: str) -> str:
    return os.path.join(os.fspath(sysfs), "bus", "pci", "devices", address)


def nova_vf_num(sysfs: str | os.PathLike[str], vf_address: str) -> int:
    """VF number of `vf_address`, as ``get_vf_num_by_pci_address`` finds it."""
    pattern = os.path.join(glob.escape(_device_path(sysfs, vf_address)), "physfn", "virtfn*")
    for vf_path in glob.iglob(pattern):
        # Nova uses the address as a regular expression ('.' matches anything): so do we.
        if re.search(vf_address, os.readlink(vf_path)):
            m = _VIRTFN.search(os.path.basename(vf_path))
            if m:
                return int(m.group(1))
    raise NotFound(vf_address)


def nova_pf_mac(sysfs: str | os.PathLike[str], vf_address: str) -> str:
    """MAC of the VF's PF, as ``get_mac_by_pci_address(vf, pf_interface=True)`` reads it."""
    net = os.path.join(_device_path(sysfs, vf_address), "physfn", "net")
    try:
        ifname = os.listdir(net).pop()
    except Exception:
        raise NotFound(vf_address) from None
    try:
        with open(os.path.join(net, ifname, "address")) as f:
            return next(f).strip()
    except (OSError, StopIteration):
        raise NotFound(vf_address) from None


def nova_vf_facts(sysfs: str | os.PathLike[str], vf_address: str) -> tuple[str | None, int | None]:
    """(PF MAC, VF number) of one VF; None for what Nova could not find."""
    try:
        pf_mac: str | None = nova_pf_mac(sysfs, vf_address)
    except NotFound:
        pf_mac = None
    try:
        vf_num: int | None = nova_vf_num(sysfs, vf_address)
    except (NotFound, OSError):
        vf_num = None
    return pf_mac, vf_num


def nova_like_scan(sysfs: str | os.PathLike[str]) -> dict[str, tuple[str | None, int | None]]:
    """VF address -> (PF MAC, VF number) for every VF of the host, one VF at a time.

    The VFs are the entries of ``bus/pci/devices`` with a ``physfn`` link (Nova gets that list
    from libvirt; listing it here is linear and cheap next to the per-VF lookups).
    """
    devices = os.path.join(os.fspath(sysfs), "bus", "pci", "devices")
    out = {}
    for address in sorted(os.listdir(devices)):
        if os.path.islink(os.path.join(devices, address, "physfn")):
            out[address] = nova_vf_facts(sysfs, address)
    return out
