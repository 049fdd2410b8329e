"""The C sysfs walker (fastvpd/_sysfs.c) through its thin wrapper fastvpd._walk.

Trees are built inline (``Tree``): device directories under devices/pci0000:00/<bridge>/, relative
symlinks from bus/pci/devices, virtfn/physfn links, driver links into bus/pci/drivers.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from fastvpd import SysfsError, testing
from fastvpd import _walk
from fastvpd._sysfs import ffi, lib
from fastvpd._walk import (F_BROKEN, F_DETAILS, F_GONE, F_INFERRED, F_LINKED, F_NETDEV, F_VERIFIED,
                           KIND_PF, KIND_PLAIN, KIND_VF)
from tests.support import fast_temp_base, gil_spinner, scratch_dir

(ADDR, VENDOR, DEVICE, CLASS, NUMA, KIND, PARENT, VF_NUM, TOTAL_VFS, NUM_VFS, OFFSET, STRIDE,
 VF_DEVICE, FLAGS, DRIVER, NETDEVS, VPD) = range(17)

MLX = 0x15B3
PF_DEV, VF_DEV = 0xA2D6, 0x101E


def addr_of(domain: int, rid: int) -> str:
    return f"{domain:04x}:{rid >> 8:02x}:{(rid >> 3) & 0x1f:02x}.{rid & 7:x}"


def rid_of(address: str) -> int:
    bus, slotfn = address[5:7], address[8:]
    slot, fn = slotfn.split(".")
    return int(bus, 16) << 8 | int(slot, 16) << 3 | int(fn, 16)


def vpd_blob(serial: str) -> bytes:
    """A small well-formed VPD image (identifier string, VPD-R with SN and RV, end tag)."""
    name = b"Test DPU"
    ro = b"SN" + bytes([len(serial)]) + serial.encode()
    body = bytes([0x82, len(name), 0]) + name + bytes([0x90, len(ro) + 4, 0]) + ro + b"RV\x01"
    checksum = (-sum(body)) & 0xFF
    return body + bytes([checksum, 0x78])


class Tree:
    """A synthetic sysfs tree."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.devices = root / "bus" / "pci" / "devices"
        self.drivers = root / "bus" / "pci" / "drivers"
        self.devices.mkdir(parents=True)
        self.drivers.mkdir(parents=True)
        self.top = root / "devices" / "pci0000:00"
        self.top.mkdir(parents=True)
        self.class_net = root / "class" / "net"
        self.class_net.mkdir(parents=True)
        self.fn("0000:00:00.0", vendor=0x8086, device=0x0D57, klass=0x060000, driver=None)

    def path(self, address: str) -> Path:
        return (self.devices / address).resolve()

    def bridge(self, address: str) -> Path:
        return self.fn(address, vendor=0x8086, device=0x347A, klass=0x060400, driver="pcieport")

    def fn(self, address: str, *, vendor: int = MLX, device: int = PF_DEV, klass: int = 0x020000,
           numa: int = 0, sub: tuple[int, int] = (MLX, 0x0047), driver: str | None = "mlx5_core",
           netdevs: tuple[tuple[str, str], ...] = (), vpd: bytes | None = None,
           under: Path | None = None, files: dict[str, bytes | None] | None = None) -> Path:
        d = (under or self.top) / address
        d.mkdir()
        attrs: dict[str, bytes | None] = {
            "vendor": b"0x%04x\n" % vendor, "device": b"0x%04x\n" % device,
            "subsystem_vendor": b"0x%04x\n" % sub[0], "subsystem_device": b"0x%04x\n" % sub[1],
            "class": b"0x%06x\n" % klass, "numa_node": b"%d\n" % numa,
            "config": b"\0" * 64, "uevent": b"PCI_SLOT_NAME=%s\n" % address.encode(),
        }
        attrs.update(files or {})
        for name, data in attrs.items():
            if data is not None:
                (d / name).write_bytes(data)
        (self.devices / address).symlink_to(os.path.relpath(d, self.devices))
        if driver:
            (self.drivers / driver).mkdir(exist_ok=True)
            (d / "driver").symlink_to(os.path.relpath(self.drivers / driver, d))
        for ifname, mac in netdevs:
            (d / "net" / ifname).mkdir(parents=True)
            (d / "net" / ifname / "address").write_text(mac + "\n")
            (d / "net" / ifname / "device").symlink_to("../../../" + address)
            (self.class_net / ifname).symlink_to(os.path.relpath(d / "net" / ifname, self.class_net))
        if vpd is not None:
            (d / "vpd").write_bytes(vpd)
        return d

    def pf(self, address: str, nvfs: int, *, offset: int = 2, stride: int = 1, total: int | None = None,
           layout: bool = True, vf_device: int = VF_DEV, numa: int = 0, under: Path | None = None,
           vf_netdevs: bool = True, vf_vpd: bytes | None = None, **kw) -> list[str]:
        """A PF with `nvfs` VFs laid out by offset/stride, as the kernel does; returns their addresses."""
        files: dict[str, bytes | None] = {
            "sriov_totalvfs": b"%d\n" % (total if total is not None else max(nvfs, 8)),
            "sriov_numvfs": b"%d\n" % nvfs,
        }
        if layout:
            files.update(sriov_offset=b"%d\n" % offset, sriov_stride=b"%d\n" % stride,
                         sriov_vf_device=b"%04x\n" % vf_device)
        files.update(kw.pop("files", {}))
        pfname = "p" + address[5:7] + address[11]
        pdir = self.fn(address, numa=numa, under=under, files=files,
                       netdevs=kw.pop("netdevs", ((pfname, "b8:ce:f6:00:%s:0%s" % (address[5:7], address[11])),)),
                       **kw)
        domain, rid0 = int(address[:4], 16), rid_of(address)
        vfs = []
        for n in range(nvfs):
            va = addr_of(domain, rid0 + offset + n * stride)
            vdir = self.fn(va, device=vf_device, numa=numa, under=pdir.parent, sub=(MLX, 0x0048),
                           netdevs=((f"{pfname}v{n}", "aa:00:00:%02x:%02x:%02x" % (rid0 >> 8, n >> 8, n & 255)),)
                           if vf_netdevs else (), vpd=vf_vpd)
            (vdir / "physfn").symlink_to("../" + address)
            (pdir / f"virtfn{n}").symlink_to("../" + va)
            vfs.append(va)
        return vfs


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "sys")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rows_by_address(w: _walk.Walk) -> dict[str, tuple]:
    return {r[ADDR]: r for r in w.devices}


def problems_of(w: _walk.Walk, address: str | None) -> list[tuple[int, str, str, str]]:
    if address is None:
        return [p for p in w.problems if p[0] == -1]
    i = [r[ADDR] for r in w.devices].index(address)
    return [p for p in w.problems if p[0] == i]


# -- plain devices ---------------------------------------------------------------------------------

def test_plain_devices(tree: Tree) -> None:
    br = tree.bridge("0000:00:02.0")
    tree.fn("0000:03:00.0", under=br, vendor=0x8086, device=0x1521, klass=0x020000, numa=-1,
            driver="igb", netdevs=(("eno2", "3c:ec:ef:00:00:02"), ("eno1", "3c:ec:ef:00:00:01")))
    tree.fn("0000:04:00.0", under=br, vendor=0x144D, device=0xA80A, klass=0x010802, numa=1,
            driver=None, sub=(0x144D, 0xA801))
    w = _walk.walk(tree.root)
    assert [r[ADDR] for r in w.devices] == ["0000:00:00.0", "0000:00:02.0", "0000:03:00.0",
                                            "0000:04:00.0"]
    assert w.problems == []
    nic = rows_by_address(w)["0000:03:00.0"]
    assert nic[1:14] == (0x8086, 0x1521, 0x020000, -1, KIND_PLAIN, -1, -1, -1, -1, -1, -1, -1,
                         F_DETAILS | F_NETDEV)
    assert nic[DRIVER] == "igb"
    assert nic[NETDEVS] == (("eno1", "3c:ec:ef:00:00:01"), ("eno2", "3c:ec:ef:00:00:02"))
    nvme = rows_by_address(w)["0000:04:00.0"]
    assert (nvme[VENDOR], nvme[DEVICE], nvme[CLASS], nvme[NUMA]) == (0x144D, 0xA80A, 0x010802, 1)
    assert nvme[DRIVER] is None and nvme[NETDEVS] == () and nvme[VPD] is None
    assert set(w.counters) == {"openat", "getdents64", "readlinkat", "read", "fstat", "close",
                               "close_range", "total"}
    assert w.counters["total"] == sum(v for k, v in w.counters.items() if k != "total")
    assert len(_walk.DEVICE_FIELDS) == len(w.devices[0]) == 17
    assert "subsystem_vendor" not in _walk.DEVICE_FIELDS  # not read: the model has no use for it


