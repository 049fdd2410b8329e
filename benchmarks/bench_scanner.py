"""The periodic Scanner against a cold scan, on a DPU host of 16 PFs x 1024 VFs (vfio-pci VFs).

- cold: what an agent without a Scanner does each period: `fastvpd.scan(root)`, and with Nova's
  dicts `scan(root).to_nova()`;
- refresh (a) with ``changed=None`` (no udev monitor: the listings are compared too) and (b) with
  ``changed=set()`` (a monitor saw no PCI event: the PFs are probed) on an unchanged host;
- a refresh after one PF's VF count changed (1024 <-> 1000 VFs, alternately, outside the timing);
- the first refresh of a new Scanner whose VPD reader takes 2 s per read, with the default 0.5 s
  deadline (it returns at the deadline; the serials come later).
Every case checks its result; syscalls per refresh are in the notes. Run: python
benchmarks/report.py
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

import fastvpd
from fastvpd import testing

CARDS, PFS, VFS = 8, 2, 1024
_host: list[testing.BuiltHost] = []


def host() -> testing.BuiltHost:
    if not _host:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        root = tempfile.mkdtemp(prefix="fastvpd-bench-scanner-", dir=base)
        _host.append(testing.dpu_host(root, cards=CARDS, pfs_per_card=PFS, vfs_per_pf=VFS,
                                      vf_driver="vfio-pci", vf_netdevs=False))
    return _host[0]


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    for h in _host:
        shutil.rmtree(h.root, ignore_errors=True)


GROUP = f"refresh of a {CARDS * PFS}x{VFS} host ({CARDS * PFS * VFS} VFs)"


@pytest.mark.parametrize("case", ["scan", "scan+to_nova"])
def test_cold(benchmark, case: str) -> None:
    h = host()
    benchmark.group = GROUP
    if case == "scan":
        inv = benchmark(fastvpd.scan, h)
    else:
        inv = benchmark(lambda: fastvpd.scan(h).to_nova())
    benchmark.extra_info["syscalls"] = fastvpd.scan(h).counters["total"]
    assert len(inv) == len(h.addresses)


def test_listing_floor(benchmark, floor) -> None:
    """What re-listing bus/pci/devices costs by itself (getdents64 only, in C): no refresh with
    ``changed=None`` can cost less."""
    h = host()
    benchmark.group = GROUP
    n = benchmark(floor.list_bus, os.fsencode(h.root))
    assert n == len(h.addresses)
    benchmark.extra_info["syscalls"] = floor.counters()["total"]


@pytest.mark.parametrize("changed", ["None", "set()"])
def test_refresh_unchanged(benchmark, changed: str) -> None:
    h = host()
    benchmark.group = GROUP
    hint = None if changed == "None" else set()
    with fastvpd.Scanner(h) as scanner:
        first = scanner.refresh()
        result = benchmark(scanner.refresh, hint)
        assert result.inventory is first.inventory and result.changed == ()
        benchmark.extra_info["syscalls"] = result.syscalls
        benchmark.extra_info["walks"] = scanner.walks


def test_refresh_after_one_pf_changed(benchmark) -> None:
    h = host()
    benchmark.group = GROUP
    pf = h.pfs[5]
    with fastvpd.Scanner(h) as scanner:
        scanner.refresh()
        counts = iter([VFS - 24, VFS] * 100)

        def change() -> None:
            testing.set_vf_count(h, pf, next(counts))

        results: list[fastvpd.ScanResult] = []
        benchmark.pedantic(lambda: results.append(scanner.refresh(set())), setup=change,
                           rounds=9)
        last = results[-1]
        assert pf in last.changed and len(last.added) + len(last.removed) == 24
        benchmark.extra_info["syscalls"] = last.syscalls
        testing.set_vf_count(h, pf, VFS)


def test_first_refresh_with_a_slow_vpd_reader(benchmark) -> None:
    h = host()
    benchmark.group = GROUP

    def slow(path: str) -> bytes:
        time.sleep(2.0)
        return fastvpd.scanner.read_vpd_file(path)

    scanners: list[fastvpd.Scanner] = []

    def first_refresh() -> fastvpd.ScanResult:
        scanners.append(fastvpd.Scanner(h, vpd_deadline=0.5, vpd_reader=slow))
        return scanners[-1].refresh()

    result = benchmark.pedantic(first_refresh, rounds=3)
    assert set(result.pending_vpd) == set(h.pfs)
    benchmark.extra_info["deadline"] = "0.5 s"
    benchmark.extra_info["syscalls"] = result.syscalls
    for s in scanners:
        s.close()
