"""The object model: PCI addresses, devices and a host inventory, built from the walker's columns.

`Inventory` keeps the flat columns the C walker returned and makes a `PciDevice` only when one
is asked for, so that a scan of thousands of VFs does not pay for objects nobody reads;
`to_nova()` works straight from the columns. Another source (libvirt's node devices, say) gives
one `DeviceFacts` per function to `Inventory.from_facts`, which lays them out the same way.
"""

from __future__ import annotations

import errno
import bisect
import os
import re
import threading
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from types import MappingProxyType
from typing import Any, overload

from . import _nova, _walk
from .errors import DeviceNotFound, NetdevNotFound
from ._walk import address_order
from .vpd import Vpd, parse_vpd

__all__ = ["PciAddress", "PciDevice", "DeviceFacts", "Inventory", "TYPE_PCI", "TYPE_PF",
           "TYPE_VF", "VPD_DENIED", "VPD_NOT_USED"]

TYPE_PCI = "type-PCI"
TYPE_PF = "type-PF"
TYPE_VF = "type-VF"
_DEV_TYPES = (TYPE_PCI, TYPE_PF, TYPE_VF)

#: How a device problem starts when its ``vpd`` file exists but reading it was refused for lack
#: of privilege: reading VPD needs root (docs/sysfs.md). ``problem.startswith(VPD_DENIED)``.
VPD_DENIED = tuple(f"vpd: unreadable: {_walk._strerror(e)}" for e in (errno.EACCES, errno.EPERM))
#: How the problem starts that says ``strict_vpd`` dropped a blob, as libvirt (and so Nova) does.
VPD_NOT_USED = "vpd: not used (strict_vpd)"

# The domain as the kernel prints it (%04x of an int): 4 digits, more only above ffff (Intel VMD
# puts functions at 10000:e1:00.0), never with a leading zero beyond 4 digits.
_ADDRESS = re.compile(r"([0-9a-fA-F]{4}|[1-9a-fA-F][0-9a-fA-F]{4,7}):([0-9a-fA-F]{2}):"
                      r"([0-9a-fA-F]{2})\.([0-7])\Z")
MAX_DOMAIN = 0xFFFFFFFF