def test_structs_and_constants_match_the_wrapper() -> None:
    assert ffi.sizeof("fv_device") == 19 * 4 and ffi.sizeof("fv_problem") == 9 * 4
    for i, name in enumerate(_walk.ATTRIBUTES):
        assert getattr(lib, "FV_A_" + name.upper()) == i


# -- SR-IOV ----------------------------------------------------------------------------------------

def test_pf_fast_path_fills_vfs_from_the_pf(tree: Tree) -> None:
    br = tree.bridge("0000:00:02.0")
    vfs = tree.pf("0000:82:00.0", 8, offset=2, stride=1, numa=1, under=br, vpd=vpd_blob("SN1"))
    w = _walk.walk(tree.root)
    assert w.problems == []
    rows = rows_by_address(w)
    idx = [r[ADDR] for r in w.devices]
    pf = rows["0000:82:00.0"]
    assert (pf[KIND], pf[TOTAL_VFS], pf[NUM_VFS], pf[OFFSET], pf[STRIDE], pf[VF_DEVICE]) == (
        KIND_PF, 8, 8, 2, 1, VF_DEV)
    assert pf[NETDEVS] == (("p820", "b8:ce:f6:00:82:00"),) and pf[DRIVER] == "mlx5_core"
    assert pf[VPD] == vpd_blob("SN1")
    assert vfs[0] == "0000:82:00.2" and vfs[-1] == "0000:82:01.1"
    for n, va in enumerate(vfs):
        r = rows[va]
        assert r[KIND] == KIND_VF and r[PARENT] == idx.index("0000:82:00.0") and r[VF_NUM] == n
        assert (r[VENDOR], r[DEVICE], r[CLASS], r[NUMA]) == (MLX, VF_DEV, 0x020000, 1)
        assert r[FLAGS] & F_INFERRED and not r[FLAGS] & F_DETAILS
        assert bool(r[FLAGS] & F_VERIFIED) == (n == 0)
        assert r[DRIVER] is None and r[NETDEVS] == () and r[VPD] is None
    # The lazily loaded details, in one call.
    counters: dict[str, int] = {}
    fds = open_fds()
    det = _walk.details(tree.root, vfs + ["0000:99:00.0", "bogus"], counters=counters)
    assert open_fds() == fds
    assert set(det) == set(vfs) | {"0000:99:00.0"}  # not an address: left out
    assert det["0000:82:00.3"] == ("mlx5_core", (("p820v1", "aa:00:00:82:00:01"),), [])
    driver, netdevs, problems = det["0000:99:00.0"]  # no such device (by now): said so
    assert (driver, netdevs) == (None, ()) and len(problems) == 1
    assert problems[0][0] == "entry" and problems[0][2].endswith("bus/pci/devices/0000:99:00.0")
    assert counters["readlinkat"] == len(vfs)
    assert counters["openat"] == 2 + 3 * len(vfs) + 1  # root, devices; dir + net + address each
    # the fds of each device go in one close_range (more only where other fds split the run)
    assert len(vfs) + 1 <= counters["close"] + counters["close_range"] <= 3 * len(vfs) + 2


def test_vfs_on_a_higher_bus_than_their_pf(tree: Tree) -> None:
    br = tree.bridge("0000:00:03.0")
    vfs = tree.pf("0000:03:00.0", 300, offset=1, stride=1, under=br, vf_netdevs=False)
    vfs2 = tree.pf("0000:05:00.0", 40, offset=0x100, stride=2, under=br, total=64,
                   vf_netdevs=False)
    assert vfs[-1] == "0000:04:05.4" and vfs2[0] == "0000:06:00.0" and vfs2[-1] == "0000:06:09.6"
    w = _walk.walk(tree.root)
    assert w.problems == []
    rows = rows_by_address(w)
    idx = [r[ADDR] for r in w.devices]
    for pf, vlist in (("0000:03:00.0", vfs), ("0000:05:00.0", vfs2)):
        for n, va in enumerate(vlist):
            assert rows[va][PARENT] == idx.index(pf) and rows[va][VF_NUM] == n
            assert rows[va][FLAGS] & F_INFERRED and not rows[va][FLAGS] & F_NETDEV
    # only the first VF of each PF was read (and its last link resolved): the links are followed
    # with fstatat, so the only readlinkat calls are the driver links of the two PFs and the
    # bridge, and class/net's: one per netdev, the two PFs' (the VFs have none)
    assert w.counters["readlinkat"] == 2 + 1 + 2
    # per PF: its own directory, the first VF's, what virtfn0, the last virtfn, the last VF's entry
    # and the first VF's physfn lead to; the PFs' two net/<if>/address; the walk's fstatfs
    assert w.counters["fstat"] == 2 * 6 + 2 + 1


def test_pf_without_offset_and_stride_falls_back_to_links(tree: Tree) -> None:
    br = tree.bridge("0000:00:02.0")
    vfs = tree.pf("0000:82:00.0", 6, offset=3, stride=2, layout=False, under=br)
    w = _walk.walk(tree.root)
    rows = rows_by_address(w)
    idx = [r[ADDR] for r in w.devices]
    probs = problems_of(w, "0000:82:00.0")
    assert len(probs) == 1
    assert probs[0][1] == "virtfn" and "fell back" in probs[0][2] and "sriov_offset" in probs[0][2]
    assert probs[0][3] == str(tree.devices / "0000:82:00.0")
    pf = rows["0000:82:00.0"]
    assert pf[KIND] == KIND_PF and pf[NUM_VFS] == 6 and pf[OFFSET] == -1 and pf[VF_DEVICE] == -1
    for n, va in enumerate(vfs):
        r = rows[va]
        assert (r[KIND], r[PARENT], r[VF_NUM]) == (KIND_VF, idx.index("0000:82:00.0"), n)
        assert r[FLAGS] & F_LINKED and r[FLAGS] & F_DETAILS and not r[FLAGS] & F_INFERRED
        assert r[DEVICE] == VF_DEV and r[DRIVER] == "mlx5_core"
        assert r[NETDEVS] == ((f"p820v{n}", "aa:00:00:82:00:%02x" % n),)
    assert len(w.problems) == 1


def test_columns_extras_and_devices(tree: Tree) -> None:
    """The columnar layout: strings only for the devices that have any, factless rows listed."""
    br = tree.bridge("0000:00:02.0")
    vfs = tree.pf("0000:82:00.0", 4, under=br, vpd=vpd_blob("SN1"))
    tree.fn("0000:03:00.0", under=br, driver="igb", netdevs=(("eno1", "3c:ec:ef:00:00:01"),))
    (tree.devices / "0000:05:00.0").symlink_to("../../../devices/pci0000:00/0000:05:00.0")
    w = _walk.walk(tree.root)
    rows = w.devices
    assert [r[ADDR] for r in rows] == w.addresses and len(rows) == 9
    assert all(len(col) == len(rows) for col in w.columns)
    assert [tuple(col) for col in w.columns] == list(zip(*rows))[1:14]
    at = w.addresses.index
    assert w.factless == [at("0000:05:00.0")] and rows[at("0000:05:00.0")][FLAGS] & F_BROKEN
    assert not {at(v) for v in vfs} & set(w.extras)  # inferred VFs: nothing read, no entry
    assert w.extras[at("0000:82:00.0")] == ("mlx5_core", (("p820", "b8:ce:f6:00:82:00"),),
                                            vpd_blob("SN1"))
    assert w.extras[at("0000:03:00.0")] == ("igb", (("eno1", "3c:ec:ef:00:00:01"),), None)
    for i, r in enumerate(rows):
        assert r[DRIVER:] == w.extras.get(i, (None, (), None))
    assert _walk.to_rows(*_walk.from_rows(rows)) == rows
    assert _walk.from_rows([]) == ([], _walk.Columns(*[[]] * 13), {})


