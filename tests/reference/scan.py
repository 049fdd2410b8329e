"""Reference full scan of a sysfs tree in plain Python ("python-linear").

An independent oracle for the C scanner (`fastvpd.scan` must report the same facts) and the
python-linear baseline of the benchmarks: one `os.scandir` of ``bus/pci/devices``, one of each
function directory, one `os.readlink` per link, every needed attribute read once, and never
``sriov_numvfs`` (reading it can block for tens of seconds, spec/sysfs.md). Linear in the number
of functions; clear rather than clever, but not slowed down on purpose.

``scan(root, *, read_vpd=True, vf_vpd=False) -> list[dict]`` gives one dict per PCI function in
address order with the keys of `fastvpd.testing.FACT_KEYS`:

- ``vendor_id``/``product_id``: 4 lower-case hex digits; ``class_code``: int;
- ``dev_type``: ``type-PF`` when ``sriov_totalvfs`` > 0, else ``type-VF`` when a ``physfn`` link
  exists, else ``type-PCI``; ``parent_addr``: a VF's PF (the ``physfn`` target's name);
- ``vf_num``: the N of the parent's ``virtfn<N>`` that points at the VF (None if none does);
- ``total_vfs``/``num_vfs`` (PFs): ``sriov_totalvfs`` and the number of ``virtfn*`` entries;
- ``vf_product_id`` (PFs): ``sriov_vf_device``, else the ``device`` of its VFs (lowest vf_num
  first), else None;
- ``numa_node``: None for -1 or unknown; ``driver``: the driver link's basename;
- ``netdevs``: sorted names under ``net/``; ``mac_address``: the first one's MAC, lower case;
- ``card_serial_number``: the SN of the function's own VPD (tolerant parse; empty counts as
  absent), else for a VF its PF's; ``pf_mac_address``: a VF's PF's ``mac_address``.
VPD is read from PFs and other non-VF functions when `read_vpd`, from VFs only with `vf_vpd`.

Odd trees (spec/sysfs.md "Traps"): entries whose name is not a PCI address are skipped, so is a
function whose directory cannot be listed (a dangling link: the device is gone); an attribute that
is missing, unreadable, empty, not a regular file or not parseable reads as None (a FIFO is opened
non-blocking, so it never hangs the scan); a dangling ``virtfn`` link still counts in ``num_vfs``.
Problems are not reported here: this oracle is about the facts.

``to_nova(devices) -> list[dict]`` turns that list into the device dicts of
spec/nova-contract.md (functions without vendor or product ID are left out: Nova cannot key them).
"""

from __future__ import annotations

import os
import re
from typing import Any

import fastvpd

__all__ = ["scan", "to_nova", "address_order", "KEYS"]

KEYS = (
    "address", "vendor_id", "product_id", "class_code", "dev_type", "parent_addr", "vf_num",
    "total_vfs", "num_vfs", "vf_product_id", "numa_node", "driver", "netdevs", "mac_address",
    "card_serial_number", "pf_mac_address",
)

# The kernel's names: the domain printed with %04x (more digits only above ffff, e.g. VMD).
_ADDRESS = re.compile(r"(?:[0-9a-f]{4}|[1-9a-f][0-9a-f]{4,7}):[0-9a-f]{2}:[01][0-9a-f]\.[0-7]\Z")
_VIRTFN = re.compile(r"virtfn([0-9]+)\Z")
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
_ATTR_MAX = 4096
_VPD_MAX = 32768


def _read(path: str, limit: int = _ATTR_MAX) -> bytes | None:
    """Bytes of a file, or None if it cannot be read (missing, EACCES, a directory, ...)."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        chunks = []
        size = 0
        while size < limit:
            chunk = os.read(fd, limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:  # EISDIR, EIO, EAGAIN on a FIFO with a writer, ...
        return None
    finally:
        os.close(fd)


def _text(path: str) -> str | None:
    raw = _read(path)
    if raw is None:
        return None
    try:
        value = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return value or None


def _int(path: str, base: int = 10) -> int | None:
    value = _text(path)
    if value is None:
        return None
    try:
        return int(value, base)
    except ValueError:
        return None


def _hex_id(path: str) -> str | None:
    """``0x15b3`` or ``15b3`` -> ``"15b3"``; None if absent or not a 16-bit hex number."""
    value = _int(path, 16)
    if value is None or not 0 <= value <= 0xFFFF:
        return None
    return "%04x" % value


def address_order(address: str) -> tuple[int, str]:
    """Sort key of a PCI address: by domain as a number (ffff before 10000), then as text."""
    domain, _, rest = address.partition(":")
    return int(domain, 16), rest


def _link_name(path: str) -> str | None:
    """Basename of a symlink's target, or None."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _address(name: str | None) -> str | None:
    return name if name is not None and _ADDRESS.match(name) else None


def _serial(path: str) -> str | None:
    raw = _read(path, _VPD_MAX)
    if not raw:
        return None
    return fastvpd.parse_vpd(raw).serial_number or None


