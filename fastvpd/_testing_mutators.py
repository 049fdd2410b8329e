"""Hostile mutators and host changes for a built tree.

Part of `fastvpd.testing` (re-exported there). Each breaks or changes a tree the way real hosts
do and returns a `Breakage` naming the function that should carry the problem.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from dataclasses import dataclass

from ._testing_hosts import (BuiltFunction, BuiltHost, _Builder, _dpu_vpd, _en, _mac, _netdev,
                             _put, _serial_of, vf_address)

@dataclass(frozen=True)
class Breakage:
    """What a mutator broke: `address` is the function (or directory entry) that should carry the
    problem, `attribute` the file or link below it (None for the whole entry), `path` what was
    changed on disk, `detail` anything else worth knowing (e.g. the VF that disappeared)."""

    kind: str
    address: str | None
    attribute: str | None
    path: str
    detail: str | None = None


def _root(host: BuiltHost | str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    return os.path.abspath(os.fsdecode(os.fspath(host)))


def _attr_path(host: BuiltHost | str | os.PathLike[str], address: str, attribute: str) -> str:
    return f"{_root(host)}/bus/pci/devices/{address}/{attribute}"


def _remove(path: str) -> None:
    """Remove whatever is at `path` (file, link, FIFO or directory tree); absent is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def set_attribute(host: BuiltHost | str | os.PathLike[str], address: str, attribute: str,
                  data: bytes | str, mode: int = 0o444) -> Breakage:
    """Replace (or create) attribute file `attribute` of `address` with `data`."""
    path = _attr_path(host, address, attribute)
    _remove(path)
    _put(path, data.encode() if isinstance(data, str) else data, mode)
    return Breakage("set_attribute", address, attribute, path)


def garbage_attribute(host: BuiltHost | str | os.PathLike[str], address: str,
                      attribute: str = "vendor", data: bytes = b"\xff\xfeno such value\x00\n"
                      ) -> Breakage:
    """Fill an attribute with bytes that parse as nothing (not hex, not decimal, not UTF-8)."""
    b = set_attribute(host, address, attribute, data)
    return dataclasses.replace(b, kind="garbage_attribute")


def empty_attribute(host: BuiltHost | str | os.PathLike[str], address: str,
                    attribute: str = "vendor") -> Breakage:
    """Make an attribute an empty file."""
    b = set_attribute(host, address, attribute, b"")
    return dataclasses.replace(b, kind="empty_attribute")


def remove_attribute(host: BuiltHost | str | os.PathLike[str], address: str,
                     attribute: str) -> Breakage:
    """Delete an attribute file, link or directory (e.g. ``numa_node``, ``driver``, ``net``)."""
    path = _attr_path(host, address, attribute)
    _remove(path)
    return Breakage("remove_attribute", address, attribute, path)


def fifo_attribute(host: BuiltHost | str | os.PathLike[str], address: str,
                   attribute: str = "vendor") -> Breakage:
    """Put a FIFO where an attribute file belongs: a plain ``open()`` of it blocks forever."""
    path = _attr_path(host, address, attribute)
    _remove(path)
    os.mkfifo(path, 0o444)
    return Breakage("fifo_attribute", address, attribute, path)


def directory_attribute(host: BuiltHost | str | os.PathLike[str], address: str,
                        attribute: str = "vendor") -> Breakage:
    """Put a directory where an attribute file belongs."""
    path = _attr_path(host, address, attribute)
    _remove(path)
    os.mkdir(path)
    return Breakage("directory_attribute", address, attribute, path)


def unreadable_attribute(host: BuiltHost | str | os.PathLike[str], address: str,
                         attribute: str = "vendor") -> Breakage:
    """chmod 000 an attribute (EACCES for anyone without CAP_DAC_OVERRIDE; root still reads it)."""
    path = _attr_path(host, address, attribute)
    os.chmod(path, 0)
    return Breakage("unreadable_attribute", address, attribute, path)