def test_pf_with_no_vfs_enabled(tree: Tree) -> None:
    tree.pf("0000:82:00.0", 0, total=16)
    w = _walk.walk(tree.root)
    assert w.problems == []
    pf = rows_by_address(w)["0000:82:00.0"]
    assert (pf[KIND], pf[TOTAL_VFS], pf[NUM_VFS], pf[VF_DEVICE]) == (KIND_PF, 16, 0, VF_DEV)


def test_first_vf_that_disagrees_forces_the_fallback(tree: Tree) -> None:
    vfs = tree.pf("0000:82:00.0", 4)
    # VF 0 has another device ID than sriov_vf_device says: nothing may be inferred.
    (tree.path(vfs[0]) / "device").write_text("0x1234\n")
    w = _walk.walk(tree.root)
    probs = problems_of(w, "0000:82:00.0")
    assert len(probs) == 1 and "device of the first VF 0000:82:00.2" in probs[0][2]
    rows = rows_by_address(w)
    assert rows[vfs[0]][DEVICE] == 0x1234 and rows[vfs[1]][DEVICE] == VF_DEV
    assert all(rows[v][FLAGS] & F_LINKED and rows[v][VF_NUM] == n for n, v in enumerate(vfs))


def test_irregular_virtfn_names_force_the_fallback(tree: Tree) -> None:
    vfs = tree.pf("0000:82:00.0", 3)
    pdir = tree.path("0000:82:00.0")
    (pdir / "virtfn2").rename(pdir / "virtfn5")
    (pdir / "virtfn01").symlink_to("../" + vfs[1])  # non-canonical number
    w = _walk.walk(tree.root)
    rows = rows_by_address(w)
    msgs = [p[2] for p in problems_of(w, "0000:82:00.0")]
    assert any("virtfn0..virtfn<count-1>" in m for m in msgs)
    bad = [p for p in problems_of(w, "0000:82:00.0") if p[3].endswith("virtfn01")]
    assert len(bad) == 1 and "not a canonical virtfn<N> name" in bad[0][2]
    assert [rows[v][VF_NUM] for v in vfs] == [0, 1, 5]
    assert rows["0000:82:00.0"][NUM_VFS] == 3


def test_last_virtfn_pointing_elsewhere_forces_the_fallback(tree: Tree) -> None:
    vfs = tree.pf("0000:82:00.0", 4)
    pdir = tree.path("0000:82:00.0")
    for n, target in ((1, vfs[3]), (3, vfs[1])):  # swap virtfn1 and virtfn3
        (pdir / f"virtfn{n}").unlink()
        (pdir / f"virtfn{n}").symlink_to("../" + target)
    w = _walk.walk(tree.root)
    probs = problems_of(w, "0000:82:00.0")
    assert len(probs) == 1 and "virtfn3 does not point to the computed 0000:82:00.5" in probs[0][2]
    rows = rows_by_address(w)
    assert [rows[v][VF_NUM] for v in vfs] == [0, 3, 2, 1]  # as the links say


def test_orphan_vf_is_reported(tree: Tree) -> None:
    vfs = tree.pf("0000:82:00.0", 2)
    (tree.path("0000:82:00.0") / "virtfn1").unlink()  # the PF no longer lists VF 1
    w = _walk.walk(tree.root)
    rows = rows_by_address(w)
    idx = [r[ADDR] for r in w.devices]
    assert rows[vfs[1]][KIND] == KIND_VF and rows[vfs[1]][PARENT] == idx.index("0000:82:00.0")
    assert rows[vfs[1]][VF_NUM] == -1
    assert any("lists no virtfn link" in p[2] for p in problems_of(w, vfs[1]))
    assert rows[vfs[0]][VF_NUM] == 0 and rows[vfs[0]][FLAGS] & F_INFERRED


# -- links are verified, not trusted ---------------------------------------------------------------

def _relink(link: Path, target: Path | str) -> None:
    link.unlink()
    link.symlink_to(target)


def _look_alike(tree: Tree, address: str, pf: str, *, device: int = VF_DEV) -> Path:
    """A directory outside the tree named `address` that looks like a VF of `pf` in every file."""
    fake = tree.root.parent / "elsewhere" / address
    fake.mkdir(parents=True)
    for name, data in (("vendor", b"0x15b3\n"), ("device", b"0x%04x\n" % device),
                       ("class", b"0x020000\n"), ("numa_node", b"0\n")):
        (fake / name).write_bytes(data)
    (fake / "physfn").symlink_to(tree.path(pf))
    return fake


@pytest.mark.parametrize("layout", [True, False], ids=["fast-path", "fallback"])
def test_links_to_look_alikes_outside_the_tree_make_no_vfs_of_listed_functions(
        tree: Tree, layout: bool) -> None:
    """The PF's layout names two listed functions that are no VFs (no physfn); its virtfn links
    point at look-alike VF directories elsewhere with the right names. Only where a link leads
    tells: the listed functions stay what they are, and the PF says what is wrong."""
    files = {"sriov_totalvfs": b"8\n"}
    if layout:
        files |= {"sriov_offset": b"2\n", "sriov_stride": b"1\n", "sriov_vf_device": b"101e\n"}
    pf = tree.fn("0000:82:00.0", files=files)
    for n, a in enumerate(("0000:82:00.2", "0000:82:00.3")):
        tree.fn(a, vendor=0x8086, device=0x1533, driver="igb")
        (pf / f"virtfn{n}").symlink_to(_look_alike(tree, a, "0000:82:00.0"))
    w = _walk.walk(tree.root)
    rows = rows_by_address(w)
    for a in ("0000:82:00.2", "0000:82:00.3"):
        r = rows[a]
        assert (r[KIND], r[PARENT], r[VF_NUM], r[VENDOR], r[DEVICE]) == (KIND_PLAIN, -1, -1, 0x8086, 0x1533)
        assert r[FLAGS] & F_DETAILS and not r[FLAGS] & (F_INFERRED | F_LINKED)
        assert problems_of(w, a) == []
    msgs = [p[2] for p in problems_of(w, "0000:82:00.0")]
    assert "fell back" in msgs[0] and ("virtfn0 does not point to the computed 0000:82:00.2"
                                       if layout else "sriov_offset") in msgs[0]
    not_own = [p for p in problems_of(w, "0000:82:00.0") if "does not lead to the directory" in p[2]]
    assert sorted(p[3].rsplit("/", 1)[1] for p in not_own) == ["virtfn0", "virtfn1"]
    assert len(msgs) == 1 + len(not_own)


@pytest.mark.parametrize("layout", [True, False], ids=["fast-path", "fallback"])
def test_links_to_listed_functions_without_physfn_make_no_vfs(tree: Tree, layout: bool) -> None:
    """The links lead to the tree's own directories, the IDs are what the PF implies, but the
    functions have no physfn back to the PF: they are no VFs of it."""
    files = {"sriov_totalvfs": b"8\n"}
    if layout:
        files |= {"sriov_offset": b"2\n", "sriov_stride": b"1\n", "sriov_vf_device": b"101e\n"}
    pf = tree.fn("0000:82:00.0", files=files)
    for n, a in enumerate(("0000:82:00.2", "0000:82:00.3")):
        tree.fn(a, device=VF_DEV)
        (pf / f"virtfn{n}").symlink_to("../" + a)
    w = _walk.walk(tree.root)
    rows = rows_by_address(w)
    assert all(rows[a][KIND] == KIND_PLAIN and rows[a][PARENT] == -1
               for a in ("0000:82:00.2", "0000:82:00.3"))
    msgs = [p[2] for p in problems_of(w, "0000:82:00.0")]
    assert ("physfn link of the first VF 0000:82:00.2 does not lead back" if layout else
            "sriov_offset") in msgs.pop(0)
    assert sorted(msgs) == ["points to 0000:82:00.2, whose physfn link does not lead back to this PF; ignored",
                            "points to 0000:82:00.3, whose physfn link does not lead back to this PF; ignored"]


