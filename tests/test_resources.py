"""Leaks and resources: 100,000 parses and 1,000 scans in one process leave memory and fds flat.

A compute agent parses and scans for months without a restart. After a warm-up (the first tenth
of the iterations: caches, interned keywords, allocator arenas) four measures must stay within
stated bounds up to the last iteration, measured after a full garbage collection:

- open file descriptors: exactly as many (a scan that leaks one fd leaks 1,000 here);
- RSS: grows by at most `RSS_BOUND` (a leak of the smallest walker result per scan, or of one
  Python object per parse, is far more);
- Python's allocated blocks (``sys.getallocatedblocks()``: objects and PyMem buffers, Cython's
  included): grow by at most `BLOCKS_BOUND` (one leaked object per scan would be 900, per
  parse 90,000);
- bytes in use in the C heap (glibc ``mallinfo2``: the walker's results and buffers, big bytes
  objects): grow by at most `MALLOC_BOUND` (one leaked 100-byte buffer per scan would be 90 KB).

The host is sized so that the whole module takes seconds; exactness of what is reported is the
other tests' business. Small leaks that no bound here can see are LeakSanitizer's and valgrind's
(`.ci/run`, README "Reliability").
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import fastvpd
from fastvpd import SysfsError, testing
from fastvpd.testing import DpuSpec, HostSpec, NicSpec, OtherSpec
from tests.support import scratch_dir

RSS_BOUND = 2 * 1024 * 1024
BLOCKS_BOUND = 200
MALLOC_BOUND = 64 * 1024

CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus" / "vpd"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_libc = ctypes.CDLL(None)
if hasattr(_libc, "__asan_init"):
    # .ci/run also runs the suite under AddressSanitizer: its allocator keeps freed memory in
    # quarantine (RSS grows by design) and replaces malloc and pymalloc, so these bounds, which
    # are about the regular build, measure nothing there. The plain suite runs them.
    pytest.skip("the bounds are the regular allocator's; under AddressSanitizer its own "
                "allocator and quarantine stand in", allow_module_level=True)
if not hasattr(_libc, "mallinfo2"):
    pytest.skip("glibc's mallinfo2 (glibc 2.33+) is missing", allow_module_level=True)
_libc.mallinfo2.restype = _MallInfo2


def measures() -> dict[str, int]:
    gc.collect()
    info = _libc.mallinfo2()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return {"fds": len(os.listdir("/proc/self/fd")), "rss": rss,
            "blocks": sys.getallocatedblocks(), "malloc": info.uordblks + info.hblkhd}


def assert_flat(work: Callable[[int], None], iterations: int) -> dict[str, int]:
    """Run work(i) `iterations` times; the measures after the warm-up, at the middle and at the
    end stay within the bounds. Returns the growth from warm-up to the end."""
    warm = iterations // 10
    for i in range(warm):
        work(i)
    base = measures()
    growth: dict[str, int] = {}
    for start, stop in ((warm, iterations // 2), (iterations // 2, iterations)):
        for i in range(start, stop):
            work(i)
        now = measures()
        growth = {k: now[k] - base[k] for k in now}
        print(f"\nafter {stop} of {iterations}: {growth}")
        assert growth["fds"] == 0, growth
        assert growth["rss"] <= RSS_BOUND, growth
        assert growth["blocks"] <= BLOCKS_BOUND, growth
        assert growth["malloc"] <= MALLOC_BOUND, growth
    return growth


def test_100_000_parses_leave_memory_flat() -> None:
    blobs = [p.read_bytes() for p in sorted(CORPUS.iterdir())]
    assert len(blobs) > 40

    def parse(i: int) -> None:
        data = blobs[i % len(blobs)]
        vpd = fastvpd.parse_vpd(data)
        (vpd.serial_number, vpd.name, vpd.problems, vpd.read_only, vpd.checksum_ok)
        if i % 8 == 0:
            vpd.to_dict()
            fastvpd.parse_vpd(memoryview(bytearray(data)))
        try:
            fastvpd.parse_vpd(data, strict=True)
        except fastvpd.VpdFormatError:
            pass
        if i % 64 == 0:
            fastvpd.build_vpd("x", [("SN", f"S{i}")])

    assert_flat(parse, 100_000)


@pytest.fixture(scope="module")
def hostile_host() -> Iterator[testing.BuiltHost]:
    """About 300 functions: VFs computed and VFs read link by link, and what goes wrong every
    scan (a vanished VF, a garbage MAC read with the details, a FIFO, a bad checksum)."""
    with scratch_dir("resources") as d:
        host = testing.build_host(os.path.join(d, "sys"), HostSpec(
            dpus=[DpuSpec(pfs=2, vfs_per_pf=64), DpuSpec(pfs=2, vfs_per_pf=64),
                  DpuSpec(pfs=2, vfs_per_pf=32, sriov_files=False)],
            nics=[NicSpec(vpd=True, functions=2)], others=[OtherSpec()], bridges=True))
        pf = host.pfs[0]
        vfs = host.functions[pf].vfs
        testing.dangling_device_link(host, vfs[5])
        testing.garbage_attribute(host, vfs[7], f"net/{host.functions[vfs[7]].netdevs[0]}/address")
        testing.fifo_attribute(host, host.pfs[-1], "numa_node")
        testing.duplicate_virtfn(host, host.pfs[-1], 3, 1)
        testing.set_attribute(host, host.pfs[2], "vpd", fastvpd.build_vpd("x", [("SN", "A")])[:-3])
        yield host


def test_1000_scans_with_nova_and_vf_details_leave_memory_and_fds_flat(hostile_host) -> None:
    root = hostile_host.root
    vfs = len(hostile_host.vfs)

    def scan(i: int) -> None:
        inv = fastvpd.scan(root)
        assert len(inv.to_nova()) == len(hostile_host.functions)
        details = [(d.driver, d.netdevs, d.problems) for d in inv.vfs()]  # loads them all
        assert len(details) == vfs and sum(bool(p) for _, _, p in details) >= 4
        if i % 10 == 0:
            with pytest.raises(SysfsError):
                fastvpd.scan(os.path.join(root, "missing"))
            fastvpd.scan(os.fsencode(root), read_vpd=False, vf_vpd=True).pfs()

    assert_flat(scan, 1000)