def _one(devices: str, address: str, read_vpd: bool, vf_vpd: bool) -> dict[str, Any] | None:
    """Facts of one function, plus the raw ``virtfn`` targets under ``"_virtfns"``."""
    path = f"{devices}/{address}"
    try:
        with os.scandir(path) as it:
            names = {e.name for e in it}
    except OSError:  # gone (dangling link), or not a directory
        return None
    p = path + "/"

    total_vfs = _int(p + "sriov_totalvfs") if "sriov_totalvfs" in names else None
    parent = _address(_link_name(p + "physfn")) if "physfn" in names else None
    if total_vfs is not None and total_vfs > 0:
        dev_type = "type-PF"
    elif "physfn" in names:
        dev_type = "type-VF"
    else:
        dev_type = "type-PCI"
    is_pf = dev_type == "type-PF"

    virtfns: dict[int, str | None] = {}  # read on any function: a VF's number comes from here
    for name in names:
        m = _VIRTFN.match(name)
        if m:
            virtfns[int(m.group(1))] = _address(_link_name(p + name))

    netdevs: tuple[str, ...] = ()
    mac = None
    if "net" in names:
        try:
            netdevs = tuple(sorted(os.listdir(p + "net")))
        except OSError:
            netdevs = ()
        if netdevs:
            text = _text(f"{p}net/{netdevs[0]}/address")
            mac = text.lower() if text else None

    serial = None
    if "vpd" in names and read_vpd and (dev_type != "type-VF" or vf_vpd):
        serial = _serial(p + "vpd")

    numa = _int(p + "numa_node")
    return {
        "address": address,
        "vendor_id": _hex_id(p + "vendor"),
        "product_id": _hex_id(p + "device"),
        "class_code": _int(p + "class", 16),
        "dev_type": dev_type,
        "parent_addr": parent if dev_type == "type-VF" else None,
        "vf_num": None,
        "total_vfs": total_vfs if is_pf else None,
        "num_vfs": len(virtfns) if is_pf else None,
        "vf_product_id": (_hex_id(p + "sriov_vf_device")
                          if is_pf and "sriov_vf_device" in names else None),
        "numa_node": numa if numa is not None and numa >= 0 else None,
        "driver": _link_name(p + "driver") if "driver" in names else None,
        "netdevs": netdevs,
        "mac_address": mac,
        "card_serial_number": serial,
        "pf_mac_address": None,
        "_virtfns": virtfns,
    }


def scan(root: str | os.PathLike[str], *, read_vpd: bool = True,
         vf_vpd: bool = False) -> list[dict[str, Any]]:
    """Every PCI function under ``<root>/bus/pci/devices``, in address order (see module doc)."""
    devices = os.path.join(os.fspath(root), "bus", "pci", "devices")
    with os.scandir(devices) as it:
        addresses = sorted((e.name for e in it if _ADDRESS.match(e.name)), key=address_order)
    found: dict[str, dict[str, Any]] = {}
    for address in addresses:
        facts = _one(devices, address, read_vpd, vf_vpd)
        if facts is not None:
            found[address] = facts

    # Second pass over what was found: VF numbers from the PFs' links, then what VFs inherit.
    vf_of: dict[str, tuple[str, int]] = {}
    for address, d in found.items():
        for n, target in d["_virtfns"].items():
            if target is not None:
                vf_of[target] = (address, n)
    for d in found.values():
        if d["dev_type"] == "type-PF" and d["vf_product_id"] is None:
            for n in sorted(d["_virtfns"]):
                vf = found.get(d["_virtfns"][n])  # type: ignore[arg-type]
                if vf is not None and vf["product_id"] is not None:
                    d["vf_product_id"] = vf["product_id"]
                    break
    out = []
    for d in found.values():
        del d["_virtfns"]
        parent = d["parent_addr"]
        if parent is not None:
            link = vf_of.get(d["address"])
            if link is not None and link[0] == parent:
                d["vf_num"] = link[1]
            pf = found.get(parent)
            if pf is not None:
                d["pf_mac_address"] = pf["mac_address"]
                if d["card_serial_number"] is None:
                    d["card_serial_number"] = pf["card_serial_number"]
        out.append(d)
    return out


def to_nova(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The device dicts Nova's libvirt driver reports (spec/nova-contract.md), same order, keys in
    Nova's order."""
    by_address = {d["address"]: d for d in devices}
    out = []
    for d in devices:
        vendor, product = d["vendor_id"], d["product_id"]
        if vendor is None or product is None:
            continue
        address = d["address"]
        nova: dict[str, Any] = {
            "dev_id": "pci_" + address.replace(":", "_").replace(".", "_"),
            "address": address,
            "product_id": product,
            "vendor_id": vendor,
            "numa_node": d["numa_node"],
            "label": f"label_{vendor}_{product}",
            "dev_type": d["dev_type"],
        }
        if d["dev_type"] == "type-VF":
            if d["parent_addr"] is not None:
                nova["parent_addr"] = d["parent_addr"]
                pf = by_address.get(d["parent_addr"])
                # Nova: only a VF that owns a netdev gets its PF's netdev name
                if d["netdevs"] and pf is not None and pf["netdevs"]:
                    nova["parent_ifname"] = pf["netdevs"][0]
        caps: dict[str, Any] = {}
        if (d["dev_type"] == "type-VF" and d["pf_mac_address"] is not None
                and d["vf_num"] is not None):
            caps["sriov"] = {"pf_mac_address": d["pf_mac_address"], "vf_num": d["vf_num"]}
        if d["card_serial_number"]:
            caps["vpd"] = {"card_serial_number": d["card_serial_number"]}
        if caps:
            nova["capabilities"] = caps
        if d["dev_type"] == "type-PF" and d["mac_address"] is not None:
            nova["mac_address"] = d["mac_address"]
        out.append(nova)
    return out