def test_virtfn_to_another_pf_leaves_that_pf_and_its_vfs_alone(tree: Tree) -> None:
    vfs_a = tree.pf("0000:82:00.0", 3, layout=False)
    vfs_b = tree.pf("0000:83:00.0", 2)
    _relink(tree.path("0000:82:00.0") / "virtfn1", "../0000:83:00.0")
    w = _walk.walk(tree.root)
    rows = rows_by_address(w)
    idx = w.addresses.index
    b = rows["0000:83:00.0"]
    assert b[KIND] == KIND_PF and b[PARENT] == -1 and b[VF_NUM] == -1
    assert [(rows[v][PARENT], rows[v][VF_NUM]) for v in vfs_b] == [(idx("0000:83:00.0"), 0),
                                                                    (idx("0000:83:00.0"), 1)]
    assert problems_of(w, "0000:83:00.0") == [] and all(problems_of(w, v) == [] for v in vfs_b)
    a_probs = [p for p in problems_of(w, "0000:82:00.0") if p[3].endswith("/virtfn1")]
    assert len(a_probs) == 1 and "0000:83:00.0, whose physfn link does not lead back" in a_probs[0][2]
    # the VF that lost its link: a VF of the PF (its physfn says so) without a number, and said so
    lost = rows[vfs_a[1]]
    assert (lost[KIND], lost[PARENT], lost[VF_NUM]) == (KIND_VF, idx("0000:82:00.0"), -1)
    assert any("lists no virtfn link" in p[2] for p in problems_of(w, vfs_a[1]))
    assert [rows[v][VF_NUM] for v in (vfs_a[0], vfs_a[2])] == [0, 2]


@pytest.mark.parametrize("first", ["claimer", "owner"])
def test_virtfn_to_a_vf_of_another_pf_does_not_steal_it(tree: Tree, first: str) -> None:
    """Whichever PF is read first, the VF stays the PF's its physfn leads to."""
    claimer, owner = ("0000:82:00.0", "0000:83:00.0") if first == "claimer" else (
        "0000:83:00.0", "0000:82:00.0")
    vfs_c = tree.pf(claimer, 2, layout=False)
    vfs_o = tree.pf(owner, 2, layout=False)
    _relink(tree.path(claimer) / "virtfn0", "../" + vfs_o[1])
    w = _walk.walk(tree.root)
    rows = rows_by_address(w)
    assert (rows[vfs_o[1]][PARENT], rows[vfs_o[1]][VF_NUM]) == (w.addresses.index(owner), 1)
    assert [p for p in problems_of(w, owner) if "fell back" not in p[2]] == []
    (mine,) = [p for p in problems_of(w, claimer) if p[3].endswith("/virtfn0")]
    assert vfs_o[1] in mine[2] and ("physfn link does not lead back" in mine[2]
                                     or "another PF" in mine[2])
    assert rows[vfs_c[0]][VF_NUM] == -1 and rows[vfs_c[1]][VF_NUM] == 1


def test_two_virtfn_links_to_one_vf_leave_its_number_unknown(tree: Tree) -> None:
    vfs = tree.pf("0000:82:00.0", 4, layout=False)
    (tree.path("0000:82:00.0") / "virtfn5").symlink_to("../" + vfs[1])  # a third link to VF 1
    _relink(tree.path("0000:82:00.0") / "virtfn3", "../" + vfs[1])
    w = _walk.walk(tree.root)
    rows = rows_by_address(w)
    assert rows[vfs[1]][VF_NUM] == -1 and rows[vfs[1]][PARENT] == w.addresses.index("0000:82:00.0")
    dup = problems_of(w, vfs[1])
    assert len(dup) == 2 and all("named by more than one virtfn link of PF 0000:82:00.0" in p[2]
                                 and "VF number unknown" in p[2] for p in dup)
    assert {n for p in dup for n in ("virtfn1", "virtfn3", "virtfn5") if n in p[2]} == {
        "virtfn1", "virtfn3", "virtfn5"}
    assert [rows[v][VF_NUM] for v in (vfs[0], vfs[2], vfs[3])] == [0, 2, -1]  # VF 3 lost its link


def test_orphan_physfn_must_lead_to_the_tree_s_pf(tree: Tree) -> None:
    vfs = tree.pf("0000:82:00.0", 2)
    (tree.path("0000:82:00.0") / "virtfn1").unlink()
    fake = tree.root.parent / "elsewhere" / "0000:82:00.0"
    fake.mkdir(parents=True)
    _relink(tree.path(vfs[1]) / "physfn", fake)
    w = _walk.walk(tree.root)
    r = rows_by_address(w)[vfs[1]]
    assert r[KIND] == KIND_VF and r[PARENT] == -1
    (p,) = problems_of(w, vfs[1])
    assert p[1] == "physfn" and "does not lead to the directory" in p[2]


@pytest.mark.parametrize(("target", "driver"), [
    ("driver", None),                                  # a link to itself
    ("../0000:03:00.0/driver", None),                  # ... through the device's directory
    ("../0000:03:00.0", None),                         # the device itself
    ("../../../bus/pci/drivers/", None),               # no name
    ("../../../bus/pci/drivers/..", None),
    ("../../../bus/pci/xdrivers/igb", None),
    ("igb", None),
    ("../../../bus/pci/drivers/igb", "igb"),
    ("drivers/igb", "igb"),
])
def test_driver_link_must_end_in_drivers_name(tree: Tree, target: str, driver: str | None) -> None:
    d = tree.fn("0000:03:00.0", driver=None)
    (d / "driver").symlink_to(target)
    vfs = tree.pf("0000:82:00.0", 2)
    _relink(tree.path(vfs[1]) / "driver", target)
    w = _walk.walk(tree.root)
    assert rows_by_address(w)["0000:03:00.0"][DRIVER] == driver
    probs = problems_of(w, "0000:03:00.0")
    if driver is None:
        assert [(p[1], p[2]) for p in probs] == [
            ("driver", f"link -> {target!r} does not end in drivers/<name>; no driver")]
    else:
        assert probs == []
    det = _walk.details(tree.root, [vfs[1]])[vfs[1]]  # the lazily read VF details: same rule
    assert det[0] == driver and len(det[2]) == (driver is None)


def test_total_vfs_below_the_number_of_links_is_a_problem(tree: Tree) -> None:
    vfs = tree.pf("0000:82:00.0", 4, total=2)
    w = _walk.walk(tree.root)
    assert [(p[1], p[2]) for p in problems_of(w, "0000:82:00.0")] == [
        ("sriov_totalvfs", "2 is below the number of virtfn links (4)")]
    rows = rows_by_address(w)
    assert rows["0000:82:00.0"][TOTAL_VFS] == 2 and [rows[v][VF_NUM] for v in vfs] == [0, 1, 2, 3]


# -- PCI domains above ffff (Intel VMD) --------------------------------------------------------------

def test_domains_above_ffff_are_listed_in_numeric_order(tree: Tree) -> None:
    names = ["10000:e1:00.0", "ffff:00:00.0", "fffffffe:01:00.0", "1234567:00:1f.7"]
    for a in names:
        tree.fn(a)
    (tree.devices / "10000:e1:00.1").symlink_to("../../../devices/pci0000:00/10000:e1:00.0")
    for bad in ("010000:e1:00.0", "10000:E1:00.0", "1FFFF:00:00.0", "100000000:00:00.0"):
        (tree.devices / bad).symlink_to("../../../devices/pci0000:00/10000:e1:00.0")
    w = _walk.walk(tree.root)
    assert w.addresses == ["0000:00:00.0", "ffff:00:00.0", "10000:e1:00.0", "10000:e1:00.1",
                           "1234567:00:1f.7", "fffffffe:01:00.0"]
    assert sorted(os.path.basename(p[3]) for p in problems_of(w, None)) == sorted(
        ["010000:e1:00.0", "10000:E1:00.0", "1FFFF:00:00.0", "100000000:00:00.0"])
    assert [p for p in w.problems if p[0] >= 0] == []
    det = _walk.details(tree.root, ["10000:e1:00.0", "fffffffe:01:00.0", "010000:e1:00.0"])
    assert det["10000:e1:00.0"][0] == "mlx5_core" and det["fffffffe:01:00.0"][2] == []
    assert det["010000:e1:00.0"][2][0][1].startswith("not a PCI address")


