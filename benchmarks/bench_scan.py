"""`fastvpd.scan(root).to_nova()` against its baselines and its floor on DPU hosts, side by side.

- fastvpd: ``scan(root).to_nova()``, what a compute agent reports; its two halves apart
  (``fastvpd-scan``: ``scan(root)``; ``fastvpd-to_nova``: ``to_nova()`` of one Inventory, called
  again and again), to set against the floor's two; ``fastvpd-bare``: the whole without the
  agent-sized heap, to show what the heap costs;
- python-linear: a straightforward full scan in Python (tests/reference/scan.py), same output;
- nova-like: Nova's per-VF lookups (benchmarks/baselines.py), quadratic per PF; 8x512 only;
- the floor (benchmarks/floor/): ``floor-list`` and ``floor-probe``, the unavoidable system calls
  in C with the ``virtfn`` links listed or probed, and ``floor-builder``, the same dicts built in
  Cython from precomputed strings. The floor is the cheaper C variant plus the builder
  (report.py adds them up).

Every case but fastvpd-bare runs with an agent-sized heap alive (`AGENT_HEAP` long-lived dicts
each holding a list, as a nova-compute process has) and the cyclic GC enabled as an application
leaves it: a full collection costs more the bigger the heap, and a scan that creates many
tracked containers per VF triggers them. Every output is checked against the Nova dicts of the
tree as built (`BuiltHost.expected()` through tests/reference/scan.py's `to_nova`), key order
included. Memory (tracemalloc, outside the timings): bytes and blocks per VF still allocated after
``scan()`` (the Inventory), after ``to_nova()`` and after the floor builder.

The 32x2048 host (65536 VFs, two PCI domains) takes about 1.2 million inodes and 2.5 GB of tmpfs: it
is built once per session, after the smaller hosts are removed, and always removed at the end.
Run: python benchmarks/report.py bench_scan.py   (writes benchmarks/RESULTS.md)
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import re
import shutil
import tempfile
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

import fastvpd
from benchmarks.baselines import nova_like_scan
from fastvpd import testing
from tests.reference import scan as reference

# (cards, PFs per card, VFs per PF): 8 PFs x 512 VFs, 16 x 1024 and 32 x 2048.
SHAPES = {"8x512": (4, 2, 512), "16x1024": (8, 2, 1024), "32x2048": (16, 2, 2048)}
DOMAINS = 2  # 32x2048 needs 272 buses: the host spills into PCI domain 0001
AGENT_HEAP = 250_000  # long-lived dicts, each holding a list: 500k tracked containers
INODES_PER_VF = 20  # what dpu_host makes per VF (files, links, netdev), with a margin
BASE = "/dev/shm" if os.path.isdir("/dev/shm") else None
PREFIX = "fastvpd-bench-"

_hosts: dict[str, testing.BuiltHost] = {}
_expected: dict[str, list[dict[str, Any]]] = {}


def _remove_hosts(keep: str | None = None) -> None:
    for shape in [s for s in _hosts if s != keep]:
        shutil.rmtree(_hosts.pop(shape).root, ignore_errors=True)
        _expected.pop(shape, None)


def _remove_stale() -> None:
    """Trees that an earlier benchmark process left behind (it was killed): named by its pid."""
    if BASE is None:
        return
    for name in os.listdir(BASE):
        m = re.match(re.escape(PREFIX) + r"(\d+)-", name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(BASE, name), ignore_errors=True)
        except PermissionError:
            pass


atexit.register(_remove_hosts)


def host(shape: str) -> testing.BuiltHost:
    """Build the host of `shape` once, on tmpfs, after removing the other shapes' hosts (the cases
    run shape by shape, and the largest needs most of the room)."""
    if shape not in _hosts:
        _remove_hosts()
        _remove_stale()
        cards, pfs, vfs = SHAPES[shape]
        need = cards * pfs * (vfs + 1) * INODES_PER_VF
        where = BASE or tempfile.gettempdir()
        free = os.statvfs(where).f_favail
        if free < need:
            pytest.skip(f"{shape} needs about {need} free inodes in {where}, {free} are free")
        root = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{shape}-", dir=BASE)
        try:
            _hosts[shape] = testing.dpu_host(root, cards=cards, pfs_per_card=pfs,
                                             vfs_per_pf=vfs, domains=DOMAINS,
                                             vf_driver="vfio-pci", vf_netdevs=False)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        _expected[shape] = reference.to_nova(_hosts[shape].expected())
    return _hosts[shape]


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    _remove_hosts()


class _Heap:
    """The agent-sized heap: made once, kept alive, dropped only for fastvpd-bare."""

    objects: list[dict[str, list[int]]] | None = None

    def ensure(self) -> None:
        if self.objects is None:
            self.objects = [{"items": [i]} for i in range(AGENT_HEAP)]
            gc.collect()  # long-lived, as in a running agent: in the oldest generation

    def drop(self) -> None:
        self.objects = None
        gc.collect()


HEAP = _Heap()


def _same(got: list[dict[str, Any]], want: list[dict[str, Any]], what: str) -> None:
    assert got == want and json.dumps(got) == json.dumps(want), f"{what}: not Nova's dicts"


def _retained(make: Callable[[], Any]) -> tuple[Any, int, int]:
    """What `make` returns and the bytes and blocks it left allocated (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        obj = make()
        gc.collect()
        stats = tracemalloc.take_snapshot().statistics("filename")
    finally:
        tracemalloc.stop()
    return obj, sum(s.size for s in stats), sum(s.count for s in stats)


def fastvpd_nova(root: str) -> list[dict[str, Any]]:
    return fastvpd.scan(root).to_nova()


def linear_nova(root: str) -> list[dict[str, Any]]:
    return reference.to_nova(reference.scan(root))


IMPLS = ("fastvpd", "fastvpd-scan", "fastvpd-to_nova", "floor-list", "floor-probe",
         "floor-builder", "python-linear", "nova-like", "fastvpd-bare")
# nova-like takes minutes from 16x1024 on (quadratic per PF): measured at 8x512 only.
CASES = [(shape, impl) for shape in SHAPES for impl in IMPLS
         if not (impl == "nova-like" and shape != "8x512")]


@pytest.mark.parametrize("shape, impl", CASES)
def test_scan(benchmark, request, shape, impl):
    built = host(shape)
    root = built.root
    cards, pfs, vfs = SHAPES[shape]
    n_vfs = cards * pfs * vfs
    want = _expected[shape]
    benchmark.group = f"scan {shape} ({cards * pfs} PFs, {n_vfs} VFs)"
    info = benchmark.extra_info
    info.update(impl=impl, shape=shape, vfs=n_vfs)
    if impl == "fastvpd-bare":
        HEAP.drop()
    else:
        HEAP.ensure()
    info["heap"] = 0 if HEAP.objects is None else 2 * AGENT_HEAP

    if impl in ("fastvpd", "fastvpd-bare"):
        inv = fastvpd.scan(root)
        info["syscalls"] = inv.counters["total"]
        info["syscalls per VF"] = round(inv.counters["total"] / n_vfs, 4)
        del inv
        result = benchmark(fastvpd_nova, root)
        _same(result, want, impl)
        if impl == "fastvpd":
            inv, size, blocks = _retained(lambda: fastvpd.scan(root))
            info["Inventory B/VF"] = round(size / n_vfs, 1)
            info["Inventory blocks/VF"] = round(blocks / n_vfs, 3)
            _, size, blocks = _retained(inv.to_nova)
            info["to_nova B/VF"] = round(size / n_vfs, 1)
            info["to_nova blocks/VF"] = round(blocks / n_vfs, 3)
    elif impl == "fastvpd-scan":
        inv = benchmark(fastvpd.scan, root)
        assert len(inv) == len(want)
    elif impl == "fastvpd-to_nova":
        inv = fastvpd.scan(root)
        result = benchmark(inv.to_nova)
        _same(result, want, impl)
    elif impl in ("floor-list", "floor-probe"):
        fl = request.getfixturevalue("floor")
        rb = os.fsencode(root)
        probe = impl == "floor-probe"
        rows = benchmark(fl.scan, rb, probe)
        assert rows == len(want)
        info["syscalls"] = fl.counters()["total"]
        info["syscalls per VF"] = round(fl.counters()["total"] / n_vfs, 4)
    elif impl == "floor-builder":
        fl = request.getfixturevalue("floor")
        runs, n_rows = fl.runs(os.fsencode(root))
        result = benchmark(fl.build, runs, n_rows)
        _same(result, want, impl)
        del result
        _, size, blocks = _retained(lambda: fl.build(runs, n_rows))
        info["builder B/VF"] = round(size / n_vfs, 1)
        info["builder blocks/VF"] = round(blocks / n_vfs, 3)
    elif impl == "python-linear":
        result = benchmark.pedantic(linear_nova, args=(root,), rounds=7 if n_vfs <= 4096 else 3)
        _same(result, want, impl)
    else:
        facts = benchmark.pedantic(nova_like_scan, args=(root,), rounds=3)
        assert len(facts) == n_vfs