def dangling_device_link(host: BuiltHost | str | os.PathLike[str], address: str) -> Breakage:
    """Remove the function's directory but leave ``bus/pci/devices/<address>`` dangling: the
    device went away (hot-unplug, VF destroyed) while the scan ran. For a VF, its PF's
    ``virtfn<N>`` link dangles too; for a PF, its VFs' ``physfn`` links do. `detail` is the
    directory that was removed."""
    path = f"{_root(host)}/bus/pci/devices/{address}"
    target = os.path.realpath(path)
    shutil.rmtree(target)
    return Breakage("dangling_device_link", address, None, path, detail=target)


def dangling_virtfn_link(host: BuiltHost | str | os.PathLike[str], pf_address: str,
                         vf_num: int = 0) -> Breakage:
    """Destroy VF `vf_num` of a PF (its directory and bus link) but leave the PF's ``virtfn<N>``
    link in place, dangling: a VF being destroyed while the scan runs. `detail` is the VF's
    address; the problem belongs to the PF."""
    link = _attr_path(host, pf_address, f"virtfn{vf_num}")
    vf = os.path.basename(os.readlink(link))
    if not os.path.lexists(f"{_root(host)}/bus/pci/devices/{vf}") or vf in (".", ".."):
        raise ValueError(f"{link} names no function of the tree: {os.readlink(link)!r}")
    vf_dir = os.path.realpath(link)
    shutil.rmtree(vf_dir)
    _remove(f"{_root(host)}/bus/pci/devices/{vf}")
    return Breakage("dangling_virtfn_link", pf_address, f"virtfn{vf_num}", link, detail=vf)


def _stray_entry(host: BuiltHost | str | os.PathLike[str], name: str, kind: str) -> Breakage:
    root = _root(host)
    target = f"{root}/devices/platform/{name}"
    os.makedirs(target)
    _put(target + "/vendor", b"0x1234\n")  # something a careless scanner would report
    path = f"{root}/bus/pci/devices/{name}"
    os.symlink(f"../../../devices/platform/{name}", path)
    return Breakage(kind, name, None, path)


def non_pci_entry(host: BuiltHost | str | os.PathLike[str], name: str = "serial8250") -> Breakage:
    """Add an entry to ``bus/pci/devices`` whose name is not a PCI address (it links to a
    directory with a ``vendor`` file, so only the name gives it away)."""
    return _stray_entry(host, name, "non_pci_entry")


def long_name_entry(host: BuiltHost | str | os.PathLike[str], length: int = 250,
                    prefix: str = "0000:00:00.0") -> Breakage:
    """Add an entry to ``bus/pci/devices`` with a `length`-character name starting like a PCI
    address (NAME_MAX is 255: beyond that the file system refuses the name)."""
    if not len(prefix) < length <= 255:
        raise ValueError(f"length must be in {len(prefix) + 1}..255")
    return _stray_entry(host, prefix + "x" * (length - len(prefix)), "long_name_entry")


def add_netdev(host: BuiltHost | str | os.PathLike[str], address: str, ifname: str,
               mac: str) -> Breakage:
    """Give a function one more netdev ``net/<ifname>`` (with its ``class/net`` link) — not
    hostile; e.g. to test that the first netdev in sorted order wins."""
    root = _root(host)
    function_dir = os.path.relpath(os.path.realpath(f"{root}/bus/pci/devices/{address}"), root)
    os.makedirs(f"{root}/class/net", exist_ok=True)
    _netdev(root, function_dir, ifname, mac)
    net = _attr_path(host, address, "net")
    return Breakage("add_netdev", address, f"net/{ifname}", f"{net}/{ifname}")


def set_link(host: BuiltHost | str | os.PathLike[str], address: str, name: str,
             target: str) -> Breakage:
    """Make `name` of `address` (``driver``, ``physfn``, ``virtfn3``, ...) a symlink to `target`,
    verbatim, in place of whatever was there (e.g. ``set_link(h, a, "driver", "driver")``, a
    driver link to itself)."""
    path = _attr_path(host, address, name)
    _remove(path)
    os.symlink(target, path)
    return Breakage("set_link", address, name, path, detail=target)