def test_a_long_listing_in_any_order_comes_out_in_address_order_with_its_inodes(tree: Tree) -> None:
    """The listing is sorted by key (a radix sort from 64 entries on): created in a shuffled
    order across domains that differ in every byte, it comes out in numeric address order, and
    each name keeps its own entry's inode number."""
    domains = [0x0000, 0x0001, 0x00FF, 0x0100, 0xFFFF, 0x10000, 0x1234567, 0xFFFFFFFE]
    names = [f"{d:04x}:{b:02x}:{s:02x}.{f}" for d in domains for b in (0x00, 0x03, 0x80, 0xFF)
             for s in (0, 0x1F) for f in (0, 7)]
    target = "../../../devices/pci0000:00/nothing"
    names = sorted(set(names) | set(os.listdir(tree.devices)))  # with what the tree has (a bridge)
    random.Random(7).shuffle(names)
    for a in names:
        if not (tree.devices / a).is_symlink():
            (tree.devices / a).symlink_to(target)
    got, inodes = _walk.listing_of(_walk.walk(tree.root).listing)
    assert len(names) >= 64 and got == sorted(names, key=_walk_key)
    assert inodes == [os.lstat(tree.devices / a).st_ino for a in got]


def _walk_key(address: str) -> tuple[int, int, int, int]:
    domain, bus, rest = address.split(":")
    slot, function = rest.split(".")
    return int(domain, 16), int(bus, 16), int(slot, 16), int(function)


# -- hostile trees ---------------------------------------------------------------------------------

def test_hostile_entries(tree: Tree) -> None:
    br = tree.bridge("0000:00:02.0")
    d = tree.fn("0000:03:00.0", under=br, files={"vendor": None, "device": None, "class": b"",
                                                 "subsystem_vendor": b"0xzz\n",  # never read
                                                 "subsystem_device": b"0x" + b"1" * 5000})
    tree.fn("0000:03:00.2", under=br, files={"vendor": b"0xzz\n", "device": b"0x" + b"1" * 5000})
    os.mkfifo(d / "vendor")          # a FIFO where a file belongs: must not block
    (d / "device").mkdir()           # a directory where a file belongs
    os.mkfifo(d / "vpd")
    (d / "numa_node").unlink()
    (d / "numa_node").symlink_to("/dev/zero")  # a symlink where a file belongs: not followed
    tree.fn("0000:03:00.1", under=br, netdevs=(("eth1", "not-a-mac"), ("eth2", "")))
    (tree.path("0000:03:00.1") / "net" / "eth2" / "address").unlink()
    os.mkfifo(tree.path("0000:03:00.1") / "net" / "eth2" / "address")  # d_type unknown: fstat
    (tree.devices / "0000:05:00.0").symlink_to("../../../devices/pci0000:00/0000:05:00.0")  # dangling
    (tree.devices / "0000:06:00.0").write_text("a file, not a link\n")
    for bad in ("foo", "0000:00:20.0", "0000:0A:00.0", "00000:00:00.0", "100000000:00:00.0",
                "0000:00:00.8", "x" * 255):
        (tree.devices / bad).symlink_to("../../../devices/pci0000:00/0000:00:00.0")
    vfs = tree.pf("0000:82:00.0", 4, under=br)
    # a virtfn link whose target is missing
    (tree.devices / vfs[2]).unlink()
    shutil.rmtree(tree.path(vfs[0]).parent / vfs[2])

    fds = open_fds()
    t0 = time.monotonic()
    w = _walk.walk(tree.root)
    assert time.monotonic() - t0 < 5
    assert open_fds() == fds
    rows = rows_by_address(w)

    host = problems_of(w, None)
    assert sorted(os.path.basename(p[3]) for p in host) == sorted(
        ["foo", "0000:00:20.0", "0000:0A:00.0", "00000:00:00.0", "100000000:00:00.0",
         "0000:00:00.8", "x" * 255])
    assert all(p[1] == "name" and "not a PCI address" in p[2] for p in host)

    got = {(p[1], p[2].split(" (")[0].split(":")[0]) for p in problems_of(w, "0000:03:00.0")}
    assert got == {("vendor", "not a regular file"), ("device", "not a regular file"),
                   ("class", "empty"), ("numa_node", "not a regular file"),
                   ("vpd", "not a regular file")}
    got = {(p[1], p[2]) for p in problems_of(w, "0000:03:00.2")}
    assert got == {("vendor", "garbage content '0xzz\\n'"), ("device", "longer than 4096 bytes")}
    fifo = [p for p in problems_of(w, "0000:03:00.0") if p[1] == "vendor"][0]
    assert "FIFO" in fifo[2] and fifo[3] == str(tree.devices / "0000:03:00.0" / "vendor")
    r = rows["0000:03:00.0"]
    assert (r[VENDOR], r[DEVICE], r[CLASS], r[NUMA]) == (-1,) * 4
    assert r[DRIVER] == "mlx5_core"

    eth = rows["0000:03:00.1"]
    assert eth[NETDEVS] == (("eth1", None), ("eth2", None))
    net = sorted((p[3].split("/net/")[1], p[2]) for p in problems_of(w, "0000:03:00.1"))
    assert net == [("eth1/address", "garbage content 'not-a-mac'"),
                   ("eth2/address", "not a regular file (a FIFO); not opened")]

    dangling = problems_of(w, "0000:05:00.0")
    assert len(dangling) == 1 and "dangling link" in dangling[0][2] and dangling[0][1] == "entry"
    assert rows["0000:05:00.0"][FLAGS] & F_BROKEN
    notdir = problems_of(w, "0000:06:00.0")
    assert len(notdir) == 1 and "not a directory" in notdir[0][2]

    pfp = problems_of(w, "0000:82:00.0")
    assert any("fell back" in p[2] and vfs[2] in p[2] for p in pfp)
    assert any(p[3].endswith("virtfn2") and "dangling link" in p[2] for p in pfp)
    assert vfs[2] not in rows
    assert [rows[v][VF_NUM] for v in (vfs[0], vfs[1], vfs[3])] == [0, 1, 3]


