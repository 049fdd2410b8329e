"""`scan()` and `fastvpd scan` on a real sysfs capture: tests/data/sysfs/ghw-i350-sriov.tar.gz.

A host with two Intel I350 PFs (8086:1521, igb), 4 of 7 VFs enabled on each (8086:1520, igbvf),
``sriov_offset`` 128 and ``sriov_stride`` 4, so the VFs of the two PFs interleave on bus 05
(ghw project snapshot, Apache-2.0; see tests/data/NOTICE.md). The expected facts are computed
from the capture's own files and links, and the well-known ones are also written out below.
A copy without ``sriov_offset``/``sriov_stride``/``sriov_vf_device`` (kernels before 4.15)
must give the same answer through the link-by-link path.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastvpd import _walk, testing
from fastvpd.scanner import scan
from tests.reference import scan as reference
from tests.support import cli, scratch_dir

CAPTURE = Path(__file__).parent / "data" / "sysfs" / "ghw-i350-sriov.tar.gz"

PFS = ("0000:05:00.0", "0000:05:00.1")
VFS = {  # PF -> its VFs by vf_num, as the capture's virtfn links say
    "0000:05:00.0": ("0000:05:10.0", "0000:05:10.4", "0000:05:11.0", "0000:05:11.4"),
    "0000:05:00.1": ("0000:05:10.1", "0000:05:10.5", "0000:05:11.1", "0000:05:11.5"),
}
NUMA = {"0000:05:00.0": 0, "0000:05:00.1": 1}
OFFSET, STRIDE, TOTAL_VFS = 128, 4, 7
LAYOUT_FILES = ("sriov_offset", "sriov_stride", "sriov_vf_device")

FIELDS = testing.FACT_KEYS
_KIND, _FLAGS = (_walk.DEVICE_FIELDS.index(n) for n in ("kind", "flags"))


def extract(dest: str) -> Path:
    """Extract the capture's ``sys`` folder into `dest`, keeping its (relative) symlinks.

    The 'data' filter keeps relative links that stay inside the destination, which all of this
    capture's do; should it refuse one, the 'tar' filter (links kept as they are) is used.
    """
    with tarfile.open(CAPTURE) as tar:
        members = [m for m in tar.getmembers() if m.name == "sys" or m.name.startswith("sys/")]
        links = [m.name for m in members if m.issym()]
        if not hasattr(tarfile, "data_filter"):  # Python < 3.11.4: no filters, links as they are
            tar.extractall(dest, members=members)
        else:
            try:
                tar.extractall(dest, members=members, filter="data")
            except tarfile.FilterError:
                shutil.rmtree(os.path.join(dest, "sys"), ignore_errors=True)
                tar.extractall(dest, members=members, filter="tar")
    assert links and all(os.path.islink(os.path.join(dest, n)) for n in links)
    return Path(dest) / "sys"


@pytest.fixture(scope="module")
def capture() -> Iterator[Path]:
    with scratch_dir("ghw") as d:
        yield extract(d)


@pytest.fixture(scope="module")
def capture_without_layout() -> Iterator[Path]:
    with scratch_dir("ghw-old") as d:
        root = extract(d)
        for pf in PFS:
            for name in LAYOUT_FILES:
                (root / "bus" / "pci" / "devices" / pf / name).unlink()
        yield root


# -- what the capture's own files say --------------------------------------------------------------

def _text(p: Path) -> str | None:
    try:
        return p.read_text().strip()
    except OSError:
        return None


def _link_name(p: Path) -> str | None:
    return os.path.basename(os.readlink(p)) if p.is_symlink() else None


def from_files(root: Path) -> dict[str, dict[str, Any]]:
    """Facts of every function, read straight from the capture (independent of both scanners)."""
    base = root / "bus" / "pci" / "devices"
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(os.listdir(base)):
        d = base / name
        total = _text(d / "sriov_totalvfs")
        virtfns = {int(e[6:]): _link_name(d / e) for e in os.listdir(d) if e.startswith("virtfn")}
        numa = int(_text(d / "numa_node") or -1)
        vf_dev = _text(d / "sriov_vf_device")
        out[name] = {
            "vendor_id": "%04x" % int(_text(d / "vendor"), 16),
            "product_id": "%04x" % int(_text(d / "device"), 16),
            "class_code": int(_text(d / "class"), 16),
            "numa_node": numa if numa >= 0 else None,
            "driver": _link_name(d / "driver"),
            "physfn": _link_name(d / "physfn"),
            "total_vfs": int(total) if total is not None else None,
            "virtfns": virtfns,
            "sriov_offset": _text(d / "sriov_offset"),
            "sriov_stride": _text(d / "sriov_stride"),
            "vf_device": "%04x" % int(vf_dev, 16) if vf_dev else None,
            "netdevs": tuple(sorted(os.listdir(d / "net"))) if (d / "net").is_dir() else (),
        }
    return out


def facts(inv: Any) -> list[dict[str, Any]]:
    return [{k: getattr(dev, k) for k in FIELDS} for dev in inv.values()]


def test_the_capture_is_what_the_notice_says(capture: Path) -> None:
    files = from_files(capture)
    pfs = sorted(a for a, f in files.items() if (f["total_vfs"] or 0) > 0)
    assert tuple(pfs) == PFS
    for pf in PFS:
        f = files[pf]
        assert (f["vendor_id"], f["product_id"], f["driver"]) == ("8086", "1521", "igb")
        assert (f["sriov_offset"], f["sriov_stride"], f["total_vfs"]) == (
            str(OFFSET), str(STRIDE), TOTAL_VFS)
        assert f["vf_device"] == "1520" and f["numa_node"] == NUMA[pf]
        assert f["virtfns"] == dict(enumerate(VFS[pf]))
    vfs = sorted(a for a, f in files.items() if f["physfn"])
    assert vfs == sorted(v for vs in VFS.values() for v in vs)


def test_computed_vf_addresses_equal_the_real_links(capture: Path) -> None:
    """SR-IOV: VF RID = PF RID + First VF Offset + N x VF Stride (the kernel's virtfn<N>)."""
    files = from_files(capture)
    for pf in PFS:
        f = files[pf]
        computed = [testing.vf_address(pf, int(f["sriov_offset"]), int(f["sriov_stride"]), n)
                    for n in range(len(f["virtfns"]))]
        assert computed == [f["virtfns"][n] for n in range(len(f["virtfns"]))] == list(VFS[pf])


def _check_inventory(inv: Any, files: dict[str, dict[str, Any]]) -> None:
    assert list(inv) == sorted(files)
    assert [d.address for d in inv.pfs()] == list(PFS)
    assert len(inv.vfs()) == 8
    for pf in PFS:
        dev, f = inv[pf], files[pf]
        assert (dev.dev_type, dev.vendor_id, dev.product_id, dev.driver) == (
            "type-PF", "8086", "1521", "igb")
        assert (dev.vendor_id, dev.product_id, dev.driver) == (
            f["vendor_id"], f["product_id"], f["driver"])
        assert dev.numa_node == f["numa_node"] == NUMA[pf]
        assert dev.total_vfs == f["total_vfs"] == TOTAL_VFS
        assert dev.num_vfs == len(f["virtfns"]) == 4
        assert dev.vf_product_id == "1520"
        assert dev.netdevs == () and dev.mac_address is None  # empty net/ in the capture
        assert dev.card_serial_number is None  # no VPD captured
        vfs = inv.vfs(pf)
        assert [v.address for v in vfs] == [f["virtfns"][n] for n in range(4)] == list(VFS[pf])
        for n, vf in enumerate(vfs):
            vf_files = files[vf.address]
            assert vf.dev_type == "type-VF" and vf.vf_num == n
            assert vf.parent_addr == vf_files["physfn"] == pf
            assert (vf.vendor_id, vf.product_id) == (vf_files["vendor_id"], vf_files["product_id"])
            assert (vf.vendor_id, vf.product_id) == ("8086", "1520")
            assert vf.class_code == vf_files["class_code"] == 0x020000
            assert vf.numa_node == vf_files["numa_node"] == NUMA[pf]
            assert vf.driver == vf_files["driver"] == "igbvf"
            assert vf.pf_mac_address is None and vf.card_serial_number is None
    # every other function: IDs, class, NUMA and driver as the files say
    for a, f in files.items():
        dev = inv[a]
        assert (dev.vendor_id, dev.product_id, dev.class_code, dev.numa_node, dev.driver,
                dev.netdevs) == (f["vendor_id"], f["product_id"], f["class_code"],
                                 f["numa_node"], f["driver"], f["netdevs"])


def test_scan_finds_both_pfs_and_all_eight_vfs(capture: Path) -> None:
    inv = scan(capture)
    _check_inventory(inv, from_files(capture))
    assert inv.problems == ()
    for a in PFS + VFS[PFS[0]] + VFS[PFS[1]]:
        assert not any(p.startswith("virtfn") for p in inv[a].problems), inv[a].problems
    ref = reference.scan(capture)
    assert facts(inv) == ref
    assert inv.to_nova() == reference.to_nova(ref)


def test_the_fast_path_was_taken(capture: Path, capture_without_layout: Path) -> None:
    """All eight VFs came from offset/stride (first VF read and verified, last link checked)."""
    w = _walk.walk(capture)
    vf_rows = [r for r in w.devices if r[_KIND] == _walk.KIND_VF]
    assert len(vf_rows) == 8
    assert all(r[_FLAGS] & _walk.F_INFERRED for r in vf_rows)
    assert sum(bool(r[_FLAGS] & _walk.F_VERIFIED) for r in vf_rows) == 2  # one per PF
    assert not any(r[_FLAGS] & _walk.F_LINKED for r in vf_rows)
    slow = _walk.walk(capture_without_layout)
    slow_vfs = [r for r in slow.devices if r[_KIND] == _walk.KIND_VF]
    assert all(r[_FLAGS] & _walk.F_LINKED and not r[_FLAGS] & _walk.F_INFERRED for r in slow_vfs)
    # The fast path resolved two virtfn links per PF; the fallback one per link (and each VF's
    # driver link) -- at least one readlink more per VF.
    fast, links = scan(capture).counters, scan(capture_without_layout).counters
    assert links["readlinkat"] - fast["readlinkat"] >= 8
    assert links["total"] > fast["total"]


def test_scan_without_offset_and_stride_falls_back_to_the_links(capture: Path,
                                                                capture_without_layout: Path
                                                                ) -> None:
    files = from_files(capture_without_layout)
    assert all(files[pf]["sriov_offset"] is None and files[pf]["vf_device"] is None for pf in PFS)
    inv = scan(capture_without_layout)
    # Same devices, numbers, parents, IDs; the VF product ID now comes from the VFs themselves.
    _check_inventory(inv, files)
    assert facts(inv) == facts(scan(capture))
    for pf in PFS:
        notes = [p for p in inv[pf].problems if p.startswith("virtfn: ")]
        assert len(notes) == 1 and "fell back" in notes[0] and "sriov_offset" in notes[0]
    ref = reference.scan(capture_without_layout)
    assert facts(inv) == ref
    assert inv.to_nova() == reference.to_nova(ref) == scan(capture).to_nova()


def test_read_vpd_false_changes_nothing_here(capture: Path) -> None:
    assert facts(scan(capture, read_vpd=False)) == facts(scan(capture))


# -- the command -----------------------------------------------------------------------------------

def test_cli_scan_prints_the_capture(capture: Path) -> None:
    proc = cli("scan", "--sysfs", str(capture))
    assert proc.returncode == 0 and proc.stderr == ""
    out = proc.stdout
    assert "Traceback" not in out
    n = len(from_files(capture))
    assert out.startswith(f"{n} PCI functions: 2 PFs, 8 VFs, 0 cards with a serial number")
    pf_lines = [line for line in out.splitlines() if line.strip().startswith("PF ")]
    assert len(pf_lines) == 2
    for line, pf in zip(pf_lines, PFS):
        assert pf in line and "8086:1521" in line and "igb" in line
        assert "VFs 4/7" in line and "(1520)" in line and f"NUMA {NUMA[pf]}" in line
    for pf in PFS:  # VFs summarised: first and last, with their numbers
        assert f"{VFS[pf][0]} (vf 0) .. {VFS[pf][-1]} (vf 3)" in out
    assert VFS[PFS[0]][1] not in out  # ... not listed one by one


def test_cli_scan_all_lists_every_vf(capture: Path) -> None:
    proc = cli("scan", "--sysfs", str(capture), "--all")
    assert proc.returncode == 0
    out = proc.stdout
    for pf in PFS:
        for n, vf in enumerate(VFS[pf]):
            line = [x for x in out.splitlines() if vf in x and "vf " in x]
            assert len(line) == 1 and line[0].split()[:3] == ["vf", str(n), vf], line
            assert "igbvf" in line[0]


@pytest.mark.parametrize("layout", [True, False], ids=["offset-stride", "links"])
def test_cli_scan_nova_equals_to_nova(layout: bool, capture: Path,
                                      capture_without_layout: Path) -> None:
    root = capture if layout else capture_without_layout
    proc = cli("scan", "--sysfs", str(root), "--nova")
    assert proc.returncode == 0
    got = json.loads(proc.stdout)
    assert got == json.loads(json.dumps(scan(root).to_nova()))
    vfs = [d for d in got if d["dev_type"] == "type-VF"]
    assert len(vfs) == 8
    assert {d["parent_addr"] for d in vfs} == set(PFS)
    assert all(d["vendor_id"] == "8086" and d["product_id"] == "1520" for d in vfs)
    # No PF MAC and no VPD in the capture: no capabilities to report.
    assert all("capabilities" not in d for d in got)
