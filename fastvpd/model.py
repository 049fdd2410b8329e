"""The object model: PCI addresses, devices and a host inventory, built from the walker's flat rows.

`Inventory` keeps the flat rows the C walker returned and makes a `PciDevice` only when one is
asked for, so that a scan of thousands of VFs does not pay for objects nobody reads; `to_nova()`
works straight from the rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from . import _walk
from .errors import DeviceNotFound
from .vpd import Vpd, parse_vpd

__all__ = ["PciAddress", "PciDevice", "Inventory", "TYPE_PCI", "TYPE_PF", "TYPE_VF"]

TYPE_PCI = "type-PCI"
TYPE_PF = "type-PF"
TYPE_VF = "type-VF"
_DEV_TYPES = (TYPE_PCI, TYPE_PF, TYPE_VF)

_ADDRESS = re.compile(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])\Z")


@dataclass(frozen=True, slots=True, order=True)
class PciAddress:
    """A PCI function address ``DDDD:BB:SS.F``."""

    domain: int
    bus: int
    slot: int
    function: int

    def __post_init__(self) -> None:
        if not (0 <= self.domain <= 0xFFFF and 0 <= self.bus <= 0xFF and 0 <= self.slot <= 0x1F
                and 0 <= self.function <= 7):
            raise ValueError(f"PCI address out of range: {self.domain:x}:{self.bus:x}:"
                             f"{self.slot:x}.{self.function:x}")

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        """Parse ``"0000:82:00.3"``; ValueError for anything else."""
        m = _ADDRESS.match(text) if isinstance(text, str) else None
        if m is None:
            raise ValueError(f"not a PCI address (DDDD:BB:SS.F): {text!r}")
        return cls(*(int(g, 16) for g in m.groups()))

    @property
    def routing_id(self) -> int:
        """Bus, device and function as the 16-bit routing ID the SR-IOV spec computes with."""
        return self.bus << 8 | self.slot << 3 | self.function

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"


_DEV_ID_TABLE = str.maketrans(":.", "__")


def nova_dev_id(address: str) -> str:
    """Nova's ``dev_id``: ``pci_`` + the address with ':' and '.' turned into '_'."""
    return "pci_" + address.translate(_DEV_ID_TABLE)


