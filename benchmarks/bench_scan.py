"""`fastvpd.scan` against the pure-Python baselines on synthetic DPU hosts, side by side.

- python-linear: a straightforward full scan in Python (tests/reference/scan.py), same output;
- nova-like: Nova's per-VF lookups (benchmarks/baselines.py), quadratic per PF; up to 8x512.
Each case produces what a compute agent reports: Nova's device dicts (VF number, PF MAC, serial).
Run: python benchmarks/report.py  (writes benchmarks/RESULTS.md)
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

import fastvpd
from benchmarks.baselines import nova_like_scan
from fastvpd import testing
from tests.reference import scan as reference

# (cards, PFs per card, VFs per PF): 8x64, 8x512 and 16x1024 VFs.
SHAPES = {"8x64": (4, 2, 64), "8x512": (4, 2, 512), "16x1024": (8, 2, 1024)}
_hosts: dict[str, str] = {}


def host(shape: str) -> str:
    """Build each host once per session, on tmpfs when there is one (disk file creation is slow)."""
    if shape not in _hosts:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        root = tempfile.mkdtemp(prefix=f"fastvpd-bench-{shape}-", dir=base)
        cards, pfs, vfs = SHAPES[shape]
        testing.dpu_host(root, cards=cards, pfs_per_card=pfs, vfs_per_pf=vfs)
        _hosts[shape] = root
    return _hosts[shape]


@pytest.fixture(scope="session", autouse=True)
def _cleanup():
    yield
    for root in _hosts.values():
        shutil.rmtree(root, ignore_errors=True)


def fastvpd_nova(root: str) -> list[dict]:
    return fastvpd.scan(root).to_nova()


def linear_nova(root: str) -> list[dict]:
    return reference.to_nova(reference.scan(root))


# nova-like takes minutes at 16x1024 (quadratic per PF): measured up to 8x512 only.
CASES = [(shape, impl) for shape in SHAPES for impl in ("fastvpd", "python-linear", "nova-like")
         if not (impl == "nova-like" and shape == "16x1024")]


@pytest.mark.parametrize("shape, impl", CASES)
def test_scan(benchmark, shape, impl):
    root = host(shape)
    cards, pfs, vfs = SHAPES[shape]
    n_vfs = cards * pfs * vfs
    benchmark.group = f"scan {shape} ({cards * pfs} PFs, {n_vfs} VFs)"
    if impl == "fastvpd":
        assert fastvpd_nova(root) == linear_nova(root)  # the same output, checked in the run
        inv = fastvpd.scan(root)
        syscalls = inv.counters["total"]
        benchmark.extra_info["syscalls"] = syscalls
        benchmark.extra_info["syscalls per VF"] = round(syscalls / n_vfs, 4)
        result = benchmark(fastvpd_nova, root)
        assert len(result) == len(inv)
    elif impl == "python-linear":
        result = benchmark.pedantic(linear_nova, args=(root,), rounds=7 if n_vfs <= 4096 else 3)
        assert len(result) > n_vfs
    else:
        facts = benchmark.pedantic(nova_like_scan, args=(root,), rounds=3 if n_vfs > 512 else 7)
        assert len(facts) == n_vfs