def _function_dir(host: BuiltHost | str | os.PathLike[str], address: str) -> str:
    return os.path.realpath(f"{_root(host)}/bus/pci/devices/{address}")


def _repoint_virtfn(host: BuiltHost | str | os.PathLike[str], pf_address: str, vf_num: int,
                    target_dir: str, kind: str) -> Breakage:
    """Point virtfn<vf_num> of the PF at `target_dir`, relative to the PF's real directory as the
    kernel's links are; `detail` is the VF the link named before."""
    pf_dir = _function_dir(host, pf_address)
    link = f"{pf_dir}/virtfn{vf_num}"
    before = os.path.basename(os.readlink(link))
    os.unlink(link)
    os.symlink(os.path.relpath(target_dir, pf_dir), link)
    return Breakage(kind, pf_address, f"virtfn{vf_num}",
                    _attr_path(host, pf_address, f"virtfn{vf_num}"), detail=before)


def virtfn_to_pf(host: BuiltHost | str | os.PathLike[str], pf_address: str, vf_num: int,
                 other_pf: str) -> Breakage:
    """Point the PF's ``virtfn<vf_num>`` at another PF (a sound function that is no VF at all).

    A scanner must not make `other_pf` a VF of `pf_address` (nor strip `other_pf`'s own VFs of
    their parent). The problem belongs to `pf_address`; `detail` is the VF that lost its link
    (it still has its ``physfn``: a VF its PF does not list)."""
    return _repoint_virtfn(host, pf_address, vf_num, _function_dir(host, other_pf),
                           "virtfn_to_pf")


def virtfn_to_foreign_vf(host: BuiltHost | str | os.PathLike[str], pf_address: str, vf_num: int,
                         other_vf: str) -> Breakage:
    """Point the PF's ``virtfn<vf_num>`` at `other_vf`, a VF of another PF (whose ``physfn``
    leads there). `other_vf` stays its own PF's VF whichever PF a scanner reads first; the
    problem belongs to `pf_address`; `detail` is the VF that lost its link."""
    return _repoint_virtfn(host, pf_address, vf_num, _function_dir(host, other_vf),
                           "virtfn_to_foreign_vf")


def duplicate_virtfn(host: BuiltHost | str | os.PathLike[str], pf_address: str, vf_num: int,
                     as_vf_num: int) -> Breakage:
    """Point the PF's ``virtfn<vf_num>`` at the VF its ``virtfn<as_vf_num>`` names: two links,
    one VF. Which number is that VF's cannot be told from the links; a scanner that reads them
    must not pick one silently. `address` is the VF both links name (the one that should carry
    the problem when the links are read), `detail` the VF that lost its link."""
    target = os.path.realpath(_attr_path(host, pf_address, f"virtfn{as_vf_num}"))
    b = _repoint_virtfn(host, pf_address, vf_num, target, "duplicate_virtfn")
    return dataclasses.replace(b, address=os.path.basename(target))


def virtfn_outside_tree(host: BuiltHost | str | os.PathLike[str], pf_address: str,
                        vf_num: int) -> Breakage:
    """Point the PF's ``virtfn<vf_num>`` at a look-alike of its VF outside the tree: a directory
    with the same name (the VF's address), copies of the VF's files and a ``physfn`` link to the
    PF, made next to the tree (in ``<root>.outside/``). Only where the link leads gives it away;
    its name is right. The problem belongs to `pf_address`; `detail` is the VF that lost its
    link, `path` the link."""
    vf_dir = os.path.realpath(_attr_path(host, pf_address, f"virtfn{vf_num}"))
    vf = os.path.basename(vf_dir)
    fake = f"{_root(host)}.outside/virtfn{vf_num}-of-{pf_address}/{vf}"
    os.makedirs(fake)
    with os.scandir(vf_dir) as it:
        for entry in it:
            if entry.is_file(follow_symlinks=False) and entry.name != "vpd":
                shutil.copyfile(entry.path, f"{fake}/{entry.name}")
    os.symlink(_function_dir(host, pf_address), f"{fake}/physfn")
    return _repoint_virtfn(host, pf_address, vf_num, fake, "virtfn_outside_tree")
