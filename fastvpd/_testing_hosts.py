"""Synthetic DPU hosts: the specs, the tree builder and the facts a built tree carries.

Part of `fastvpd.testing` (re-exported there; the layout it writes is described there and in
docs/sysfs.md).
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .vpd import build_vpd, parse_vpd

#: The keys of one device in the scan result format (`BuiltHost.expected`, tests/reference/scan.py).
FACT_KEYS = (
    "address", "vendor_id", "product_id", "class_code", "dev_type", "parent_addr", "vf_num",
    "total_vfs", "num_vfs", "vf_product_id", "numa_node", "driver", "netdevs", "mac_address",
    "card_serial_number", "pf_mac_address",
)

# Well-known OUIs for the MACs of physical functions; VFs get locally administered 02:... MACs.
_OUIS = {"15b3": "b8:ce:f6", "8086": "a0:36:9f", "14e4": "00:0a:f7"}
_OTHER_OUI = "02:aa:bb"
_VF_PREFIX = "02:00:00"


def dpu_serial(index: int) -> str:
    """The default serial number of DPU card `index`: ``MT2113X0%04d``."""
    return "MT2113X0%04d" % index


def rid(address: str) -> int:
    """Routing ID of ``DDDD:BB:SS.F``: ``bus << 8 | slot << 3 | function``."""
    _, bus, rest = address.split(":")
    slot, fn = rest.split(".")
    return int(bus, 16) << 8 | int(slot, 16) << 3 | int(fn, 16)


def address_of_rid(domain: int, routing_id: int) -> str:
    """``DDDD:BB:SS.F`` of a routing ID in `domain`."""
    if not 0 <= routing_id <= 0xFFFF:
        raise ValueError(f"routing ID {routing_id:#x} is outside 0..0xffff (bus overflow)")
    bus, slot, fn = routing_id >> 8, (routing_id >> 3) & 0x1F, routing_id & 7
    return "%04x:%02x:%02x.%x" % (domain, bus, slot, fn)


def vf_address(pf_address: str, offset: int, stride: int, vf_num: int) -> str:
    """The address of VF `vf_num` of a PF: PF RID + offset + vf_num x stride, same domain."""
    domain = int(pf_address.split(":")[0], 16)
    return address_of_rid(domain, rid(pf_address) + offset + vf_num * stride)


# -- specs ----------------------------------------------------------------------------------------

_BF2_VENDOR_FIELDS = (
    ("V2", "MBF2H532C-AECOT"),
    ("V3", "3c5e1e8a9d2aeb11800008c0eb4d1f3a"),
    ("VA", "MLX:MN=MLNX:CSKU=V2:UUID=V3:PCI=V0:MODL=BF2H532C"),
    ("V0", "PCIeGen4 x8"),
)


@dataclass(frozen=True)
class DpuSpec:
    """One SR-IOV card: `pfs` physical functions, each with `vfs_per_pf` enabled VFs.

    Defaults describe a Mellanox/NVIDIA BlueField-2 DPU (15b3:a2d6 PFs, 15b3:101e VFs, mlx5_core)
    whose PFs all expose the card's VPD (one EEPROM shared by the functions).

    - `serial`: the VPD ``SN``; None -> `dpu_serial` of the card's index among the host's DPUs.
    - `total_vfs`: ``sriov_totalvfs``; None -> ``max(vfs_per_pf, 8)``. VF addresses are laid out
      for `total_vfs` per PF (so enabling fewer VFs leaves gaps, as on real cards).
    - `vpd`: give the PFs a ``vpd`` file; `vpd_blob` replaces the generated blob (e.g. a broken
      one); `vf_vpd`: the VFs carry the same VPD too (a firmware option on some cards).
    - `pf_driver`/`vf_driver`: driver names (None: unbound, no ``driver`` link).
      A PF bound to ``vfio-pci`` normally has no netdev: use ``pf_netdevs=False``.
    - `sriov_files`: False leaves out ``sriov_offset``, ``sriov_stride`` and ``sriov_vf_device``
      (kernels before 4.15 / some drivers), so VF facts must come from the ``virtfn`` links.
    - `vf_stride`: VF Stride; `numa_node`: None -> the host's round-robin over its NUMA nodes,
      -1 -> "unknown".
    """

    pfs: int = 2
    vfs_per_pf: int = 8
    total_vfs: int | None = None
    serial: str | None = None
    name: str = "BlueField-2 DPU 25GbE Dual-Port SFP56, Crypto Enabled, 16GB on-board DDR"
    part_number: str = "MBF2H532C-AECOT"
    change_level: str = "A5"
    vendor_fields: tuple[tuple[str, str], ...] = _BF2_VENDOR_FIELDS
    vpd: bool = True
    vpd_blob: bytes | None = None
    vf_vpd: bool = False
    vendor_id: str = "15b3"
    pf_device_id: str = "a2d6"
    vf_device_id: str = "101e"
    subsystem_vendor_id: str = "15b3"
    subsystem_device_id: str = "0062"
    class_code: int = 0x020000
    pf_driver: str | None = "mlx5_core"
    vf_driver: str | None = "mlx5_core"
    pf_netdevs: bool = True
    vf_netdevs: bool = True
    sriov_files: bool = True
    vf_stride: int = 1
    numa_node: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.pfs <= 8:
            raise ValueError(f"pfs must be 1..8 (functions of one slot), not {self.pfs}")
        if self.vfs_per_pf < 0 or self.vf_stride < 1:
            raise ValueError("vfs_per_pf must be >= 0 and vf_stride >= 1")
        if self.total_vfs is not None and not self.vfs_per_pf <= self.total_vfs <= 0xFFFF:
            raise ValueError(f"total_vfs {self.total_vfs} must be in vfs_per_pf..65535")

    @property
    def sriov_totalvfs(self) -> int:
        return self.total_vfs if self.total_vfs is not None else max(self.vfs_per_pf, 8)


@dataclass(frozen=True)
class NicSpec:
    """A plain NIC without SR-IOV (no ``sriov_*`` files): `functions` ports, one netdev each.

    Defaults: Intel I210 (8086:1533, igb), no VPD. ``vpd=True`` adds a VPD with `serial`
    (None -> ``"NIC%08d"`` of the NIC's index) on every function.
    """

    functions: int = 1
    vendor_id: str = "8086"
    device_id: str = "1533"
    subsystem_vendor_id: str = "8086"
    subsystem_device_id: str = "0001"
    class_code: int = 0x020000
    driver: str | None = "igb"
    netdevs: bool = True
    vpd: bool = False
    vpd_blob: bytes | None = None
    serial: str | None = None
    name: str = "Intel(R) Ethernet Server Adapter I210-T1"
    part_number: str = "I210T1"
    numa_node: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.functions <= 8:
            raise ValueError(f"functions must be 1..8, not {self.functions}")


@dataclass(frozen=True)
class OtherSpec:
    """A function that is not a network device (no ``net/``): an NVMe drive by default."""

    functions: int = 1
    vendor_id: str = "144d"
    device_id: str = "a80a"
    subsystem_vendor_id: str = "144d"
    subsystem_device_id: str = "a801"
    class_code: int = 0x010802
    driver: str | None = "nvme"
    numa_node: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.functions <= 8:
            raise ValueError(f"functions must be 1..8, not {self.functions}")


@dataclass(frozen=True)
class HostSpec:
    """A whole host: DPU cards, then plain NICs, then other devices, each behind its own root port.

    Each card (and each NIC or other device) sits on its own bus, starting at `first_bus`, behind
    a root port ``DDDD:00:SS.F`` of the root complex ``pci<DDDD>:00``; a card with many VFs takes
    as many buses as its VFs need. Group *i* (in that order) is on NUMA node ``i % numa_nodes``
    (``numa_nodes=0``: every ``numa_node`` file says -1). With ``bridges=True`` the root ports are
    PCI functions too (class 0x060400, driver pcieport), as on real hosts. `domain` may be above
    ffff, as behind an Intel VMD (``10000:e1:00.0``: the kernel prints the domain with ``%04x``).
    With ``domains`` above 1 the host may span the PCI domains ``domain``, ``domain + 1``, ...: a
    group whose buses do not fit in what is left of one domain goes to the next one, from
    `first_bus` on, behind that domain's own root complex ``pci<DDDD>:00`` (16 DPUs with 4096 VFs
    each need 272 buses; one card never spans two domains).
    """

    dpus: Sequence[DpuSpec] = ()
    nics: Sequence[NicSpec] = ()
    others: Sequence[OtherSpec] = ()
    numa_nodes: int = 2
    domain: int = 0
    first_bus: int = 0x03
    bridges: bool = False
    domains: int = 1

    def __post_init__(self) -> None:
        for name in ("dpus", "nics", "others"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not 0 <= self.domain <= 0xFFFFFFFF:
            raise ValueError(f"domain {self.domain:#x} is outside 0..0xffffffff")
        if self.domains < 1 or self.domain + self.domains - 1 > 0xFFFFFFFF:
            raise ValueError(f"domains must be >= 1, the last one at most 0xffffffff, not "
                             f"{self.domains}")
        if not 1 <= self.first_bus <= 0xFF:
            raise ValueError("first_bus must be 1..0xff (bus 0 holds the root ports)")
        if len(self.dpus) + len(self.nics) + len(self.others) > 31 * 8 * self.domains:
            raise ValueError("at most 248 cards/devices per domain (root ports on bus 0)")


# -- what was built -------------------------------------------------------------------------------

@dataclass
class BuiltFunction:
    """One PCI function as built, with the facts a scanner must report for it.

    The fields named in `FACT_KEYS` mean exactly what they mean in a scan result; `serial` is the
    serial of the function's *own* VPD (None without one), `vpd` its own blob, `card` the index of
    its DPU card (None for other devices), `path` its real directory.
    """

    address: str
    path: str
    vendor_id: str
    product_id: str
    class_code: int
    dev_type: str
    numa_node: int | None
    driver: str | None
    netdevs: tuple[str, ...] = ()
    macs: tuple[str, ...] = ()
    vpd: bytes | None = None
    serial: str | None = None
    parent_addr: str | None = None
    vf_num: int | None = None
    total_vfs: int | None = None
    num_vfs: int | None = None
    vf_product_id: str | None = None
    sriov_offset: int | None = None
    sriov_stride: int | None = None
    vfs: tuple[str, ...] = ()
    card: int | None = None
    subsystem_vendor_id: str = ""
    subsystem_device_id: str = ""

    @property
    def mac_address(self) -> str | None:
        """MAC of the first netdev in sorted order."""
        return self.macs[0] if self.macs else None


@dataclass
class BuiltCard:
    """A DPU card as built: its serial (None without VPD), PFs and VFs in address order."""

    index: int
    serial: str | None
    pfs: tuple[str, ...]
    vfs: tuple[str, ...]
    buses: tuple[int, ...]


@dataclass
class BuiltHost:
    """A built tree. ``os.fspath(host)`` is its root: pass it wherever a sysfs root goes."""

    root: str
    spec: HostSpec
    functions: dict[str, BuiltFunction]
    cards: tuple[BuiltCard, ...] = ()

    def __fspath__(self) -> str:
        return self.root

    @property
    def addresses(self) -> list[str]:
        return sorted(self.functions)

    @property
    def pfs(self) -> list[str]:
        return [a for a in self.addresses if self.functions[a].dev_type == "type-PF"]

    @property
    def vfs(self) -> list[str]:
        return [a for a in self.addresses if self.functions[a].dev_type == "type-VF"]

    @property
    def vf_index(self) -> dict[str, tuple[str, int]]:
        """VF address -> (PF address, vf_num)."""
        out: dict[str, tuple[str, int]] = {}
        for a, f in self.functions.items():
            if f.parent_addr is not None and f.vf_num is not None:
                out[a] = (f.parent_addr, f.vf_num)
        return out

    @property
    def serials(self) -> dict[str, tuple[str, ...]]:
        """Card serial -> every PF and VF of that card, in address order."""
        return {c.serial: tuple(sorted(c.pfs + c.vfs)) for c in self.cards if c.serial}

    @property
    def macs(self) -> dict[str, str]:
        """Address -> MAC of its first netdev, for functions with a netdev."""
        return {a: f.macs[0] for a, f in self.functions.items() if f.macs}

    def device_path(self, address: str) -> str:
        return self.functions[address].path

    def expected(self, *, read_vpd: bool = True, vf_vpd: bool = False) -> list[dict[str, Any]]:
        """The scan result a correct scanner returns for the unbroken tree, in address order.

        Dicts with the keys `FACT_KEYS`; VPD is read from VFs only with `vf_vpd` (a VF without its
        own serial reports its PF's), from nothing without `read_vpd`.
        """
        fs = self.functions

        def own_serial(f: BuiltFunction) -> str | None:
            if not read_vpd or (f.dev_type == "type-VF" and not vf_vpd):
                return None
            return f.serial or None

        out = []
        for address in sorted(fs):
            f = fs[address]
            serial = own_serial(f)
            pf = fs.get(f.parent_addr) if f.parent_addr else None
            if serial is None and pf is not None:
                serial = own_serial(pf)
            out.append({
                "address": address,
                "vendor_id": f.vendor_id,
                "product_id": f.product_id,
                "class_code": f.class_code,
                "dev_type": f.dev_type,
                "parent_addr": f.parent_addr,
                "vf_num": f.vf_num,
                "total_vfs": f.total_vfs,
                "num_vfs": f.num_vfs,
                "vf_product_id": f.vf_product_id,
                "numa_node": f.numa_node,
                "driver": f.driver,
                "netdevs": f.netdevs,
                "mac_address": f.mac_address,
                "card_serial_number": serial,
                "pf_mac_address": pf.mac_address if pf is not None else None,
            })
        return out


# -- the builder ----------------------------------------------------------------------------------

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _put(path: str, data: bytes, mode: int = 0o444) -> None:
    fd = os.open(path, _CREATE, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _config(vendor: int, device: int, class_code: int, sub_vendor: int, sub_device: int,
            vpd_cap: bool, header_type: int = 0) -> bytes:
    """256 bytes of type-0 config space; with `vpd_cap`, a capability list holding VPD at 0x40."""
    cfg = bytearray(256)
    struct.pack_into("<HHHH", cfg, 0, vendor, device, 0x0406, 0x0010 if vpd_cap else 0)
    cfg[0x09:0x0C] = (class_code & 0xFFFFFF).to_bytes(3, "little")
    cfg[0x0E] = header_type
    if header_type == 0:
        struct.pack_into("<HH", cfg, 0x2C, sub_vendor, sub_device)
    if vpd_cap:
        cfg[0x34] = 0x40
        cfg[0x40:0x42] = b"\x03\x00"  # capability 0x03 (VPD), end of list
    return bytes(cfg)


def _hex_attr(value: str) -> bytes:
    return b"0x%04x\n" % int(value, 16)


def _mac(prefix: str, n: int) -> str:
    return "%s:%02x:%02x:%02x" % (prefix, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF)


def _dpu_vpd(spec: DpuSpec, serial: str) -> bytes:
    if spec.vpd_blob is not None:
        return spec.vpd_blob
    read_only = [("PN", spec.part_number), ("EC", spec.change_level), ("SN", serial)]
    read_only += list(spec.vendor_fields)
    return build_vpd(spec.name, read_only)


def _serial_of(blob: bytes | None) -> str | None:
    if blob is None:
        return None
    return parse_vpd(blob).serial_number or None


class _Builder:
    def __init__(self, root: str, spec: HostSpec) -> None:
        self.root = root
        self.spec = spec
        self.functions: dict[str, BuiltFunction] = {}
        self.cards: list[BuiltCard] = []
        self.domain = spec.domain
        self.dom = "%04x" % spec.domain
        self.complex_dir = f"{root}/devices/pci{self.dom}:00"
        self.ports = 0  # root ports taken in the current domain
        self.bus_dir = f"{root}/bus/pci/devices/"
        self.drivers: set[str] = set()
        self.hw_mac = 0
        self.vf_mac = 0
        self.group = 0
        self.next_bus = spec.first_bus

    # helpers
    def driver(self, name: str) -> None:
        if name not in self.drivers:
            os.makedirs(f"{self.root}/bus/pci/drivers/{name}", exist_ok=True)
            self.drivers.add(name)

    def numa(self, override: int | None) -> int:
        if override is not None:
            return override
        n = self.spec.numa_nodes
        return self.group % n if n > 0 else -1

    def place(self, buses: int) -> None:
        """Go on in the next domain when a group of `buses` buses, or its root port, does not fit
        in what is left of the current one and the host may span another (HostSpec.domains)."""
        fits = self.next_bus + buses - 1 <= 0xFF and self.ports < 31 * 8
        if fits or self.domain == self.spec.domain + self.spec.domains - 1:
            return
        self.domain += 1
        self.dom = "%04x" % self.domain
        self.complex_dir = f"{self.root}/devices/pci{self.dom}:00"
        os.makedirs(self.complex_dir)
        self.next_bus = self.spec.first_bus
        self.ports = 0

    def port(self) -> tuple[str, str]:
        """A new root port for the next group: (its address, its directory)."""
        if self.ports >= 31 * 8:
            raise ValueError(f"more than 248 root ports in domain {self.dom}")
        slot, fn = 1 + self.ports // 8, self.ports % 8
        self.ports += 1
        address = f"{self.dom}:00:{slot:02x}.{fn}"
        path = f"{self.complex_dir}/{address}"
        os.mkdir(path)
        return address, path

    def take_buses(self, first_rid: int, last_rid: int) -> tuple[int, ...]:
        first, last = first_rid >> 8, last_rid >> 8
        if last > 0xFF:
            raise ValueError(f"host needs bus {last:#x}: more than 256 buses in domain {self.dom}")
        self.next_bus = last + 1
        return tuple(range(first, last + 1))

    def function(self, port_dir: str, address: str, *, vendor: str, device: str, sub_vendor: str,
                 sub_device: str, class_code: int, numa_node: int, driver: str | None,
                 vpd: bytes | None, netdevs: Sequence[tuple[str, str]], depth: int = 4,
                 header_type: int = 0) -> str:
        """Write one function directory and its bus link; return its path."""
        path = f"{port_dir}/{address}" if depth == 4 else port_dir
        if depth == 4:
            os.mkdir(path)
        p = path + "/"
        vendor_b, device_b = _hex_attr(vendor), _hex_attr(device)
        _put(p + "vendor", vendor_b)
        _put(p + "device", device_b)
        _put(p + "subsystem_vendor", _hex_attr(sub_vendor))
        _put(p + "subsystem_device", _hex_attr(sub_device))
        _put(p + "class", b"0x%06x\n" % class_code)
        _put(p + "numa_node", b"%d\n" % numa_node, 0o644)
        _put(p + "config", _config(int(vendor, 16), int(device, 16), class_code,
                                   int(sub_vendor, 16), int(sub_device, 16), vpd is not None,
                                   header_type), 0o644)
        if vpd is not None:
            _put(p + "vpd", vpd, 0o600)
        if driver is not None:
            self.driver(driver)
            os.symlink("../" * depth + "bus/pci/drivers/" + driver, p + "driver")
        rel = path[len(self.root) + 1:]
        for ifname, mac in netdevs:
            _netdev(self.root, rel, ifname, mac)
        os.symlink("../../../" + rel, self.bus_dir + address)
        return path

    def bridge(self, address: str, path: str, numa_node: int) -> None:
        if not self.spec.bridges:
            return
        self.function(path, address, vendor="8086", device="2030", sub_vendor="8086",
                      sub_device="0000", class_code=0x060400, numa_node=numa_node,
                      driver="pcieport", vpd=None, netdevs=(), depth=3, header_type=1)
        self.functions[address] = BuiltFunction(
            address, path, "8086", "2030", 0x060400, "type-PCI", _numa(numa_node), "pcieport",
            subsystem_vendor_id="8086", subsystem_device_id="0000")

    # groups
    def dpu(self, index: int, spec: DpuSpec) -> None:
        numa_node = self.numa(spec.numa_node)
        total = spec.sriov_totalvfs
        stride = spec.vf_stride
        npf = spec.pfs
        # PF i is function i of slot 0; its VFs take the RIDs from base + npf + i*total*stride on
        # (offset_i = npf - i + i*total*stride), so the cards' VF ranges never overlap.
        span = npf - 1
        if total:
            span = npf + ((npf - 1) * total + (total - 1)) * stride
        self.place((span >> 8) + 1)
        port_addr, port_dir = self.port()
        self.bridge(port_addr, port_dir, numa_node)
        bus = self.next_bus
        base = bus << 8
        buses = self.take_buses(base, base + span)
        serial = spec.serial if spec.serial is not None else dpu_serial(index)
        blob = _dpu_vpd(spec, serial) if spec.vpd else None
        own_serial = _serial_of(blob)
        vf_blob = blob if spec.vf_vpd else None
        oui = _OUIS.get(spec.vendor_id, _OTHER_OUI)
        numa_fact = _numa(numa_node)

        pf_addrs: list[str] = []
        all_vfs: list[str] = []
        for i in range(npf):
            pf_rid = base + i
            pf_addr = address_of_rid(self.domain, pf_rid)
            pf_slot = (pf_rid >> 3) & 0x1F
            offset = npf - i + i * total * stride
            pf_if = f"{_en(self.domain)}{bus}s{pf_slot}f{i}np{i}"
            self.hw_mac += 1
            pf_mac = _mac(oui, self.hw_mac)
            pf_nets = [(pf_if, pf_mac)] if spec.pf_netdevs else []
            pf_path = self.function(
                port_dir, pf_addr, vendor=spec.vendor_id, device=spec.pf_device_id,
                sub_vendor=spec.subsystem_vendor_id, sub_device=spec.subsystem_device_id,
                class_code=spec.class_code, numa_node=numa_node, driver=spec.pf_driver, vpd=blob,
                netdevs=pf_nets)
            p = pf_path + "/"
            _put(p + "sriov_totalvfs", b"%d\n" % total)
            _put(p + "sriov_numvfs", b"%d\n" % spec.vfs_per_pf, 0o664)
            if spec.sriov_files:
                _put(p + "sriov_offset", b"%d\n" % offset)
                _put(p + "sriov_stride", b"%d\n" % stride)
                _put(p + "sriov_vf_device", b"%s\n" % spec.vf_device_id.lower().encode())
            vf_addrs = []
            # sriov_vf_device, or (older kernels) the device ID of any VF: unknown without VFs
            has_vf_id = spec.sriov_files or spec.vfs_per_pf > 0
            vf_product = spec.vf_device_id.lower() if has_vf_id else None
            for n in range(spec.vfs_per_pf):
                vf_addr = address_of_rid(self.domain, pf_rid + offset + n * stride)
                vf_addrs.append(vf_addr)
                vf_nets: list[tuple[str, str]] = []
                if spec.vf_netdevs:
                    self.vf_mac += 1
                    vf_if = f"{_en(self.domain)}{bus}s{pf_slot}f{i}v{n}"
                    vf_nets = [(vf_if, _mac(_VF_PREFIX, self.vf_mac))]
                vf_path = self.function(
                    port_dir, vf_addr, vendor=spec.vendor_id, device=spec.vf_device_id,
                    sub_vendor=spec.subsystem_vendor_id, sub_device=spec.subsystem_device_id,
                    class_code=spec.class_code, numa_node=numa_node, driver=spec.vf_driver,
                    vpd=vf_blob, netdevs=vf_nets)
                os.symlink("../" + pf_addr, vf_path + "/physfn")
                os.symlink("../" + vf_addr, p + "virtfn%d" % n)
                self.functions[vf_addr] = BuiltFunction(
                    vf_addr, vf_path, spec.vendor_id.lower(), spec.vf_device_id.lower(),
                    spec.class_code, "type-VF", numa_fact, spec.vf_driver,
                    netdevs=tuple(x[0] for x in vf_nets), macs=tuple(x[1] for x in vf_nets),
                    vpd=vf_blob, serial=own_serial if vf_blob is not None else None,
                    parent_addr=pf_addr, vf_num=n, card=index,
                    subsystem_vendor_id=spec.subsystem_vendor_id,
                    subsystem_device_id=spec.subsystem_device_id)
            self.functions[pf_addr] = BuiltFunction(
                pf_addr, pf_path, spec.vendor_id.lower(), spec.pf_device_id.lower(),
                spec.class_code, "type-PF" if total > 0 else "type-PCI", numa_fact, spec.pf_driver,
                netdevs=tuple(x[0] for x in pf_nets), macs=tuple(x[1] for x in pf_nets),
                vpd=blob, serial=own_serial,
                total_vfs=total if total > 0 else None,
                num_vfs=spec.vfs_per_pf if total > 0 else None,
                vf_product_id=vf_product if total > 0 else None,
                sriov_offset=offset, sriov_stride=stride, vfs=tuple(vf_addrs), card=index,
                subsystem_vendor_id=spec.subsystem_vendor_id,
                subsystem_device_id=spec.subsystem_device_id)
            pf_addrs.append(pf_addr)
            all_vfs.extend(vf_addrs)
        self.cards.append(BuiltCard(index, own_serial, tuple(pf_addrs), tuple(sorted(all_vfs)),
                                    buses))
        self.group += 1

    def plain(self, spec: NicSpec | OtherSpec, index: int) -> None:
        numa_node = self.numa(spec.numa_node)
        self.place(1)
        port_addr, port_dir = self.port()
        self.bridge(port_addr, port_dir, numa_node)
        bus = self.next_bus
        self.take_buses(bus << 8, bus << 8)
        blob = None
        if isinstance(spec, NicSpec) and spec.vpd:
            serial = spec.serial if spec.serial is not None else "NIC%08d" % index
            blob = spec.vpd_blob if spec.vpd_blob is not None else build_vpd(
                spec.name, [("PN", spec.part_number), ("SN", serial)])
        own_serial = _serial_of(blob)
        oui = _OUIS.get(spec.vendor_id, _OTHER_OUI)
        for fn in range(spec.functions):
            address = f"{self.dom}:{bus:02x}:00.{fn}"
            nets: list[tuple[str, str]] = []
            if isinstance(spec, NicSpec) and spec.netdevs:
                self.hw_mac += 1
                nets = [(f"{_en(self.domain)}{bus}s0f{fn}", _mac(oui, self.hw_mac))]
            path = self.function(
                port_dir, address, vendor=spec.vendor_id, device=spec.device_id,
                sub_vendor=spec.subsystem_vendor_id, sub_device=spec.subsystem_device_id,
                class_code=spec.class_code, numa_node=numa_node, driver=spec.driver, vpd=blob,
                netdevs=nets)
            self.functions[address] = BuiltFunction(
                address, path, spec.vendor_id.lower(), spec.device_id.lower(), spec.class_code,
                "type-PCI", _numa(numa_node), spec.driver, netdevs=tuple(x[0] for x in nets),
                macs=tuple(x[1] for x in nets), vpd=blob, serial=own_serial,
                subsystem_vendor_id=spec.subsystem_vendor_id,
                subsystem_device_id=spec.subsystem_device_id)
        self.group += 1

    def build(self) -> BuiltHost:
        root = self.root
        os.makedirs(root, exist_ok=True)
        os.makedirs(f"{root}/bus/pci/drivers")
        os.mkdir(f"{root}/bus/pci/devices")
        os.makedirs(self.complex_dir)
        # class/net holds every netdev; lo, as on every host, belongs to no PCI function
        os.makedirs(f"{root}/class/net")
        os.makedirs(f"{root}/devices/virtual/net/lo")
        _put(f"{root}/devices/virtual/net/lo/address", b"00:00:00:00:00:00\n")
        os.symlink("../../devices/virtual/net/lo", f"{root}/class/net/lo")
        for i, dpu in enumerate(self.spec.dpus):
            self.dpu(i, dpu)
        for i, nic in enumerate(self.spec.nics):
            self.plain(nic, i)
        for i, other in enumerate(self.spec.others):
            self.plain(other, i)
        ordered = {a: self.functions[a] for a in sorted(self.functions)}
        return BuiltHost(root, self.spec, ordered, tuple(self.cards))


def _netdev(root: str, function_dir: str, ifname: str, mac: str) -> None:
    """Netdev `ifname` of the function at `function_dir` (relative to `root`), as the kernel
    lays it out: ``net/<if>/address``, ``net/<if>/device`` back to the function, and
    ``class/net/<if>`` pointing at ``net/<if>``."""
    net = f"{root}/{function_dir}/net"
    os.makedirs(f"{net}/{ifname}")
    _put(f"{net}/{ifname}/address", mac.encode() + b"\n")
    os.symlink("../../../" + os.path.basename(function_dir), f"{net}/{ifname}/device")
    os.symlink(f"../../{function_dir}/net/{ifname}", f"{root}/class/net/{ifname}")


def _en(domain: int) -> str:
    """The start of a netdev name by its PCI path, as systemd names them: ``enp3s0f0`` in domain
    0, ``enP1p3s0f0`` in domain 1."""
    return "enp" if domain == 0 else f"enP{domain}p"


def _numa(value: int) -> int | None:
    return None if value < 0 else value


def build_host(root: str | bytes | os.PathLike[str] | os.PathLike[bytes],
               spec: HostSpec) -> BuiltHost:
    """Write the tree of `spec` under `root` (created if missing; must not hold a tree already)."""
    root_s = os.path.abspath(os.fsdecode(os.fspath(root)))
    return _Builder(root_s, spec).build()


_HOST_FIELDS = {f.name for f in dataclasses.fields(HostSpec)}


def dpu_host(root: str | os.PathLike[str], cards: int = 2, pfs_per_card: int = 2,
             vfs_per_pf: int = 8, **options: Any) -> BuiltHost:
    """A host with `cards` identical DPUs (serials ``MT2113X00000``, ``MT2113X00001``, ...).

    `options` go to `HostSpec` where they name one of its fields (``nics``, ``others``,
    ``numa_nodes``, ``bridges``, ...) and to `DpuSpec` otherwise (``sriov_files=False``,
    ``vf_vpd=True``, ``pf_driver="vfio-pci"``, ...).
    """
    host_opts = {k: v for k, v in options.items() if k in _HOST_FIELDS}
    dpu_opts = {k: v for k, v in options.items() if k not in _HOST_FIELDS}
    dpu = DpuSpec(pfs=pfs_per_card, vfs_per_pf=vfs_per_pf, **dpu_opts)
    return build_host(root, HostSpec(dpus=(dpu,) * cards, **host_opts))


# -- hostile mutators -----------------------------------------------------------------------------
