"""The one exception hierarchy of fastvpd.

Every error names what it is about (a device address, a path, a byte offset) so that a compute
agent's log line is enough to find the culprit.
"""

from __future__ import annotations

import os

__all__ = [
    "FastVpdError",
    "VpdFormatError",
    "SysfsError",
    "DeviceNotFound",
    "NetdevNotFound",
    "ProfileError",
    "DeviceSpecError",
    "LibvirtError",
]


class FastVpdError(Exception):
    """Root of every error fastvpd raises on purpose."""


class VpdFormatError(FastVpdError, ValueError):
    """A VPD blob breaks the format (raised by ``parse_vpd(strict=True)``).

    ``offset`` is the byte offset of the offending resource, field or byte; ``source`` names where
    the blob came from (a path or device address) when the caller knows it.
    """

    def __init__(self, message: str, offset: int, source: str | None = None) -> None:
        self.offset = offset
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{message}")


class SysfsError(FastVpdError, OSError):
    """A sysfs path could not be used (the root itself, never one vanishing device)."""

    def __init__(self, message: str, path: str | os.PathLike[str], errno: int | None = None) -> None:
        self.path = os.fspath(path)
        super().__init__(errno, f"{self.path}: {message}")
        self.errno = errno

    def __str__(self) -> str:
        return str(self.args[1])


class DeviceNotFound(FastVpdError, KeyError):
    """No PCI function with this address is in the inventory."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        super().__init__(address)

    def __str__(self) -> str:
        return f"no PCI device {self.address!r} in the inventory"


class NetdevNotFound(DeviceNotFound):
    """No PCI function in the inventory owns this netdev (``Inventory.by_netdev``).

    A `DeviceNotFound`, so that one ``except`` covers both lookups; ``address`` is None and
    ``ifname`` names the netdev.
    """

    def __init__(self, ifname: str) -> None:
        super().__init__(None)
        self.ifname = ifname
        self.args = (ifname,)

    def __str__(self) -> str:
        return f"no netdev {self.ifname!r} in the inventory"


class ProfileError(FastVpdError, ValueError):
    """A Neutron ``binding:profile`` cannot be built for a device."""

    def __init__(self, message: str, address: str | None = None) -> None:
        self.address = address
        super().__init__(f"{address}: {message}" if address else message)


class DeviceSpecError(FastVpdError, ValueError):
    """A ``[pci] device_spec`` entry is invalid, or invalid for this host."""


class LibvirtError(FastVpdError):
    """libvirt could not list its node devices (`fastvpd.libvirt.inventory_from_libvirt`); the
    ``libvirt.libvirtError`` is the cause. One device that cannot be described is no error."""
