"""libudev through pyudev: the PCI functions udev knows, and what a udev event concerns.

`enumerate_pci` lists the PCI functions as libudev reports them (a cross-check of a scan, and
what an agent that already uses udev has at hand); `event_addresses` maps one kernel or udev
event to the PCI functions whose facts it may have changed, which is what
``Scanner.refresh(changed=...)`` takes. pyudev (and libudev) are needed only by
`enumerate_pci`: the rest of fastvpd, `event_addresses` included, works without them. See
docs/udev.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .model import PciAddress

__all__ = ["UdevPciFunction", "enumerate_pci", "event_addresses"]


@dataclass(frozen=True, slots=True)
class UdevPciFunction:
    """One PCI function as libudev lists it: plain values, read from its uevent properties.

    ``vendor_id``/``product_id`` come from ``PCI_ID`` and the subsystem IDs from
    ``PCI_SUBSYS_ID`` (4 lower-case hex digits each, None when udev has none), ``class_code``
    from ``PCI_CLASS``, ``driver`` is libudev's (the bound driver, None when unbound),
    ``device_path`` the kernel's ``DEVPATH`` (``/devices/pci0000:00/.../0000:82:00.3``), and
    ``properties`` every property udev gave.
    """

    address: str
    vendor_id: str | None
    product_id: str | None
    subsystem_vendor_id: str | None
    subsystem_product_id: str | None
    class_code: int | None
    driver: str | None
    device_path: str
    modalias: str | None
    properties: Mapping[str, str] = field(compare=False, hash=False, repr=False)


def _pyudev() -> Any:
    try:
        import pyudev  # type: ignore[import-untyped]  # pyudev ships no types
    except ImportError as e:
        raise ImportError(f"fastvpd.udev needs pyudev (pip install pyudev): {e}") from e
    return pyudev


def _ids(text: str | None) -> tuple[str | None, str | None]:
    """``"15B3:101E"`` -> ``("15b3", "101e")``; Nones for anything else."""
    vendor, sep, product = (text or "").partition(":")
    if not sep or not all(len(x) == 4 and _is_hex(x) for x in (vendor, product)):
        return None, None
    return vendor.lower(), product.lower()


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _canonical(text: str | None) -> str | None:
    """The canonical form of a PCI address (``0000:82:00.3``), or None when it is none."""
    try:
        return str(PciAddress.parse(text)) if text else None
    except ValueError:
        return None


def enumerate_pci(context: Any = None) -> list[UdevPciFunction]:
    """Every PCI function libudev lists (``subsystem="pci"``), in address order.

    ``context`` is a ``pyudev.Context`` (a new one when None). A device that vanishes while it
    is listed is left out. Raises ImportError, naming what is missing, without pyudev or
    libudev.
    """
    pyudev = _pyudev()
    if context is None:
        try:
            context = pyudev.Context()
        except ImportError as e:
            raise ImportError(f"fastvpd.udev: pyudev cannot load libudev (libudev1): {e}") from e
    out = []
    for device in context.list_devices(subsystem="pci"):
        try:
            properties = dict(device.properties)
            driver = device.driver
        except (pyudev.DeviceNotFoundError, OSError):
            continue
        address = _canonical(properties.get("PCI_SLOT_NAME")) or _canonical(device.sys_name)
        if address is None:
            continue
        vendor, product = _ids(properties.get("PCI_ID"))
        sub_vendor, sub_product = _ids(properties.get("PCI_SUBSYS_ID"))
        klass = properties.get("PCI_CLASS")
        out.append(UdevPciFunction(
            address=address, vendor_id=vendor, product_id=product,
            subsystem_vendor_id=sub_vendor, subsystem_product_id=sub_product,
            class_code=int(klass, 16) if klass and _is_hex(klass) else None,
            driver=driver or None, device_path=properties.get("DEVPATH", device.device_path),
            modalias=properties.get("MODALIAS"), properties=MappingProxyType(properties)))
    out.sort(key=lambda f: f.address)
    return out


def _address_of_path(subsystem: str, path: str) -> str | None:
    """The PCI function a device path (``/devices/...`` or ``/sys/devices/...``) names."""
    parts = [p for p in path.split("/") if p]
    if subsystem == "pci":
        return _canonical(parts[-1]) if parts else None
    # a PCI function's own netdev: .../<address>/net/<ifname> (a virtio or USB netdev sits
    # under a device of its own, and the function's net/ does not hold it)
    if len(parts) >= 3 and parts[-2] == "net":
        return _canonical(parts[-3])
    return None


def event_addresses(action: str | None, subsystem: str | None, device_path: str,
                    properties: Mapping[str, str] | None = None) -> frozenset[str]:
    """The PCI functions (canonical addresses) an event of ``subsystem`` on ``device_path``
    concerns: what ``Scanner.refresh(changed=...)`` should look at again.

    - ``pci``: the function itself (``add``, ``remove``, ``bind``, ``unbind``, ``change``, ...);
      ``PCI_SLOT_NAME`` of ``properties`` when the path ends in no address.
    - ``net``: the PCI function that owns the netdev, from its path
      ``/devices/.../<address>/net/<ifname>``; a netdev of no PCI function (``lo``, a bridge,
      a virtio or USB netdev, whose function's ``net/`` does not list it) concerns none. A
      ``move`` (a rename) concerns the owner of the old path (``DEVPATH_OLD``) too.
    - anything else: nothing.

    The path may start with ``/sys`` or not. Pure: it reads nothing, so it works without
    pyudev and on events from any source. A VF's event names the VF only: which PF it belongs
    to is in sysfs, not in the event, and the Scanner re-checks each PF's VF links itself.
    """
    if subsystem not in ("pci", "net"):
        return frozenset()
    properties = properties or {}
    found = set()
    address = _address_of_path(subsystem, device_path)
    if address is None and subsystem == "pci":
        address = _canonical(properties.get("PCI_SLOT_NAME"))
    if address is not None:
        found.add(address)
    old = properties.get("DEVPATH_OLD")
    if action == "move" and old:
        old_address = _address_of_path(subsystem, old)
        if old_address is not None:
            found.add(old_address)
    return frozenset(found)