@dataclass(frozen=True, slots=True, order=True)
class PciAddress:
    """A PCI function address ``DDDD:BB:SS.F`` (the domain in more digits above ffff)."""

    domain: int
    bus: int
    slot: int
    function: int

    def __post_init__(self) -> None:
        if not (0 <= self.domain <= MAX_DOMAIN and 0 <= self.bus <= 0xFF and 0 <= self.slot <= 0x1F
                and 0 <= self.function <= 7):
            raise ValueError(f"PCI address out of range: {self.domain:x}:{self.bus:x}:"
                             f"{self.slot:x}.{self.function:x}")

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        """Parse ``"0000:82:00.3"`` or ``"10000:e1:00.0"``; ValueError for anything else.

        Hex digits may be upper case (`str` gives the kernel's lower case).
        """
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
        """The device dict Nova's libvirt driver reports (docs/nova-contract.md)."""
        return _nova_dict(self.address, self.vendor_id, self.product_id, self.numa_node,
                          self.dev_type, self.parent_addr, self.parent_ifname, self.vf_num,
                          self.pf_mac_address, self.card_serial_number, self.mac_address)

    def extra_info(self) -> dict[str, str]:
        """What Nova persists as ``extra_info`` (``objects.PciDevice.create``): every key that is
        not a PciDevice field, strings as they are and anything else as JSON text."""
        import json

        extra = {}
        for key, value in self.nova_dict().items():
            if key in _NOVA_FIELDS:
                continue
            extra[key] = value if isinstance(value, str) else json.dumps(value)
        return extra

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-ready data (the VPD as its own dict)."""
        out = {name: getattr(self, name) for name in _FIELDS if name != "vpd"}
        out["netdevs"] = list(self.netdevs)
        out["problems"] = list(self.problems)
        out["vpd"] = None if self.vpd is None else self.vpd.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """One PCI function as a source other than the sysfs walker knows it (`Inventory.from_facts`).

    The fields mean what the `PciDevice` fields of the same names mean; ``netdevs`` pairs each
    netdev name with its MAC (None when unknown), ``vpd`` is the function's own raw VPD blob and
    ``problems`` what the source could not read. What follows from other functions (a VF's PF
    MAC, ``parent_ifname``, the card serial a VF inherits from its PF) the inventory derives, as
    for a scan.
    """

    address: str
    vendor_id: str | None
    product_id: str | None
    dev_type: str = TYPE_PCI
    class_code: int | None = None
    parent_addr: str | None = None
    vf_num: int | None = None
    total_vfs: int | None = None
    num_vfs: int | None = None
    vf_product_id: str | None = None
    numa_node: int | None = None
    driver: str | None = None
    netdevs: tuple[tuple[str, str | None], ...] = ()
    vpd: bytes | None = None
    problems: tuple[str, ...] = ()


_FIELDS = tuple(f for f in PciDevice.__dataclass_fields__)
_NOVA_FIELDS = frozenset(("address", "vendor_id", "product_id", "dev_type", "dev_id", "label",
                          "numa_node", "parent_addr"))


def _nova_dict(address: str, vendor_id: str | None, product_id: str | None,
               numa_node: int | None, dev_type: str, parent_addr: str | None,
               parent_ifname: str | None, vf_num: int | None, pf_mac_address: str | None,
               card_serial_number: str | None, mac_address: str | None,
               dev_id: str | None = None) -> dict[str, Any]:
    """One device dict, keys in the order Nova's ``Host._get_pcidev_info`` makes them
    (``dev_id``: ``nova_dev_id(address)`` when the caller has it made already)."""
    d: dict[str, Any] = {
        "dev_id": dev_id or nova_dev_id(address),
        "address": address,
        "product_id": product_id,
        "vendor_id": vendor_id,
        "numa_node": numa_node,
        "label": _label(vendor_id, product_id),
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


# (dict without parent_ifname, dict with it, vendor, device, numa_node, PF MAC, card serial)
_VfTemplate = tuple[dict[str, Any], dict[str, Any], int, int, int, "str | None", "str | None"]

def _key(address: object) -> str:
    """An inventory key: a `PciAddress` stands for its text."""
    return str(address) if isinstance(address, PciAddress) else address  # type: ignore[return-value]


_HEX4: dict[int, str] = {}
_LABELS: dict[tuple[str | None, str | None], str] = {}
_LABELS_MAX = 4096  # distinct ID pairs memoised; a host has a handful


def _label(vendor_id: str | None, product_id: str | None) -> str:
    """Nova's ``label``, memoised like `_hex4` (the IDs it is made of are)."""
    label = _LABELS.get((vendor_id, product_id))
    if label is None:
        label = f"label_{vendor_id}_{product_id}"
        if len(_LABELS) < _LABELS_MAX:
            _LABELS[vendor_id, product_id] = label
    return label


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

    Safe to share between threads: it never changes once built, and the details of inferred VFs
    are loaded once, by whichever thread asks first, while the others wait for them.

    Indexes by PF, card serial and netdev name are built on first use. ``problems`` holds what
    concerned the tree rather than one device (entries that are not PCI addresses, say);
    ``counters`` the syscalls the walk made.
    """

    def __init__(self, addresses: Sequence[str], columns: _walk.Columns,
                 extras: Mapping[int, _walk.Extra], device_problems: Mapping[int, tuple[str, ...]],
                 host_problems: tuple[str, ...] = (), counters: Mapping[str, int] | None = None,
                 sysfs: str | None = None, details_loader: Any = None,
                 strict_vpd: bool = False) -> None:
        """From the walker's columns (fastvpd._walk), device ``i`` being ``addresses[i]``."""
        self.strict_vpd = strict_vpd
        self._addresses = (addresses if isinstance(addresses, _walk.Addresses)
                           else _walk.Addresses(addresses))
        self._cols = _walk.Columns._make(c if isinstance(c, array) else array("i", c)
                                         for c in columns)
        self._extras = dict(extras)
        self._device_problems = dict(device_problems)
        # what the scan read, without what loading VF details adds (`diff` compares these)
        self._scan_problems = dict(device_problems)
        self._scan_extras = dict(self._extras)
        self.problems = host_problems
        self.counters = MappingProxyType(dict(counters or {}))
        self.sysfs = sysfs
        self._details_loader = details_loader
        self._details_lock = threading.Lock()
        self._facts_cache: tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]],
                                 dict[str, tuple[Any, ...]]] | None = None
        self._devices: dict[int, PciDevice] = {}
        self._vpds: dict[int, Vpd | None] = {}
        self._cards: Mapping[str, tuple[PciDevice, ...]] | None = None
        self._netdev_index: dict[str, str] | None = None
        # What the Nova dicts of a PF and of its VFs share, made once per scan: every to_nova()
        # reuses these strings (immutable) instead of making its own (docs/nova-contract.md).
        # (A PF without driver, netdev or VPD is in no extra: its strings are made per call.)
        self._pf_strings: dict[int, tuple[str, str, str | None]] = {
            p: self._make_pf_strings(p) for p in self._extras if self._cols.kind[p] == 1}

    @classmethod
    def from_facts(cls, devices: Iterable[DeviceFacts], *, problems: Iterable[str] = (),
                   strict_vpd: bool = False) -> Inventory:
        """An inventory of functions another source describes, in address order, with the same
        queries, `to_nova()` and profiles as a scan's (``sysfs`` is None). ``problems`` are the
        source's own, about no device it could describe; ``strict_vpd`` says that the source
        already left out VPD its strict parser rejects, as libvirt does.

        A VF whose PF is not among the devices gets no ``parent_addr`` and a problem saying so.
        Raises ValueError for facts that cannot be true: an address that is not canonical
        (``0000:82:00.3``) or given twice, an unknown ``dev_type``, an ID that is not 4
        lower-case hex digits, a negative number, a parent or VF number on a function that is no
        VF, SR-IOV counts on one that is no PF.
        """
        facts = sorted(devices, key=lambda d: address_order(d.address))
        addresses = [d.address for d in facts]
        index = {a: i for i, a in enumerate(addresses)}
        if len(index) != len(facts):
            twice = sorted({a for a in addresses if addresses.count(a) > 1})
            raise ValueError(f"PCI address given more than once: {', '.join(twice)}")
        columns = _walk.Columns._make([] for _ in _walk.Columns._fields)
        extras: dict[int, _walk.Extra] = {}
        device_problems: dict[int, tuple[str, ...]] = {}
        for i, d in enumerate(facts):
            kind, parent, own_problems = _checked_facts(d, index)
            netdevs = tuple(sorted(d.netdevs))
            flags = _walk.F_DETAILS | (FLAG_NETDEV if netdevs else 0)
            for column, value in zip(columns, (
                    _id(d.vendor_id), _id(d.product_id), _count(d.class_code),
                    _count(d.numa_node), kind, parent, _count(d.vf_num), _count(d.total_vfs),
                    _count(d.num_vfs), -1, -1, _id(d.vf_product_id), flags)):
                column.append(value)
            if d.driver is not None or netdevs or d.vpd is not None:
                extras[i] = (d.driver, netdevs, None if d.vpd is None else bytes(d.vpd))
            if own_problems:
                device_problems[i] = own_problems
        return cls(addresses, columns, extras, device_problems, tuple(problems),
                   strict_vpd=strict_vpd)

    def _row(self, address: str) -> int | None:
        """The row of ``address``: a binary search of the address text (no index to build)."""
        return self._addresses.find(address)

    # -- Mapping ----------------------------------------------------------------------------------
    def __getitem__(self, address: str | PciAddress) -> PciDevice:
        """The device at ``address`` (``"0000:82:00.3"`` or a `PciAddress`); DeviceNotFound."""
        key = _key(address)
        i = self._row(key) if isinstance(key, str) else None
        if i is None:
            raise DeviceNotFound(key)
        return self._device(i)

    def __len__(self) -> int:
        return len(self._addresses)

    def __iter__(self) -> Iterator[str]:
        return iter(self._addresses)

    def __contains__(self, address: object) -> bool:
        key = _key(address)
        return isinstance(key, str) and self._row(key) is not None

    def __repr__(self) -> str:
        kind = self._cols.kind
        return (f"<Inventory {len(self)} functions: {kind.count(1)} PFs, {kind.count(2)} VFs; "
                f"sysfs={self.sysfs!r}>")

    # -- queries ----------------------------------------------------------------------------------
    def pfs(self) -> tuple[PciDevice, ...]:
        """Every SR-IOV physical function, in address order."""
        return tuple(self._device(i) for i, k in enumerate(self._cols.kind) if k == 1)

    def vfs(self, pf_address: str | PciAddress | None = None) -> tuple[PciDevice, ...]:
        """Every VF (in address order), or the VFs of one PF in ``vf_num`` order.

        A PF's VFs whose number is unknown (no ``virtfn`` link names them) come first.
        """
        c = self._cols
        if pf_address is None:
            return tuple(self._device(i) for i, k in enumerate(c.kind) if k == 2)
        pf_address = _key(pf_address)
        p = self._row(pf_address)
        if p is None:
            raise DeviceNotFound(pf_address)
        mine = [(n, i) for i, (k, parent, n) in enumerate(zip(c.kind, c.parent, c.vf_num))
                if k == 2 and parent == p]
        mine.sort()
        return tuple(self._device(i) for _, i in mine)

    @property
    def cards(self) -> Mapping[str, tuple[PciDevice, ...]]:
        """Card serial number -> every PF and VF reporting it, in address order."""
        if self._cards is None:
            cards: dict[str, list[PciDevice]] = {}
            for i in range(len(self)):
                serial = self._serial(i)
                if serial:
                    cards.setdefault(serial, []).append(self._device(i))
            self._cards = MappingProxyType({k: tuple(v) for k, v in cards.items()})
        return self._cards

    def by_netdev(self, ifname: str) -> PciDevice:
        """The PCI function that owns netdev ``ifname``; `NetdevNotFound` when none does."""
        if self._netdev_index is None:
            index: dict[str, str] = {}
            for owner in self._addresses:
                for name in self[owner].netdevs:
                    index.setdefault(name, owner)
            self._netdev_index = index
        address = self._netdev_index.get(ifname)
        if address is None:
            raise NetdevNotFound(ifname)
        return self[address]

    def to_nova(self) -> list[dict[str, Any]]:
        """Nova's device dicts for every function, in address order (docs/nova-contract.md).

        A function whose vendor or device ID could not be read is left out (Nova cannot track
        it); it is still in the inventory with its problems.
        """
        c, extras = self._cols, self._extras
        # VFs with VPD of their own (vf_vpd): their serial is theirs, not their PF's template's
        own_vpd = {i for i, (_, _, vpd) in extras.items() if vpd is not None and c.kind[i] == 2}
        # The VFs are built in C (fastvpd._nova), from their PF's template: see _vf_template.
        return _nova.build(self._addresses.text, self._addresses.offsets, c.vendor, c.device,
                           c.numa_node, c.kind, c.parent, c.vf_num, c.flags, FLAG_NETDEV,
                           own_vpd, self._vf_template, self._nova_row)

    def nova_dict(self, address: str | PciAddress) -> dict[str, Any] | None:
        """Nova's dict of one device, as in `to_nova` (None for a device Nova cannot track: its
        vendor or device ID is unknown). Made from the scan alone: unlike building the
        `PciDevice`, it never reads the details of a VF (docs/nova-contract.md)."""
        i = self._row(_key(address))
        if i is None:
            raise DeviceNotFound(_key(address))
        c = self._cols
        return self._nova_row(i) if c.vendor[i] >= 0 and c.device[i] >= 0 else None

    def _nova_row(self, i: int) -> dict[str, Any]:
        c, extras = self._cols, self._extras
        kind, p, numa, vf_num = c.kind[i], c.parent[i], c.numa_node[i], c.vf_num[i]
        parent_addr = parent_ifname = parent_mac = mac = None
        if kind == 2 and p >= 0:
            parent_addr = self._pf_string(p)[0]
            pf_netdevs = extras.get(p, _walk.NO_EXTRA)[1]
            if pf_netdevs:
                parent_mac = pf_netdevs[0][1]
                if c.flags[i] & FLAG_NETDEV:
                    parent_ifname = pf_netdevs[0][0]
        elif kind == 1:
            netdevs = extras.get(i, _walk.NO_EXTRA)[1]
            if netdevs:
                mac = netdevs[0][1]
        address, dev_id, serial = (self._pf_string(i) if kind == 1
                                   else (self._addresses[i], None, self._serial(i)))
        return _nova_dict(address, _hex4(c.vendor[i]), _hex4(c.device[i]),
                          None if numa < 0 else numa, _DEV_TYPES[kind], parent_addr,
                          parent_ifname, None if vf_num < 0 else vf_num, parent_mac,
                          serial, mac, dev_id)

    def _make_pf_strings(self, p: int) -> tuple[str, str, str | None]:
        address = self._addresses[p]
        return address, nova_dev_id(address), self._serial(p)

    def _pf_string(self, p: int) -> tuple[str, str, str | None]:
        """A PF's address, ``dev_id`` and card serial, as made at scan time."""
        return self._pf_strings.get(p) or self._make_pf_strings(p)

    def _vf_template(self, p: int, vendor: int, device: int, numa: int) -> _VfTemplate:
        """The Nova dicts a VF of PF ``p`` with these IDs has, but for its own address: without
        and with ``parent_ifname`` (Nova gives it only to a VF that owns a netdev)."""
        netdevs = self._extras.get(p, _walk.NO_EXTRA)[1]
        ifname, pf_mac = netdevs[0] if netdevs else (None, None)
        address, _, serial = self._pf_string(p)
        args = ("", _hex4(vendor), _hex4(device), None if numa < 0 else numa, TYPE_VF, address)
        plain = _nova_dict(*args, None, None, None, None, None)
        with_ifname = _nova_dict(*args, ifname, None, None, None, None)
        return plain, with_ifname, vendor, device, numa, pf_mac, serial

    def diff(self, previous: Inventory) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """``(added, removed, changed)`` addresses since ``previous``, each in address order.

        Changed means a difference in what the scans read of the device, its problems included,
        or in what a VF takes from its PF (serial, PF MAC): the `PciDevice` fields. The driver
        and netdevs of a VF the fast path inferred are not read by a scan, so they count only
        through what the scan does know of them (whether the VF owns a netdev). Reads nothing.
        """
        (dense, sparse, inherit), (old_dense, old_sparse, old_inherit) = (
            self._facts(), previous._facts())
        if dense == old_dense and sparse == old_sparse and inherit == old_inherit:
            return (), (), ()
        added = tuple(a for a in dense if a not in old_dense)
        removed = tuple(a for a in old_dense if a not in dense)
        changed = {a for a, f in dense.items() if a in old_dense and old_dense[a] != f}
        changed.update(a for a in sparse.keys() | old_sparse.keys()
                       if a in dense and a in old_dense and sparse.get(a) != old_sparse.get(a))
        # a VF takes its serial and PF MAC from its PF: when those change, so does every VF of it
        moved = {pf for pf in inherit.keys() | old_inherit.keys()
                 if inherit.get(pf) != old_inherit.get(pf)}
        if moved:
            c = self._cols
            changed.update(a for a, k, p in zip(self._addresses, c.kind, c.parent)
                           if k == 2 and p >= 0 and self._addresses[p] in moved
                           and a in old_dense)
        return added, removed, tuple(a for a in dense if a in changed)

    def _facts(self) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]],
                              dict[str, tuple[Any, ...]]]:
        """What the `PciDevice` of each row is made of (see `diff`), in three parts so that the
        thousands of VFs cost no Python code per row: the int columns of every row (dense), the
        strings and problems of the few rows that have any (sparse), and what a PF's VFs take
        from it (serial, PF MAC)."""
        facts = self._facts_cache
        if facts is not None:
            return facts
        # what the scan itself read: not the VF details loaded since (nor their problems)
        c, extras, addresses = self._cols, self._scan_extras, self._addresses
        parents = [addresses[p] if p >= 0 else None for p in c.parent]
        flags = [f & _STABLE_FLAGS for f in c.flags]
        dense = dict(zip(addresses, zip(c.vendor, c.device, c.class_code, c.numa_node, c.kind,
                                        c.vf_num, c.total_vfs, c.num_vfs, c.vf_device, flags,
                                        parents)))
        sparse: dict[str, tuple[Any, ...]] = {}
        for i in extras.keys() | self._scan_problems.keys():
            extra = extras.get(i, _walk.NO_EXTRA)
            sparse[addresses[i]] = (extra, self._scan_problems.get(i, ()), self._serial(i))
        inherit = {addresses[i]: (self._serial(i), extras.get(i, _walk.NO_EXTRA)[1][:1])
                   for i, k in enumerate(c.kind) if k == 1}
        facts = self._facts_cache = (dense, sparse, inherit)
        return facts

    # -- building ---------------------------------------------------------------------------------
    def _parsed_vpd(self, i: int) -> Vpd | None:
        """The device's own VPD blob, parsed tolerantly (None: no blob)."""
        try:
            return self._vpds[i]
        except KeyError:
            raw = self._extras.get(i, _walk.NO_EXTRA)[2]
            v = self._vpds[i] = None if raw is None else parse_vpd(raw)
            return v

    def _vpd(self, i: int) -> Vpd | None:
        """The VPD the inventory reports: with ``strict_vpd`` a blob with a fatal problem counts
        as absent, as libvirt (and so Nova) drops it whole."""
        v = self._parsed_vpd(i)
        if v is not None and self.strict_vpd and v.fatal_problems:
            return None
        return v

    def _serial(self, i: int) -> str | None:
        vpd = self._vpd(i)
        serial = vpd.serial_number if vpd is not None else None
        if not serial:
            c = self._cols
            if c.kind[i] == 2 and c.parent[i] >= 0:
                return self._serial(c.parent[i])
            return None
        return serial

    def _device(self, i: int) -> PciDevice:
        dev = self._devices.get(i)
        if dev is None:
            dev = self._devices[i] = self._build(i)
        return dev

    def _build(self, i: int) -> PciDevice:
        c = self._cols
        if c.flags[i] & FLAG_INFERRED and self._details_loader is not None:
            self._load_details()  # every thread that gets here waits for the details
        kind, parent = c.kind[i], c.parent[i]
        driver, netdevs, _ = self._extras.get(i, _walk.NO_EXTRA)
        parent_addr = parent_ifname = pf_mac = None
        if kind == 2 and parent >= 0:
            parent_addr = self._addresses[parent]
            pf_netdevs = self._extras.get(parent, _walk.NO_EXTRA)[1]
            if pf_netdevs:
                pf_mac = pf_netdevs[0][1]
                if c.flags[i] & FLAG_NETDEV:  # as at scan time, like to_nova()
                    parent_ifname = pf_netdevs[0][0]
        parsed, vpd = self._parsed_vpd(i), self._vpd(i)
        problems = self._device_problems.get(i, ())
        if parsed is not None and parsed.problems:
            where = ""
            if self.sysfs:
                path = os.path.join(self.sysfs, "bus", "pci", "devices", self._addresses[i], "vpd")
                where = f" ({_walk.shown(path)})"
            problems = problems + tuple(f"vpd: {p}{where}" for p in parsed.problems)
            if vpd is None:
                problems += (f"{VPD_NOT_USED}: the blob breaks the format, and libvirt (so Nova) "
                             f"ignores such a blob whole{where}",)
        numa, klass, vf_num = c.numa_node[i], c.class_code[i], c.vf_num[i]
        total_vfs, num_vfs = c.total_vfs[i], c.num_vfs[i]
        return PciDevice(
            address=self._addresses[i],
            vendor_id=_hex4(c.vendor[i]),
            product_id=_hex4(c.device[i]),
            class_code=None if klass < 0 else klass,
            dev_type=_DEV_TYPES[kind],
            parent_addr=parent_addr,
            vf_num=None if vf_num < 0 else vf_num,
            total_vfs=total_vfs if kind == 1 and total_vfs >= 0 else None,
            num_vfs=num_vfs if kind == 1 and num_vfs >= 0 else None,
            vf_product_id=self._vf_product_id(i) if kind == 1 else None,
            numa_node=None if numa < 0 else numa,
            driver=driver,
            netdevs=tuple(name for name, _ in netdevs),
            mac_address=netdevs[0][1] if netdevs else None,
            vpd=vpd,
            card_serial_number=self._serial(i),
            pf_mac_address=pf_mac,
            parent_ifname=parent_ifname,
            problems=problems,
        )

    def _vf_product_id(self, i: int) -> str | None:
        c = self._cols
        if c.vf_device[i] >= 0:
            return _hex4(c.vf_device[i])
        # older kernels: no sriov_vf_device; the VFs its virtfn links name tell, lowest number
        # first (not a VF whose physfn alone names this PF: the PF does not list it)
        found = [(n, device) for kind, parent, n, device in zip(c.kind, c.parent, c.vf_num, c.device)
                 if kind == 2 and parent == i and n >= 0 and device >= 0]
        return _hex4(min(found)[1]) if found else None

    def _load_details(self) -> None:
        """Read driver and netdevs of every VF the fast path inferred, in one bulk call.

        What that read finds wrong (a garbage MAC file; a VF gone since the scan) becomes the
        device's problems, as it would had the scan read the VF itself.
        """
        with self._details_lock:  # one bulk call; the loader is dropped only once applied
            loader = self._details_loader
            if loader is None:
                return  # another thread loaded them while this one waited
            wanted = [a for a, f in zip(self._addresses, self._cols.flags) if f & FLAG_INFERRED]
            for address, (driver, netdevs, problems) in loader(wanted).items():
                i = self._row(address)
                assert i is not None
                self._extras[i] = (driver, netdevs, self._extras.get(i, _walk.NO_EXTRA)[2])
                if problems:
                    self._device_problems[i] = self._device_problems.get(i, ()) + tuple(
                        problem_text(*p) for p in problems)
            self._details_loader = None


