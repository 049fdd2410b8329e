"""The libvirt path, the way Nova takes it, against `fastvpd.scan` on the same 8x512 host.

The host is `fastvpd.testing.dpu_host` with 4 cards x 2 PFs x 512 VFs (each VF with a netdev),
served by libvirt's test driver from the XML `fastvpd.testing.write_node_device_xml` writes for
it. Each case produces Nova's device dicts:

- fastvpd.scan: ``fastvpd.scan(root).to_nova()``;
- libvirt+inventory_from_libvirt: ``listAllDevices`` with the PCI and net flags, one ``XMLDesc``
  per device and the parsing into an Inventory (`fastvpd.libvirt`), then ``to_nova()``; the
  benchmark first checks that it gives the scan's dicts;
- libvirt+ElementTree: the same listing and ``XMLDesc`` calls, each document parsed by
  ElementTree and nothing more: the floor of any path through libvirt, before any fact is read.

This is a lower bound on libvirt's real cost: the test driver runs in this process and answers
``XMLDesc`` from the document it loaded, so it reads no sysfs and no VPD and makes no round trip
to libvirtd, where a real libvirtd does all three for every ``XMLDesc`` (and Nova adds a
``listCaps`` call per device and its own sysfs lookups).
Run: python benchmarks/report.py bench_libvirt.py  (writes benchmarks/RESULTS.md)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import fastvpd
from fastvpd import testing

from fastvpd.libvirt import inventory_from_libvirt
from tests.support import require

libvirt = require("libvirt", "libvirt-python")

CARDS, PFS, VFS = 4, 2, 512
GROUP = f"libvirt 8x512 ({CARDS * PFS} PFs, {CARDS * PFS * VFS} VFs; libvirt's test driver)"
FLAGS = (libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV
         | libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_NET)


@pytest.fixture(scope="module")
def served() -> Any:
    """The host's tree on tmpfs (when there is one) and a test-driver connection serving it."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    tmp = tempfile.mkdtemp(prefix="fastvpd-bench-libvirt-", dir=base)
    try:
        root = os.path.join(tmp, "sys")
        testing.dpu_host(root, cards=CARDS, pfs_per_card=PFS, vfs_per_pf=VFS)
        libvirt.virEventRegisterDefaultImpl()
        libvirt.registerErrorHandler(lambda *_: None, None)
        conn = libvirt.open(testing.write_node_device_xml(root, os.path.join(tmp, "node.xml")))
        try:
            yield root, conn
        finally:
            conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def scan_nova(root: str) -> list[dict[str, Any]]:
    return fastvpd.scan(root).to_nova()


def libvirt_nova(conn: Any) -> list[dict[str, Any]]:
    return inventory_from_libvirt(conn).to_nova()


def libvirt_elementtree(conn: Any) -> list[ET.Element]:
    return [ET.fromstring(d.XMLDesc(0)) for d in conn.listAllDevices(FLAGS)]


CASES = ["fastvpd.scan", "libvirt+inventory_from_libvirt", "libvirt+ElementTree"]


@pytest.mark.parametrize("impl", CASES)
def test_libvirt(benchmark: Any, served: Any, impl: str) -> None:
    root, conn = served
    benchmark.group = GROUP
    n_devices = len(conn.listAllDevices(FLAGS))
    if impl == "fastvpd.scan":
        inv = fastvpd.scan(root)
        benchmark.extra_info["syscalls"] = inv.counters["total"]
        result = benchmark(scan_nova, root)
        assert len(result) == CARDS * PFS * (VFS + 1)
    elif impl == "libvirt+inventory_from_libvirt":
        assert libvirt_nova(conn) == scan_nova(root)  # the same output, checked in the run
        benchmark.extra_info["node devices"] = n_devices
        benchmark.extra_info["XMLDesc calls"] = n_devices
        result = benchmark.pedantic(libvirt_nova, args=(conn,), rounds=7)
        assert len(result) == CARDS * PFS * (VFS + 1)
    else:
        benchmark.extra_info["node devices"] = n_devices
        result = benchmark.pedantic(libvirt_elementtree, args=(conn,), rounds=7)
        assert len(result) == n_devices