@dataclass(frozen=True, slots=True)
class PciDevice:
    """One PCI function as a compute agent sees it. ``problems`` lists what could not be read."""

    address: str
    vendor_id: str | None
    product_id: str | None
    class_code: int | None
    dev_type: str
    parent_addr: str | None = None
    vf_num: int | None = None
    total_vfs: int | None = None
    num_vfs: int | None = None
    vf_product_id: str | None = None
    numa_node: int | None = None
    driver: str | None = None
    netdevs: tuple[str, ...] = ()
    mac_address: str | None = None
    vpd: Vpd | None = None
    card_serial_number: str | None = None
    pf_mac_address: str | None = None
    parent_ifname: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def is_pf(self) -> bool:
        return self.dev_type == TYPE_PF

    @property
    def is_vf(self) -> bool:
        return self.dev_type == TYPE_VF

    def nova_dict(self) -> dict[str, Any]:
        """The device dict Nova's libvirt driver reports (spec/nova-contract.md)."""
        return _nova_dict(self.address, self.vendor_id, self.product_id, self.numa_node,
                          self.dev_type, self.parent_addr, self.parent_ifname, self.vf_num,
                          self.pf_mac_address, self.card_serial_number, self.mac_address)

    def extra_info(self) -> dict[str, str]:
        """What Nova persists as ``extra_info``: non-field keys as strings, capabilities as JSON."""
        import json

        extra = {}
        for key, value in self.nova_dict().items():
            if key in _NOVA_FIELDS:
                continue
            extra[key] = json.dumps(value) if key == "capabilities" else str(value)
        return extra

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-ready data (the VPD as its own dict)."""
        out = {name: getattr(self, name) for name in _FIELDS if name != "vpd"}
        out["netdevs"] = list(self.netdevs)
        out["problems"] = list(self.problems)
        out["vpd"] = None if self.vpd is None else self.vpd.to_dict()
        return out


_FIELDS = tuple(f for f in PciDevice.__dataclass_fields__)
_NOVA_FIELDS = frozenset(("address", "vendor_id", "product_id", "dev_type", "dev_id", "label",
                          "numa_node", "parent_addr"))


def _nova_dict(address: str, vendor_id: str | None, product_id: str | None,
               numa_node: int | None, dev_type: str, parent_addr: str | None,
               parent_ifname: str | None, vf_num: int | None, pf_mac_address: str | None,
               card_serial_number: str | None, mac_address: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "dev_id": nova_dev_id(address),
        "address": address,
        "vendor_id": vendor_id,
        "product_id": product_id,
        "numa_node": numa_node,
        "label": f"label_{vendor_id}_{product_id}",
        "dev_type": dev_type,
    }
    caps: dict[str, Any] = {}
    if dev_type == TYPE_VF:
        d["parent_addr"] = parent_addr
        if parent_ifname is not None:
            d["parent_ifname"] = parent_ifname
        if pf_mac_address is not None and vf_num is not None:
            caps["sriov"] = {"pf_mac_address": pf_mac_address, "vf_num": vf_num}
    if card_serial_number:
        caps["vpd"] = {"card_serial_number": card_serial_number}
    if caps:
        d["capabilities"] = caps
    if dev_type == TYPE_PF and mac_address is not None:
        d["mac_address"] = mac_address
    return d


_HEX4: dict[int, str] = {}


def _hex4(value: int) -> str | None:
    """4 lower-case hex digits (memoised: a host has a handful of distinct IDs)."""
    if value < 0:
        return None
    text = _HEX4.get(value)
    if text is None:
        text = _HEX4[value] = f"{value:04x}"
    return text


class Inventory(Mapping[str, PciDevice]):
    """A read-only mapping ``address -> PciDevice`` of one scan, in address order.

    Indexes by PF, card serial and netdev name are built on first use. ``problems`` holds what
    concerned the tree rather than one device (entries that are not PCI addresses, say);
    ``counters`` the syscalls the walk made.
    """

    def __init__(self, rows: list[tuple[Any, ...]], device_problems: Mapping[int, tuple[str, ...]],
                 host_problems: tuple[str, ...] = (), counters: Mapping[str, int] | None = None,
                 sysfs: str | None = None, details_loader: Any = None) -> None:
        self._rows = rows
        self._index = {row[0]: i for i, row in enumerate(rows)}
        self._device_problems = dict(device_problems)
        self.problems = host_problems
        self.counters = MappingProxyType(dict(counters or {}))
        self.sysfs = sysfs
        self._details_loader = details_loader
        self._devices: list[PciDevice | None] = [None] * len(rows)
        self._vpds: list[Vpd | None | bool] = [False] * len(rows)  # False: not parsed yet
        self._cards: Mapping[str, tuple[PciDevice, ...]] | None = None
        self._netdev_index: dict[str, str] | None = None

    # -- Mapping ----------------------------------------------------------------------------------
    def __getitem__(self, address: str) -> PciDevice:
        i = self._index.get(address)
        if i is None:
            raise DeviceNotFound(address)
        return self._device(i)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __contains__(self, address: object) -> bool:
        return address in self._index

    def __repr__(self) -> str:
        pfs = sum(1 for r in self._rows if r[_KIND] == 1)
        vfs = sum(1 for r in self._rows if r[_KIND] == 2)
        return f"<Inventory {len(self)} functions: {pfs} PFs, {vfs} VFs; sysfs={self.sysfs!r}>"

    # -- queries ----------------------------------------------------------------------------------
    def pfs(self) -> tuple[PciDevice, ...]:
        """Every SR-IOV physical function, in address order."""
        return tuple(self._device(i) for i, r in enumerate(self._rows) if r[_KIND] == 1)

    def vfs(self, pf_address: str | None = None) -> tuple[PciDevice, ...]:
        """Every VF (in address order), or the VFs of one PF in ``vf_num`` order."""
        if pf_address is None:
            return tuple(self._device(i) for i, r in enumerate(self._rows) if r[_KIND] == 2)
        p = self._index.get(pf_address)
        if p is None:
            raise DeviceNotFound(pf_address)
        mine = [(r[_VF_NUM], i) for i, r in enumerate(self._rows) if r[_KIND] == 2 and r[_PARENT] == p]
        mine.sort()
        return tuple(self._device(i) for _, i in mine)

    @property
    def cards(self) -> Mapping[str, tuple[PciDevice, ...]]:
        """Card serial number -> every PF and VF reporting it, in address order."""
        if self._cards is None:
            cards: dict[str, list[PciDevice]] = {}
            for i in range(len(self._rows)):
                serial = self._serial(i)
                if serial:
                    cards.setdefault(serial, []).append(self._device(i))
            self._cards = MappingProxyType({k: tuple(v) for k, v in cards.items()})
        return self._cards

    def by_netdev(self, ifname: str) -> PciDevice:
        """The PCI function that owns netdev ``ifname``; DeviceNotFound when none does."""
        if self._netdev_index is None:
            index: dict[str, str] = {}
            for address in self._index:
                for name in self[address].netdevs:
                    index.setdefault(name, address)
            self._netdev_index = index
        address = self._netdev_index.get(ifname)
        if address is None:
            raise DeviceNotFound(ifname)
        return self[address]

    def to_nova(self) -> list[dict[str, Any]]:
        """Nova's device dicts for every function, in address order (spec/nova-contract.md).

        A function whose vendor or device ID could not be read is left out (Nova cannot track
        it); it is still in the inventory with its problems.
        """
        rows = self._rows
        serial_of = self._serial
        # Per PF, what all its VFs share: a dict to copy, the PF MAC and the card serial. A
        # host's VFs are nearly all alike, so the common case is one dict copy and three stores.
        shared: dict[int, tuple[dict[str, Any], int, int, int, str | None, str | None]] = {}
        out: list[dict[str, Any]] = []
        append = out.append
        for i, r in enumerate(rows):
            vendor, device, kind, numa = r[_VENDOR], r[_DEVICE], r[_KIND], r[_NUMA]
            if vendor < 0 or device < 0:
                continue
            p = r[_PARENT]
            if kind == 2 and p >= 0 and r[_VPD] is None:
                pf = shared.get(p)
                if pf is None:
                    pf = shared[p] = self._vf_template(p, vendor, device, numa)
                template, t_vendor, t_device, t_numa, pf_mac, serial = pf
                vf_num = r[_VF_NUM]
                if vendor == t_vendor and device == t_device and numa == t_numa and vf_num >= 0:
                    d = template.copy()
                    address = r[0]
                    d["dev_id"] = "pci_" + address.translate(_DEV_ID_TABLE)
                    d["address"] = address
                    caps: dict[str, Any] = {}
                    if pf_mac is not None:
                        caps["sriov"] = {"pf_mac_address": pf_mac, "vf_num": vf_num}
                    if serial:
                        caps["vpd"] = {"card_serial_number": serial}
                    if caps:
                        d["capabilities"] = caps
                    append(d)
                    continue
            parent_addr = parent_ifname = pf_mac = mac = None
            if kind == 2 and p >= 0:
                pf_row = rows[p]
                parent_addr = pf_row[0]
                if pf_row[_NETDEVS]:
                    parent_ifname, pf_mac = pf_row[_NETDEVS][0]
            elif kind == 1 and r[_NETDEVS]:
                mac = r[_NETDEVS][0][1]
            append(_nova_dict(r[0], _hex4(vendor), _hex4(device), None if numa < 0 else numa,
                              _DEV_TYPES[kind], parent_addr, parent_ifname,
                              None if r[_VF_NUM] < 0 else r[_VF_NUM], pf_mac, serial_of(i), mac))
        return out

    def _vf_template(self, p: int, vendor: int, device: int, numa: int,
                     ) -> tuple[dict[str, Any], int, int, int, str | None, str | None]:
        """The Nova dict a VF of PF row ``p`` with these IDs has, but for its own address."""
        pf_row = self._rows[p]
        ifname, pf_mac = pf_row[_NETDEVS][0] if pf_row[_NETDEVS] else (None, None)
        template = _nova_dict("", _hex4(vendor), _hex4(device), None if numa < 0 else numa,
                              TYPE_VF, pf_row[0], ifname, None, None, None, None)
        return template, vendor, device, numa, pf_mac, self._serial(p)

    # -- building ---------------------------------------------------------------------------------
    def _vpd(self, i: int) -> Vpd | None:
        v = self._vpds[i]
        if v is False:
            raw = self._rows[i][_VPD]
            v = None if raw is None else parse_vpd(raw)
            self._vpds[i] = v
        return v  # type: ignore[return-value]

    def _serial(self, i: int) -> str | None:
        vpd = self._vpd(i)
        serial = vpd.serial_number if vpd is not None else None
        if not serial:
            r = self._rows[i]
            if r[_KIND] == 2 and r[_PARENT] >= 0:
                return self._serial(r[_PARENT])
            return None
        return serial

    def _device(self, i: int) -> PciDevice:
        dev = self._devices[i]
        if dev is None:
            dev = self._devices[i] = self._build(i)
        return dev

    def _build(self, i: int) -> PciDevice:
        rows = self._rows
        r = rows[i]
        if r[_FLAGS] & FLAG_INFERRED and self._details_loader is not None:
            self._load_details()
            r = rows[i]
        kind = r[_KIND]
        netdevs = r[_NETDEVS]
        parent_addr = parent_ifname = pf_mac = None
        if kind == 2 and r[_PARENT] >= 0:
            pf = rows[r[_PARENT]]
            parent_addr = pf[0]
            if pf[_NETDEVS]:
                parent_ifname, pf_mac = pf[_NETDEVS][0]
        vpd = self._vpd(i)
        problems = self._device_problems.get(i, ())
        if vpd is not None and vpd.problems:
            problems = problems + tuple("vpd: " + p for p in vpd.problems)
        numa = r[_NUMA]
        return PciDevice(
            address=r[0],
            vendor_id=_hex4(r[_VENDOR]),
            product_id=_hex4(r[_DEVICE]),
            class_code=None if r[_CLASS] < 0 else r[_CLASS],
            dev_type=_DEV_TYPES[kind],
            parent_addr=parent_addr,
            vf_num=None if r[_VF_NUM] < 0 else r[_VF_NUM],
            total_vfs=r[_TOTAL_VFS] if kind == 1 and r[_TOTAL_VFS] >= 0 else None,
            num_vfs=r[_NUM_VFS] if kind == 1 and r[_NUM_VFS] >= 0 else None,
            vf_product_id=self._vf_product_id(i) if kind == 1 else None,
            numa_node=None if numa < 0 else numa,
            driver=r[_DRIVER],
            netdevs=tuple(name for name, _ in netdevs),
            mac_address=netdevs[0][1] if netdevs else None,
            vpd=vpd,
            card_serial_number=self._serial(i),
            pf_mac_address=pf_mac,
            parent_ifname=parent_ifname,
            problems=problems,
        )

    def _vf_product_id(self, i: int) -> str | None:
        r = self._rows[i]
        if r[_VF_DEVICE] >= 0:
            return _hex4(r[_VF_DEVICE])
        for other in self._rows:  # older kernels: no sriov_vf_device; any VF of this PF tells
            if other[_KIND] == 2 and other[_PARENT] == i and other[_DEVICE] >= 0:
                return _hex4(other[_DEVICE])
        return None

    def _load_details(self) -> None:
        """Read driver and netdevs of every VF the fast path inferred, in one bulk call.

        What that read finds wrong (a garbage MAC file; a VF gone since the scan) becomes the
        device's problems, as it would had the scan read the VF itself.
        """
        loader, self._details_loader = self._details_loader, None
        wanted = [r[0] for r in self._rows if r[_FLAGS] & FLAG_INFERRED]
        for address, (driver, netdevs, problems) in loader(wanted).items():
            i = self._index[address]
            r = self._rows[i]
            self._rows[i] = r[:_DRIVER] + (driver, netdevs) + r[_NETDEVS + 1:]
            if problems:
                self._device_problems[i] = self._device_problems.get(i, ()) + tuple(
                    problem_text(*p) for p in problems)


def problem_text(attribute: str, message: str, path: str) -> str:
    """How a device's sysfs problem reads: ``"net: garbage content '...' (/sys/...)"``."""
    return f"{attribute}: {message} ({path})"


# Field positions of a walker row (fastvpd._walk.DEVICE_FIELDS).
(_ADDR, _VENDOR, _DEVICE, _CLASS, _NUMA, _KIND, _PARENT, _VF_NUM, _TOTAL_VFS, _NUM_VFS, _OFFSET,
 _STRIDE, _VF_DEVICE, _FLAGS, _DRIVER, _NETDEVS, _VPD) = range(len(_walk.DEVICE_FIELDS))
FLAG_INFERRED = _walk.F_INFERRED