def test_fifo_is_never_opened_for_reading(tmp_path: Path) -> None:
    """The low-level reader opens non-blocking and checks fstat before any read."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    buf = ffi.new("unsigned char[]", 16)
    err = ffi.new("int *")
    t0 = time.monotonic()
    assert lib.fv_read_file_at(-100, str(fifo).encode(), buf, 16, err) == -1  # AT_FDCWD
    assert err[0] == 22 and time.monotonic() - t0 < 2  # EINVAL
    (tmp_path / "f").write_bytes(b"0x15b3\n")
    assert lib.fv_read_file_at(-100, str(tmp_path / "f").encode(), buf, 16, err) == 7
    assert bytes(ffi.buffer(buf, 7)) == b"0x15b3\n"


def test_vpd_flags(tree: Tree) -> None:
    tree.fn("0000:03:00.0", vpd=vpd_blob("PLAIN1"))
    tree.pf("0000:82:00.0", 3, vpd=vpd_blob("PF1"), vf_vpd=vpd_blob("VF"))
    tree.pf("0000:83:00.0", 2, vpd=vpd_blob("PF2"), vf_vpd=vpd_blob("VF2"), layout=False)
    tree.fn("0000:84:00.0", vpd=b"\x82" * 40000)
    kinds = {}
    for flags in ((False, False), (True, False), (True, True)):
        w = _walk.walk(tree.root, read_vpd=flags[0], vf_vpd=flags[1])
        kinds[flags] = {r[ADDR]: r[VPD] for r in w.devices}
    assert all(v is None for v in kinds[(False, False)].values())
    default = kinds[(True, False)]
    assert default["0000:03:00.0"] == vpd_blob("PLAIN1") and default["0000:82:00.0"] == vpd_blob("PF1")
    assert default["0000:83:00.0"] == vpd_blob("PF2")
    assert default["0000:82:00.2"] is None and default["0000:83:00.2"] is None
    assert len(default["0000:84:00.0"]) == 32768
    every = kinds[(True, True)]
    assert every["0000:82:00.2"] == every["0000:82:00.4"] == vpd_blob("VF")  # fast path
    assert every["0000:83:00.3"] == vpd_blob("VF2")  # fallback path
    assert all(r[VPD] is None for r in _walk.walk(tree.root, read_vpd=False, vf_vpd=True).devices)
    w = _walk.walk(tree.root)
    assert [p[1:3] for p in problems_of(w, "0000:84:00.0")] == [("vpd", "longer than 32768 bytes")]


def test_listed_regular_files_cost_open_read_close(tree: Tree) -> None:
    """A file the directory listing says is regular is not fstat'ed; a VPD image shorter than a page
    comes in one read (no second read for EOF). Unlisted files (net/<ifname>/address) are."""
    tree.fn("0000:03:00.0", vpd=vpd_blob("ONE"), netdevs=(("eth0", "3c:ec:ef:00:00:01"),))
    tree.fn("0000:04:00.0", vpd=bytes(range(256)) * 20)  # 5120 bytes: more than a page
    without = _walk.walk(tree.root, read_vpd=False).counters
    w = _walk.walk(tree.root)
    assert w.problems == []
    assert rows_by_address(w)["0000:04:00.0"][VPD] == bytes(range(256)) * 20
    c = w.counters
    assert c["openat"] - without["openat"] == 2 and c["fstat"] == without["fstat"]
    assert c["read"] - without["read"] == 1 + 2  # tmpfs/ext4 hand out 5120 bytes at once, then EOF
    # per function: vendor, device, class, numa_node read without fstat; one fstat for the MAC
    # (and the walk's one fstatfs)
    assert without["fstat"] == 2


def test_regular_file_swapped_for_a_fifo_never_blocks(tree: Tree) -> None:
    """A listed regular file is opened without fstat: if a FIFO takes its place between the listing
    and the open, O_NONBLOCK keeps the open and the read from waiting (the race at worst costs a
    wrong problem for that file)."""
    d = tree.fn("0000:03:00.0")
    side = tree.root / "side"
    side.mkdir()
    (side / "reg").write_bytes(b"0x15b3\n")
    os.mkfifo(side / "fifo")
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for src in ("fifo", "reg"):
                os.link(side / src, side / "new")
                os.replace(side / "new", d / "vendor")

    t = threading.Thread(target=swap, daemon=True)
    t.start()
    seen = set()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            w = _walk.walk(tree.root, read_vpd=False)
            r = rows_by_address(w)["0000:03:00.0"]
            msgs = tuple(p[2] for p in problems_of(w, "0000:03:00.0"))
            assert (r[VENDOR], msgs) == (MLX, ()) or (r[VENDOR] == -1 and len(msgs) == 1), msgs
            seen.add(msgs[0].split(":")[0] if msgs else "ok")
    finally:
        stop.set()
        t.join()
    assert "ok" in seen and seen <= {"ok", "not a regular file (a FIFO); not opened", "empty",
                                     "unreadable", "missing"}


class _CloseEachLib:
    """Stands in for the cffi `lib` in fastvpd._walk: walks as where close_range is missing."""

    def __getattr__(self, name: str):
        return getattr(lib, name)

    @staticmethod
    def fv_rewalk(root: bytes, flags: int, args):
        return lib.fv_rewalk(root, flags | lib.FV_CLOSE_EACH, args)


def test_fds_are_closed_in_batches_or_one_by_one(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    tree.pf("0000:82:00.0", 8, vpd=vpd_blob("SN1"))
    tree.pf("0000:83:00.0", 5, layout=False)  # fallback: every VF read
    many = tuple((f"eth{n}", "3c:ec:ef:00:00:%02x" % n) for n in range(40))  # > 32 pending fds
    tree.fn("0000:03:00.0", netdevs=many)
    fds = open_fds()
    batched = _walk.walk(tree.root)
    assert open_fds() == fds
    monkeypatch.setattr(_walk, "lib", _CloseEachLib())
    each = _walk.walk(tree.root)
    assert open_fds() == fds
    assert batched.devices == each.devices and batched.problems == each.problems
    assert len(rows_by_address(each)["0000:03:00.0"][NETDEVS]) == 40
    c, e = batched.counters, each.counters
    assert e["close_range"] == 0 and e["close"] == e["openat"]  # no open failed in this tree
    assert c["openat"] == e["openat"] and c["close"] + c["close_range"] < c["openat"] / 3


def test_running_out_of_fds_closes_the_pending_ones_and_retries(tree: Tree) -> None:
    """Up to a device's worth of fds wait to be closed together; an open that fails with EMFILE
    closes them and tries again, so a process near its fd limit sees no spurious problems."""
    tree.pf("0000:82:00.0", 8, vpd=vpd_blob("SN1"))
    tree.pf("0000:83:00.0", 3, layout=False)
    script = """if True:
        import os, resource, sys
        from fastvpd import _walk
        free = _walk.walk(sys.argv[1])
        top = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 7, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        tight = _walk.walk(sys.argv[1])
        assert tight.problems == free.problems and len(free.problems) == 1, tight.problems
        assert tight.devices == free.devices
        assert tight.counters["openat"] > free.counters["openat"]  # some opens did fail and retry
        print("ok", free.counters["openat"], tight.counters["openat"])
    """
    out = subprocess.run([sys.executable, "-c", script, str(tree.root)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


# -- syscall counts --------------------------------------------------------------------------------

def _sriov_host(root: Path, pfs: int, vfs: int, layout: bool = True,
                vf_netdevs: bool = False) -> Tree:
    """PFs with netdevs; VFs without (bound to vfio-pci, the DPU case) unless `vf_netdevs`."""
    t = Tree(root)
    br = t.bridge("0000:00:02.0")
    for p in range(pfs):
        t.pf(f"0000:{0x10 + 4 * p:02x}:00.0", vfs, offset=1, stride=1, layout=layout, under=br,
             total=max(vfs, 8), vf_netdevs=vf_netdevs)
    return t


def test_fast_path_syscalls_per_vf(tmp_path: Path) -> None:
    pfs, vfs = 4, 256
    with_vfs = _walk.walk(_sriov_host(tmp_path / "a", pfs, vfs).root, read_vpd=False)
    without = _walk.walk(_sriov_host(tmp_path / "b", pfs, 0).root, read_vpd=False)
    assert with_vfs.problems == [] and len(with_vfs.devices) == 2 + pfs * (vfs + 1)
    assert sum(r[KIND] == KIND_VF and bool(r[FLAGS] & F_INFERRED) for r in with_vfs.devices) == pfs * vfs
    c, base = with_vfs.counters, without.counters
    extra = c["total"] - base["total"]
    print(f"\nfast path {pfs}x{vfs}: {c} ; without VFs {base['total']}; "
          f"VF-attributable {extra / (pfs * vfs):.4f}/VF, all-in {c['total'] / (pfs * vfs):.4f}/VF")
    assert extra / (pfs * vfs) < 0.1
    assert c["total"] / (pfs * vfs) < 0.5
    # Per PF: the first VF's directory opened through bus/pci/devices and listed, its vendor,
    # device, class and numa_node read (openat + read each: listed regular files need no fstat);
    # six fstat/fstatat: the PF's and the first VF's directories, what virtfn0, the last virtfn
    # and the last VF's entry lead to, and the first VF's physfn (no readlinkat: links are
    # compared by what they lead to). The fds go with the PF's in its close_range.
    d = {k: c[k] - base[k] for k in c}
    assert d["readlinkat"] == 0
    assert d["openat"] == 5 * pfs and d["read"] == 4 * pfs and d["fstat"] == 6 * pfs
    assert pfs <= d["getdents64"] <= 2 * pfs  # one call, two without an end-of-directory d_off
    assert 0 <= d["close"] + d["close_range"] <= pfs  # a foreign fd may split a run
    assert pfs * 16 <= extra <= pfs * 18


def test_vf_netdevs_cost_one_readlinkat_each(tmp_path: Path) -> None:
    """Which VFs own a netdev comes from class/net: one readlinkat per netdev, nothing else."""
    pfs, vfs = 2, 64
    without = _walk.walk(_sriov_host(tmp_path / "a", pfs, vfs).root, read_vpd=False)
    with_net = _walk.walk(_sriov_host(tmp_path / "b", pfs, vfs, vf_netdevs=True).root,
                          read_vpd=False)
    for w, owns in ((without, False), (with_net, True)):
        vf_rows = [r for r in w.devices if r[KIND] == KIND_VF]
        assert len(vf_rows) == pfs * vfs and all(r[FLAGS] & F_INFERRED for r in vf_rows)
        assert all(bool(r[FLAGS] & F_NETDEV) == owns for r in vf_rows)
        assert all(r[FLAGS] & F_NETDEV for r in w.devices if r[KIND] == KIND_PF)
    d = {k: with_net.counters[k] - without.counters[k] for k in without.counters}
    assert d["readlinkat"] == pfs * vfs
    # the first VF's directory listing also shows its net/ (no extra call); the class/net
    # listing may take one more getdents64 call for the longer directory
    assert d["total"] - d["readlinkat"] <= 2


def test_vf_netdevs_without_class_net_are_probed(tmp_path: Path) -> None:
    """A tree without class/net (a copied tree): each inferred VF's net/ is opened once."""
    pfs, vfs = 2, 16
    t = _sriov_host(tmp_path / "a", pfs, vfs)
    owner = t.pf("0000:30:00.0", vfs, offset=1, stride=1, vf_netdevs=True, total=vfs)
    shutil.rmtree(t.class_net)
    w = _walk.walk(t.root, read_vpd=False)
    assert w.problems == []
    rows = rows_by_address(w)
    for r in w.devices:
        if r[KIND] == KIND_VF:
            assert bool(r[FLAGS] & F_NETDEV) == (r[ADDR] in owner), r[ADDR]
    indexed = _walk.walk(_sriov_host(tmp_path / "b", pfs, vfs).root, read_vpd=False)
    shutil.rmtree(tmp_path / "b" / "class")
    probed = _walk.walk(tmp_path / "b", read_vpd=False)
    assert probed.devices == indexed.devices
    # every inferred VF costs one openat of its net/ (ENOENT: no netdev)
    assert probed.counters["openat"] - indexed.counters["openat"] == pfs * vfs