# -- a host that changes (what a periodic Scanner must follow) ------------------------------------
# Unlike the hostile mutators these keep the tree sound and `BuiltHost.functions` (and so
# `BuiltHost.expected`) up to date, as the kernel keeps sysfs.

def _drop_function(host: BuiltHost, address: str) -> None:
    """Remove a function as the kernel does: its netdevs' class/net links, its bus link, its
    directory (and, for a VF, its PF's virtfn link)."""
    f = host.functions.pop(address)
    for ifname in f.netdevs:
        _remove(f"{host.root}/class/net/{ifname}")
    _remove(f"{host.root}/bus/pci/devices/{address}")
    if f.parent_addr is not None and f.vf_num is not None:
        _remove(f"{host.functions[f.parent_addr].path}/virtfn{f.vf_num}")
    _remove(f.path)


def set_vf_count(host: BuiltHost, pf_address: str, count: int) -> Breakage:
    """Enable ``count`` VFs on a PF, as writing ``sriov_numvfs`` does: VFs above the count go
    away (highest number first), missing ones come with their directories, bus links, netdevs
    and ``virtfn`` links, laid out by the PF's offset and stride."""
    pf = host.functions[pf_address]
    if pf.dev_type != "type-PF" or pf.card is None:
        raise ValueError(f"{pf_address} is not a PF of a DPU card")
    if pf.total_vfs is None or not 0 <= count <= pf.total_vfs:
        raise ValueError(f"{count} VFs on {pf_address}: use 0..{pf.total_vfs}")
    spec = host.spec.dpus[pf.card]
    vfs = sorted((f.vf_num, a) for a, f in host.functions.items()
                 if f.parent_addr == pf_address and f.vf_num is not None)
    for n, address in reversed(vfs):
        if n >= count:
            _drop_function(host, address)
    offset, stride = pf.sriov_offset or 0, pf.sriov_stride or 1
    builder = _Builder(host.root, host.spec)
    present = {n for n, _ in vfs if n < count}
    domain, bus, rest = pf_address.split(":")
    slot, fn = (int(x, 16) for x in rest.split("."))
    for n in range(count):
        if n in present:
            continue
        address = vf_address(pf_address, offset, stride, n)
        nets: list[tuple[str, str]] = []
        if spec.vf_netdevs:
            nets = [(f"{_en(int(domain, 16))}{int(bus, 16)}s{slot}f{fn}v{n}",
                     _mac(f"02:01:{pf.card:02x}", fn << 16 | n))]
        path = builder.function(
            os.path.dirname(pf.path), address, vendor=spec.vendor_id, device=spec.vf_device_id,
            sub_vendor=spec.subsystem_vendor_id, sub_device=spec.subsystem_device_id,
            class_code=spec.class_code, numa_node=-1 if pf.numa_node is None else pf.numa_node,
            driver=spec.vf_driver, vpd=pf.vpd if spec.vf_vpd else None, netdevs=nets)
        os.symlink("../" + pf_address, path + "/physfn")
        os.symlink("../" + address, f"{pf.path}/virtfn{n}")
        host.functions[address] = BuiltFunction(
            address, path, pf.vendor_id, spec.vf_device_id.lower(), spec.class_code, "type-VF",
            pf.numa_node, spec.vf_driver, netdevs=tuple(x[0] for x in nets),
            macs=tuple(x[1] for x in nets), vpd=pf.vpd if spec.vf_vpd else None,
            serial=pf.serial if spec.vf_vpd else None, parent_addr=pf_address, vf_num=n,
            card=pf.card, subsystem_vendor_id=spec.subsystem_vendor_id,
            subsystem_device_id=spec.subsystem_device_id)
    _remove(f"{pf.path}/sriov_numvfs")
    _put(f"{pf.path}/sriov_numvfs", b"%d\n" % count, 0o664)
    vf_list = tuple(sorted(a for a, f in host.functions.items() if f.parent_addr == pf_address))
    host.functions[pf_address] = dataclasses.replace(pf, num_vfs=count, vfs=vf_list)
    host.functions = {a: host.functions[a] for a in sorted(host.functions)}
    return Breakage("set_vf_count", pf_address, "sriov_numvfs", f"{pf.path}/sriov_numvfs",
                    detail=str(count))


