"""Binding profiles and device-spec matching: fastvpd.profile against Nova 34's own code.

- profiles: the binding:profile of every VF of a DPU host. fastvpd: `fastvpd.binding_profile`
  on the scan's Inventory. Nova: ``API._get_pci_device_profile`` on its ``objects.PciDevice`` of
  each VF (built beforehand, as Nova's tracker holds them), with a device spec giving
  ``physical_network``.
- match: ten ``[pci] device_spec`` entries (vendor/product, globs, regexes, one remote_managed)
  against every device dict of the host, first match wins as in ``Whitelist.device_assignable``.
  fastvpd: `DeviceSpec.match`; Nova: ``PciDeviceSpec.match``; on the same dicts.
Both at 8x512 and 16x1024 VFs, to show the cost per VF stays the same (linear). The same results
are checked inside the timed cases. Run: python benchmarks/report.py
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from typing import Any

import pytest

import fastvpd
from fastvpd import testing
from fastvpd.profile import DeviceSpec, load_device_specs

SHAPES = {"8x512": (4, 2, 512), "16x1024": (8, 2, 1024)}
SPECS = [
    {"vendor_id": "8086", "product_id": "1533"},
    {"address": "0000:7f:*.*"},
    {"address": {"bus": "8[0-9]"}},
    {"vendor_id": "14e4"},
    {"vendor_id": "15b3", "product_id": "a2d6", "physical_network": "physnet0"},
    {"address": "*:*:1f.7", "product_id": "1017"},
    {"address": {"domain": "0001"}},
    {"product_id": "101e", "address": "0000:ff:*.*"},
    {"vendor_id": "15b3", "product_id": "101e", "remote_managed": "true",
     "physical_network": "physnet1"},
    {"vendor_id": "*"},
]
_hosts: dict[str, tuple[str, fastvpd.Inventory]] = {}


def host(shape: str) -> tuple[str, fastvpd.Inventory]:
    if shape not in _hosts:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        root = tempfile.mkdtemp(prefix=f"fastvpd-bench-profile-{shape}-", dir=base)
        cards, pfs, vfs = SHAPES[shape]
        testing.dpu_host(root, cards=cards, pfs_per_card=pfs, vfs_per_pf=vfs,
                         vf_driver="vfio-pci", vf_netdevs=False)
        _hosts[shape] = root, fastvpd.scan(root)
    return _hosts[shape]


@pytest.fixture(scope="session", autouse=True)
def _cleanup():
    yield
    for root, _ in _hosts.values():
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def nova() -> Any:
    """Nova's modules, configured as in tests/nova_worker.py (no eventlet patching)."""
    warnings.simplefilter("ignore")
    from nova import objects

    objects.register_all()
    import nova.conf
    from nova.network import neutron
    from nova.pci import devspec

    conf = nova.conf.CONF
    conf([], project="nova", default_config_files=[])
    conf.set_override("device_spec", [json.dumps(s) for s in SPECS], group="pci")
    return objects, neutron, devspec


def ours_profiles(inv: fastvpd.Inventory, vfs: list[str]) -> list[dict[str, Any]]:
    return [fastvpd.binding_profile(inv, a, physical_network="physnet1") for a in vfs]


def novas_profiles(api: Any, devices: list[Any]) -> list[dict[str, Any]]:
    return [api._get_pci_device_profile(d) for d in devices]


def first_match(specs: list[Any], dicts: list[dict[str, Any]]) -> list[int | None]:
    out: list[int | None] = []
    for d in dicts:
        out.append(next((i for i, s in enumerate(specs) if s.match(d)), None))
    return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl", ["fastvpd", "nova"])
def test_profiles(benchmark, nova, shape: str, impl: str) -> None:
    root, inv = host(shape)
    vfs = [d["address"] for d in inv.to_nova() if d["dev_type"] == "type-VF"]
    benchmark.group = f"profiles of every VF, {shape} ({len(vfs)} VFs)"
    objects, neutron, _ = nova
    if impl == "fastvpd":
        result = benchmark(ours_profiles, inv, vfs)
        benchmark.extra_info["µs per VF"] = round(benchmark.stats.stats.median / len(vfs) * 1e6, 2)
    else:
        by_address = {d["address"]: d for d in inv.to_nova()}
        devices = [objects.PciDevice.create(None, dict(by_address[a])) for a in vfs]
        api = neutron.API()
        result = benchmark.pedantic(novas_profiles, args=(api, devices), rounds=3)
        benchmark.extra_info["µs per VF"] = round(benchmark.stats.stats.median / len(vfs) * 1e6, 2)
        # Nova's physical_network comes from the spec it matches: the remote_managed one
        assert result == ours_profiles(inv, vfs)
    assert len(result) == len(vfs)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl", ["fastvpd", "nova"])
def test_match(benchmark, nova, shape: str, impl: str) -> None:
    root, inv = host(shape)
    dicts = inv.to_nova()
    benchmark.group = f"10 device specs against every device, {shape} ({len(dicts)} devices)"
    ours: list[DeviceSpec] = load_device_specs(SPECS, inv)
    want = first_match(ours, dicts)
    if impl == "fastvpd":
        result = benchmark(first_match, ours, dicts)
    else:
        _, _, devspec = nova
        theirs = [devspec.PciDeviceSpec(json.loads(json.dumps(s))) for s in SPECS]
        result = benchmark.pedantic(first_match, args=(theirs, dicts), rounds=3)
    benchmark.extra_info["µs per device"] = round(benchmark.stats.stats.median / len(dicts) * 1e6, 2)
    assert result == want and want.count(8) == sum(d["dev_type"] == "type-VF" for d in dicts)