def test_class_net_disagreeing_with_the_first_vf_is_not_trusted(tmp_path: Path) -> None:
    """class/net says no VF has a netdev, the first VF's own directory shows one: the PF's VFs
    are probed one by one, and the answer is the VFs' own."""
    t = _sriov_host(tmp_path, 1, 8, vf_netdevs=True)
    for name in os.listdir(t.class_net):
        if "v" in name[3:]:
            os.unlink(t.class_net / name)  # the VFs' netdevs leave the index, not the tree
    w = _walk.walk(t.root, read_vpd=False)
    vf_rows = [r for r in w.devices if r[KIND] == KIND_VF]
    assert len(vf_rows) == 8 and all(r[FLAGS] & F_NETDEV for r in vf_rows)


@pytest.mark.parametrize("target", [
    "../../devices/virtual/net/{name}",                       # no PCI function
    "../../devices/pci0000:00/0000:00:02.0/{vf}/net/other",   # another name
    "../../devices/pci0000:00/../0000:00:02.0/{vf}/net/{name}",  # a '..' component
    "/sys/devices/pci0000:00/0000:00:02.0/{vf}/net/{name}",   # absolute, outside the tree
    "../../devices/pci0000:00/0000:00:02.0/0000:99:00.0/net/{name}",  # not a listed function
    "{vf}/net/{name}",                                        # no ../../devices/ prefix
])
def test_class_net_links_that_name_no_function_are_ignored(tmp_path: Path, target: str) -> None:
    t = _sriov_host(tmp_path, 1, 4)
    vf = addr_of(0, rid_of("0000:10:00.0") + 1 + 2)
    name = "stray0"
    (t.class_net / name).symlink_to(target.format(vf=vf, name=name))
    w = _walk.walk(t.root, read_vpd=False)
    assert w.problems == []
    assert not rows_by_address(w)[vf][FLAGS] & F_NETDEV


def test_fallback_is_linear(tmp_path: Path) -> None:
    small = _walk.walk(_sriov_host(tmp_path / "a", 2, 32, layout=False).root, read_vpd=False)
    big = _walk.walk(_sriov_host(tmp_path / "b", 2, 128, layout=False).root, read_vpd=False)
    per_vf = (big.counters["total"] - small.counters["total"]) / (2 * (128 - 32))
    print(f"\nfallback: {big.counters}; {per_vf:.1f} syscalls per VF")
    assert 10 < per_vf < 45
    assert big.counters["readlinkat"] >= 2 * 128 * 2  # virtfn link + the VF's driver link
    assert all(r[FLAGS] & F_LINKED for r in big.devices if r[KIND] == KIND_VF)
    closes = big.counters["close"] + big.counters["close_range"]
    assert closes < big.counters["openat"] / 3  # seven fds per VF, closed in one go