def unplug(host: BuiltHost, address: str) -> Breakage:
    """Hot-unplug a function (a bridge with what is below it, a PF with its VFs, first, as the
    kernel removes them). A single VF
    leaves a gap in its PF's virtfn numbers, which makes the PF's VFs read link by link."""
    f = host.functions[address]
    # what sits below it first (a bridge holds its cards), then its VFs, then itself
    below = [a for a, g in host.functions.items() if g.path.startswith(f.path + "/")]
    for a in sorted(below, key=lambda a: host.functions[a].parent_addr is None):
        if a in host.functions:
            unplug(host, a)
    for vf in [a for a, g in host.functions.items() if g.parent_addr == address]:
        _drop_function(host, vf)
    _drop_function(host, address)
    if f.parent_addr is not None and f.parent_addr in host.functions:
        pf = host.functions[f.parent_addr]
        vfs = tuple(v for v in pf.vfs if v != address)
        host.functions[f.parent_addr] = dataclasses.replace(pf, vfs=vfs, num_vfs=len(vfs))
    return Breakage("unplug", address, None, f.path)


def set_mac(host: BuiltHost, address: str, mac: str) -> Breakage:
    """Give the first netdev of a function another MAC address (``ip link set ... address``)."""
    f = host.functions[address]
    if not f.netdevs:
        raise ValueError(f"{address} has no netdev")
    path = f"{f.path}/net/{f.netdevs[0]}/address"
    _remove(path)
    _put(path, mac.encode() + b"\n")
    host.functions[address] = dataclasses.replace(f, macs=(mac, *f.macs[1:]))
    return Breakage("set_mac", address, f"net/{f.netdevs[0]}/address", path, detail=mac)


def replace_card(host: BuiltHost, card: int, serial: str) -> Breakage:
    """Swap DPU card ``card`` for another of the same model whose VPD says ``serial``, as a
    hot-swap does: every function of the card is re-created (new directories, new bus links,
    new inode numbers) at the same addresses."""
    built = host.cards[card]
    if built.serial is None:
        raise ValueError(f"card {card} has no VPD to carry a serial")
    present = [a for a in built.pfs if a in host.functions]
    if not present:
        raise ValueError(f"card {card} is unplugged")
    blob = _dpu_vpd(dataclasses.replace(host.spec.dpus[card], vpd_blob=None), serial)
    for address in sorted(a for a, f in host.functions.items() if f.card == card):
        f = host.functions[address]
        fresh = f.path + ".new"  # a card's functions are siblings: no function holds another
        shutil.copytree(f.path, fresh, symlinks=True)
        if f.vpd is not None:
            _remove(f"{fresh}/vpd")
            _put(f"{fresh}/vpd", blob, 0o600)
        shutil.rmtree(f.path)
        os.rename(fresh, f.path)
        link = f"{host.root}/bus/pci/devices/{address}"
        target = os.readlink(link)
        os.unlink(link)
        os.symlink(target, link)
        if f.vpd is not None:
            host.functions[address] = dataclasses.replace(f, vpd=blob, serial=_serial_of(blob))
    cards = list(host.cards)
    cards[card] = dataclasses.replace(built, serial=_serial_of(blob))
    host.cards = tuple(cards)
    return Breakage("replace_card", present[0], None, host.functions[present[0]].path,
                    detail=serial)