_ID = re.compile(r"[0-9a-f]{4}\Z")


def _id(value: str | None) -> int:
    """A column's int for a 4-hex-digit ID (-1: unknown)."""
    if value is None:
        return -1
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"not a PCI ID of 4 lower-case hex digits: {value!r}")
    return int(value, 16)


def _count(value: int | None) -> int:
    """A column's int for a number that cannot be negative (-1: unknown)."""
    if value is None:
        return -1
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"not a number >= 0: {value!r}")
    return value


def _checked_facts(d: DeviceFacts, index: Mapping[str, int]) -> tuple[int, int, tuple[str, ...]]:
    """(kind, parent row, problems) of one function's facts; ValueError for impossible ones."""
    try:
        canonical = str(PciAddress.parse(d.address))
    except ValueError:
        canonical = None
    if canonical != d.address:
        raise ValueError(f"not a canonical PCI address (DDDD:BB:SS.F, lower-case): {d.address!r}")
    if d.dev_type not in _DEV_TYPES:
        raise ValueError(f"{d.address}: dev_type must be one of {', '.join(_DEV_TYPES)}, not "
                         f"{d.dev_type!r}")
    kind = _DEV_TYPES.index(d.dev_type)
    if kind != 2 and (d.parent_addr is not None or d.vf_num is not None):
        raise ValueError(f"{d.address}: only a VF has a parent_addr and a vf_num")
    if kind != 1 and (d.total_vfs is not None or d.num_vfs is not None
                      or d.vf_product_id is not None):
        raise ValueError(f"{d.address}: only a PF has total_vfs, num_vfs and vf_product_id")
    problems = tuple(d.problems)
    parent = -1
    if d.parent_addr is not None:
        if d.parent_addr == d.address:
            raise ValueError(f"{d.address}: a VF cannot be its own PF")
        parent = index.get(d.parent_addr, -1)
        if parent < 0:
            problems += (f"parent: its PF {_walk.shown(d.parent_addr)} is not in the inventory",)
    return kind, parent, problems


def problem_text(attribute: str, message: str, path: str) -> str:
    """How a device's sysfs problem reads: ``"net: garbage content '...' (/sys/...)"``.

    The path is shown with `_walk.shown` (non-ASCII and control bytes as ``\\xNN``), so that a
    problem text always prints and always is one line.
    """
    return f"{attribute}: {message} ({_walk.shown(path)})"


FLAG_INFERRED = _walk.F_INFERRED
FLAG_NETDEV = _walk.F_NETDEV
# Flags that say something about the device (not how the walk found it)
_STABLE_FLAGS = _walk.F_NETDEV | _walk.F_GONE | _walk.F_BROKEN