def test_total_syscalls_per_vf_below_a_tenth_at_8x512(tmp_path: Path) -> None:
    """All syscalls of a whole walk (read_vpd) over the VF count, on 4 DPUs x 2 PFs x 512 VFs
    bound to vfio-pci (the DPU case: the VFs have no netdevs)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    scratch = Path(tempfile.mkdtemp(prefix="fastvpd-walk-", dir=base))
    try:
        host = testing.dpu_host(scratch / "sys", cards=4, pfs_per_card=2, vfs_per_pf=512,
                                vf_driver="vfio-pci", vf_netdevs=False)
        fds = open_fds()
        w = _walk.walk(host, read_vpd=True)
        assert open_fds() == fds
    finally:
        shutil.rmtree(scratch)
    assert w.problems == []
    pfs = [r for r in w.devices if r[KIND] == KIND_PF]
    vfs = [r for r in w.devices if r[KIND] == KIND_VF]
    assert len(pfs) == 8 and len(vfs) == 8 * 512 and all(r[FLAGS] & F_INFERRED for r in vfs)
    assert all(r[VPD] and r[NETDEVS] for r in pfs)
    c = w.counters
    print(f"\n8x512 with VPD on {base}: {c}; {c['total'] / len(pfs):.1f} per PF, "
          f"{c['total'] / len(vfs):.4f} per VF")
    assert c["total"] / len(vfs) < 0.1
    # Per PF: 2 to list its directory, 8 attributes (2 each), driver 1, net 5, vpd 2, 6 fstat
    # and fstatat to check the links, 10 for the first VF; the walk: root, devices, fstatfs, the
    # device listing, and class/net: its listing and one readlinkat per netdev (the 8 PFs' and lo).
    assert c["openat"] == 2 + 8 * (1 + 8 + 1 + 1 + 1 + 1 + 4) + 1
    assert c["read"] == 8 * (8 + 1 + 1 + 4) and c["readlinkat"] == 8 + 8 + 1
    # fstatfs; net/<ifname>/address, the one unlisted file; the six link checks
    assert c["fstat"] == 1 + 8 + 8 * 6
    if base == shm:  # tmpfs marks the end of a listing: one call per directory
        assert c["getdents64"] == 8 * 3 + (len(w.devices) * 32 // 65536 + 1) + 1


# -- GIL -------------------------------------------------------------------------------------------

def test_walk_releases_the_gil(tmp_path: Path) -> None:
    root = os.fsencode(_sriov_host(tmp_path, 2, 512, layout=False).root)
    with gil_spinner() as count:
        before = count()
        t0 = time.perf_counter()
        res = lib.fv_walk(root, 0)
        took = time.perf_counter() - t0
        during_walk = count() - before
        lib.fv_free(res)
        before = count()
        # the control: a C loop that holds the GIL and allocates nothing per step, so that it
        # stays well inside the spinner's 0.5 s switch interval under ASan's allocator too
        (b"ab" * 20_000_000).count(b"c")
        during_control = count() - before
    print(f"\nwalk took {took * 1000:.1f} ms; spinner counted {during_walk} during it, "
          f"{during_control} during the GIL-holding control")
    assert during_walk > 1000
    assert during_control == 0


# -- the real machine and bad roots ----------------------------------------------------------------

def test_real_sys() -> None:
    base = Path("/sys/bus/pci/devices")
    if not base.is_dir():
        pytest.skip("no /sys/bus/pci/devices")
    fds = open_fds()
    w = _walk.walk("/sys", read_vpd=False)
    assert open_fds() == fds
    names = sorted(os.listdir(base))
    assert [r[ADDR] for r in w.devices] == names
    assert w.problems == []

    def num(path: Path) -> int:
        return int(path.read_text().strip(), 0)

    for r in w.devices:
        d = base / r[ADDR]
        assert (r[VENDOR], r[DEVICE], r[CLASS]) == (
            num(d / "vendor"), num(d / "device"), num(d / "class"))
        if (d / "numa_node").exists():
            assert r[NUMA] == int((d / "numa_node").read_text())
        drv = os.path.basename(os.readlink(d / "driver")) if (d / "driver").is_symlink() else None
        assert r[DRIVER] == drv
        net = sorted(os.listdir(d / "net")) if (d / "net").is_dir() else []
        assert [n for n, _ in r[NETDEVS]] == net
        has_sriov = (d / "sriov_totalvfs").exists()
        assert r[KIND] == (KIND_PF if has_sriov and num(d / "sriov_totalvfs") > 0 else
                           KIND_VF if (d / "physfn").exists() else KIND_PLAIN)
    # sysfs marks the end of a listing: each directory is listed in one getdents64 call
    assert w.counters["getdents64"] <= 3 + len(w.devices) + sum(bool(r[NETDEVS]) for r in w.devices)


def test_bad_roots(tmp_path: Path) -> None:
    with pytest.raises(SysfsError) as e:
        _walk.walk(tmp_path / "missing")
    assert e.value.path == str(tmp_path / "missing") and e.value.errno == 2
    (tmp_path / "file").write_text("x")
    with pytest.raises(SysfsError):
        _walk.walk(tmp_path / "file")
    (tmp_path / "empty" / "bus" / "pci").mkdir(parents=True)
    with pytest.raises(SysfsError) as e:
        _walk.walk(tmp_path / "empty")
    assert "not a sysfs tree" in str(e.value) and e.value.path == str(tmp_path / "empty")
    with pytest.raises(SysfsError):
        _walk.details(tmp_path / "empty", ["0000:00:00.0"])
    (tmp_path / "empty" / "bus" / "pci" / "devices").mkdir()
    w = _walk.walk(tmp_path / "empty")
    assert w.devices == [] and w.problems == []


# -- walking again: what a periodic refresh can vouch for is not read ------------------------------

def test_rewalk_reuses_what_it_is_told_and_reads_the_rest(tmp_path: Path) -> None:
    t = _sriov_host(tmp_path, 4, 16)
    t.fn("0000:40:00.0", vendor=0x8086, device=0x1533, netdevs=(("eno1", "3c:ec:ef:00:00:01"),))
    first = _walk.walk(t.root, read_vpd=False)
    reuse = [a for a, k in zip(first.addresses, first.columns.kind) if k != KIND_VF]
    again = _walk.walk(t.root, read_vpd=False, reuse=(first, reuse))
    assert again.devices == first.devices and sorted(again.problems) == sorted(first.problems)
    assert again.inodes == first.inodes and again.listing == first.listing
    # only the listings (bus/pci/devices, class/net and its links): no device was opened
    assert again.counters["openat"] == 3 and again.counters["read"] == 0
    given = _walk.walk(t.root, read_vpd=False, reuse=(first, reuse),
                       listing=(first.addresses, first.inodes))
    assert given.devices == first.devices and given.listing == first.listing
    assert given.counters["getdents64"] < again.counters["getdents64"]  # bus/pci/devices unread


def test_rewalk_reads_a_reused_device_whose_entry_is_new() -> None:
    """The caller's record is used only while the entry has the inode number it had. (On tmpfs,
    as on sysfs, a re-created entry gets a new one; a disk file system may hand the freed number
    straight back: docs/scanner.md.)"""
    if fast_temp_base() is None:
        pytest.skip("needs a tmpfs (/dev/shm): a disk file system may reuse the inode number")
    with scratch_dir("rewalk") as d:
        _rewalk_new_entry(Path(d))


def _rewalk_new_entry(tmp_path: Path) -> None:
    t = _sriov_host(tmp_path, 2, 4)
    first = _walk.walk(t.root, read_vpd=False)
    pf = "0000:10:00.0"
    (t.path(pf) / "vendor").write_text("0x8086\n")  # a different card behind the same address
    link = t.devices / pf
    target = os.readlink(link)
    link.unlink()
    link.symlink_to(target)  # re-created: a new inode number
    reuse = [a for a, k in zip(first.addresses, first.columns.kind) if k != KIND_VF]
    again = _walk.walk(t.root, read_vpd=False, reuse=(first, reuse))
    assert rows_by_address(again)[pf][VENDOR] == 0x8086
    assert again.devices == _walk.walk(t.root, read_vpd=False).devices


def test_rewalk_with_a_listing_names_what_is_new(tmp_path: Path) -> None:
    """A given listing stands in for bus/pci/devices; a name with inode 0 is looked up, and a
    name that is not there is gone."""
    t = _sriov_host(tmp_path, 1, 2)
    first = _walk.walk(t.root, read_vpd=False)
    names = first.addresses + ["0000:7f:00.0"]
    w = _walk.walk(t.root, read_vpd=False, listing=(names, [0] * len(names)))
    assert w.inodes[:len(first.inodes)] == first.inodes
    assert rows_by_address(w)["0000:7f:00.0"][FLAGS] & F_GONE


def test_addresses_behave_as_the_list_of_names_they_hold() -> None:
    """`Walk.addresses` is one text, not a list; it still answers as the list of names would."""
    names = ["0000:00:00.0", "0000:82:00.1", "10000:e1:00.0"]
    a = _walk.Addresses(names)
    assert a == names and a == tuple(names) and list(a) == names and len(a) == 3
    assert a[1] == names[1] and a[-1] == names[-1] and a[0:2] == names[0:2]
    assert a.index("0000:82:00.1") == 1 and a.find("0000:82:00.2") is None
    assert "10000:e1:00.0" in a and "0000:82:00.2" not in a and 7 not in a
    assert a + ["x"] == [*names, "x"] and ["x"] + a == ["x", *names]
    assert _walk.Addresses() == [] and not list(_walk.Addresses())
    with pytest.raises(ValueError):
        a.index("0000:82:00.2")
    with pytest.raises(IndexError):
        a[3]


def test_prober_reports_a_missing_root_then_finds_it_and_closes_once(tmp_path: Path) -> None:
    """The prober opens nothing until its first probe, reports a root that is no sysfs tree as
    a walk does, keeps trying, and is unusable (not crashing) after close."""
    root = tmp_path / "sys"
    prober = _walk.Prober(root, [("0000:03:00.0", 2), ("not-an-address", 0)])
    with pytest.raises(SysfsError, match="cannot open the sysfs root"):
        prober.probe(listing=False)
    host = testing.dpu_host(root, cards=1, pfs_per_card=1, vfs_per_pf=2)
    found = _walk.pf_probes(prober.probe(listing=True))
    assert [p.gone for p in found] == [False, True]
    assert (found[0].first, found[0].last, found[0].past_end) == (host.vfs[0], host.vfs[1], False)
    prober.close()
    prober.close()
    with pytest.raises(ValueError, match="closed"):
        prober.probe(listing=False)


def test_prober_listing_is_the_walks_after_every_change(tmp_path: Path) -> None:
    """The prober keeps its last bus/pci/devices listing and reuses what it made of it when
    getdents64 gives the same bytes: what it returns must still be what a fresh walk lists,
    whatever changed in between (an entry added, replaced by a new inode, removed, a name that
    is no address)."""
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=2, vfs_per_pf=3)
    devices = Path(host.root) / "bus/pci/devices"
    target = os.readlink(devices / host.vfs[0])
    with _walk.Prober(host.root, [(pf, 3) for pf in host.pfs]) as prober:

        def check(present: str | None = None, absent: str | None = None) -> bytes:
            got = prober.probe(listing=True).listing
            assert got is not None
            assert got == _walk.walk(host.root, read_vpd=False).listing
            assert got == prober.probe(listing=True).listing  # the kept one, unchanged
            names, _ = _walk.listing_of(got)
            assert present is None or present in names
            assert absent is None or absent not in names
            return got

        first = check()
        os.symlink(target, devices / "0000:7f:00.0")
        added = check(present="0000:7f:00.0")
        os.symlink(target, devices / "new")
        os.replace(devices / "new", devices / "0000:7f:00.0")  # same name, another inode
        replaced = check(present="0000:7f:00.0")
        assert replaced != added and _walk.listing_of(replaced)[0] == _walk.listing_of(added)[0]
        (devices / "0000:7f:00.0").unlink()
        assert check(absent="0000:7f:00.0") == first
        os.symlink(target, devices / "not-an-address")
        assert check(absent="not-an-address") == first
        (devices / "not-an-address").unlink()
        assert check() == first
