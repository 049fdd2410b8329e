"""Binding profiles, migration profiles, device specs and the trait, against Nova 34's own code.

Nova's ``API._get_pci_device_profile``, ``ComputeManager._update_migrate_vifs_profile_with_pci``,
``PciDeviceSpec``/``Whitelist`` and ``PciDeviceStats`` run unmodified in the worker of
tests/nova_oracle.py, on a synthetic host bind-mounted on /sys; fastvpd's `fastvpd.profile` runs
on the scan of the same host. The differences are the ones named in
`tests.nova_oracle.KNOWN_DIFFERENCES`, each asserted by a ``test_<name>_difference`` here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastvpd
from fastvpd import DeviceSpecError, testing
from fastvpd.profile import (DeviceSpec, assignable_devices, binding_profile,
                             exposes_remote_managed_trait, load_device_specs, migration_profile)
from fastvpd.testing import DpuSpec, HostSpec, NicSpec, OtherSpec
from tests.nova_oracle import Nova, nova  # noqa: F401 (fixture)

# Card 0: two PFs with netdevs, VFs with netdevs; card 1: VFs on vfio-pci; card 2: PF without
# netdev; card 3: no VPD; a NIC with VPD and an NVMe drive. NUMA on.
SPEC = HostSpec(
    dpus=[DpuSpec(pfs=2, vfs_per_pf=3),
          DpuSpec(pfs=1, vfs_per_pf=2, vf_driver="vfio-pci", vf_netdevs=False),
          DpuSpec(pfs=1, vfs_per_pf=2, pf_driver="vfio-pci", pf_netdevs=False, vf_netdevs=False),
          DpuSpec(pfs=1, vfs_per_pf=2, vpd=False)],
    nics=[NicSpec(functions=1, vpd=True)], others=[OtherSpec()])


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> testing.BuiltHost:
    return testing.build_host(tmp_path_factory.mktemp("profiles") / "sys", SPEC)


@pytest.fixture(scope="module")
def inv(host: testing.BuiltHost) -> fastvpd.Inventory:
    return fastvpd.scan(host, vf_vpd=True, strict_vpd=True)


def nova_dicts(inv: fastvpd.Inventory) -> list[dict[str, Any]]:
    """The device dicts Nova tracks (equal to Nova's own: tests/test_nova_contract.py)."""
    return inv.to_nova()


# -- binding:profile -------------------------------------------------------------------------------

def test_binding_profiles_equal_novas(nova: Nova, host: testing.BuiltHost,
                                      inv: fastvpd.Inventory) -> None:
    """Every device, with a device spec giving physical_network; keys, order and types."""
    for physnet in ("physnet1", None):
        spec = json.dumps({"vendor_id": "*", "physical_network": physnet})
        theirs = nova.one({"op": "profiles", "devices": nova_dicts(inv)}, sysfs=host,
                          device_spec=[spec])
        mine = [binding_profile(inv, d["address"], physical_network=physnet)
                for d in nova_dicts(inv)]
        assert json.dumps(mine) == json.dumps(theirs)
    vf0 = next(p for p in mine if p.get("vf_num") == 0)
    assert list(vf0) == ["pci_vendor_info", "pci_slot", "physical_network",
                         "card_serial_number", "pf_mac_address", "vf_num"]  # VF 0 keeps them
    pf = next(p for p in mine if "device_mac_address" in p)
    assert inv[pf["pci_slot"]].is_pf


def test_remote_managed_profile_needs_every_ovn_piece(inv: fastvpd.Inventory) -> None:
    ok = next(d for d in inv.vfs() if d.card_serial_number and d.pf_mac_address)
    profile = binding_profile(inv, ok.address, physical_network=None, remote_managed=True)
    assert set(profile) == {"pci_vendor_info", "pci_slot", "physical_network",
                            "card_serial_number", "pf_mac_address", "vf_num"}
    assert isinstance(profile["vf_num"], int) and isinstance(profile["card_serial_number"], str)
    no_mac = next(d for d in inv.vfs() if d.pf_mac_address is None and d.card_serial_number)
    no_both = next(d for d in inv.vfs() if d.pf_mac_address is None and not d.card_serial_number
                   ) if any(d.pf_mac_address is None and not d.card_serial_number
                            for d in inv.vfs()) else None
    with pytest.raises(fastvpd.ProfileError) as e:
        binding_profile(inv, no_mac.address, remote_managed=True)
    assert e.value.address == no_mac.address and "pf_mac_address" in str(e.value)
    assert "card_serial_number" not in str(e.value)
    no_serial = next(d for d in inv.vfs() if not d.card_serial_number)
    with pytest.raises(fastvpd.ProfileError, match="card_serial_number") as e:
        binding_profile(inv, no_serial.address, remote_managed=True)
    assert no_both is None or "pf_mac_address" in str(e.value)
    pf = inv.pfs()[0]
    with pytest.raises(fastvpd.ProfileError, match="a VF"):
        binding_profile(inv, pf.address, remote_managed=True)
    with pytest.raises(fastvpd.DeviceNotFound):
        binding_profile(inv, "0000:ff:1f.7")
    assert binding_profile(inv, fastvpd.PciAddress.parse(ok.address)) == binding_profile(
        inv, ok.address)


# -- live migration --------------------------------------------------------------------------------

def _pairs(inv: fastvpd.Inventory) -> list[tuple[str, str]]:
    vfs = [d.address for d in inv.vfs() if d.card_serial_number and d.pf_mac_address]
    return [(a, b) for a in vfs for b in vfs if a != b]


def test_migration_profiles_equal_novas_but_for_vf0(nova: Nova, host: testing.BuiltHost,
                                                    inv: fastvpd.Inventory) -> None:
    by_address = {d["address"]: d for d in nova_dicts(inv)}
    for src, dst in _pairs(inv):
        source = binding_profile(inv, src, physical_network="physnet1")
        theirs = nova.one({"op": "migrate", "profile": source, "device": by_address[dst]})
        mine = migration_profile(source, inv, dst)
        if source["vf_num"] == 0:
            continue  # test_migration_vf0_difference
        assert json.dumps(mine) == json.dumps(theirs), (src, dst)
        assert mine == binding_profile(inv, dst, physical_network="physnet1")


def test_migration_vf0_difference(nova: Nova, inv: fastvpd.Inventory) -> None:
    """"migration-vf0": a port leaving VF 0 keeps vf_num 0 on Nova 34."""
    by_address = {d["address"]: d for d in nova_dicts(inv)}
    src = next(d.address for d in inv.vfs() if d.vf_num == 0 and d.card_serial_number
               and d.pf_mac_address)
    dst = next(d for d in inv.vfs() if d.vf_num == 2 and d.pf_mac_address)
    source = binding_profile(inv, src, physical_network="physnet1")
    theirs = nova.one({"op": "migrate", "profile": source, "device": by_address[dst.address]})
    assert theirs["pci_slot"] == dst.address and theirs["vf_num"] == 0  # Nova's bug
    mine = migration_profile(source, inv, dst.address)
    assert mine["vf_num"] == 2 and mine == {**theirs, "vf_num": 2}


def test_migration_to_a_device_without_the_facts_is_refused(inv: fastvpd.Inventory) -> None:
    src = next(d.address for d in inv.vfs() if d.card_serial_number and d.pf_mac_address)
    dst = next(d.address for d in inv.vfs() if d.pf_mac_address is None)
    source = binding_profile(inv, src)
    with pytest.raises(fastvpd.ProfileError, match="pf_mac_address") as e:
        migration_profile(source, inv, dst)
    assert e.value.address == dst
    plain = {"pci_slot": src, "pci_vendor_info": "x:y", "physical_network": None}
    assert migration_profile(plain, inv, dst)["pci_slot"] == dst  # nothing to refresh
    assert "vf_num" not in migration_profile(plain, inv, dst)


# -- device specs ----------------------------------------------------------------------------------

# Values an operator writes for each field, ones Nova takes and ones it refuses (None: the key is
# left out). Nova takes more than one would guess: int(x, 16) allows spaces, a 0x prefix, a sign
# and underscores; a falsy address means every address.
_GOOD = {
    "vendor_id": [None, "15b3", "15B3", " 15b3 ", "0x15b3", "*", " * ", "8086", "-1", "15_b3"],
    "product_id": [None, "101e", "a2d6", "0x101e", "*", "1533", "101E", "a80a"],
    "address": [
        None, "*:*:*.*", "", "0000:03:00.0", "03:00.0", "0000:03:00.2", ":00.", "0000:03:*.*",
        "0000:03:00", "03:", "0:3:0.0", ".2", "*:03:00.*", " 0000 : 03 : 00 . 2 ",
        "0000:03:00.", "0x0000:03:00.0", "0000:04:00.0", "0000:05:00.0", "0000:06:00.0",
        {"bus": "03"}, {"domain": ".*", "bus": "0[3-4]", "slot": "00", "function": "[0-2]"},
        {"domain": "0000", "bus": "03", "slot": "00", "function": "0"},
        {"domain": "0000", "bus": "05", "slot": "00", "function": "0"}, {"slot": "0"},
        {"bus": "0"}, {}, 0, False],
    "remote_managed": [None, "true", "True", " yes ", "1", "on", "false", "no", True, False, 1, 0,
                       "maybe"],
    "managed": [None, "true", "yes", "no", "0", True, False, 1],
    "live_migratable": [None, "true", "false", "on", False],
    "physical_network": [None, "physnet1"],
    "one_time_use": [None, "false"],
    "trusted": [None, "true"],
}
_BAD = {
    "vendor_id": ["zz", "1ffff", "", 5555],
    "product_id": [" * ", "fffff", "x", 4126],
    "address": ["0000:03:00.8", "0000:03:20.0", "1:2:3:4", "10000:03:00.0", "zz:00.0",
                {"bus": "("}, {"bus": "*"}, {"bus": 3}, 5, [], ["0000:03:00.0"], True],
    "managed": ["maybe", "2"],
    "live_migratable": ["sometimes"],
    "one_time_use": ["true"],  # needs placement reporting
}


def _devnames(host: testing.BuiltHost) -> list[Any]:
    pf = host.functions[host.pfs[0]]
    vf = next(host.functions[a] for a in host.vfs if host.functions[a].netdevs)
    nic = next(f for f in host.functions.values() if f.dev_type == "type-PCI" and f.netdevs)
    return [pf.netdevs[0], vf.netdevs[0], nic.netdevs[0], "nope", "", 5]


@st.composite
def entries(draw: st.DrawFn, devnames: list[Any]) -> dict[str, Any]:
    """An entry that is mostly right: each field is wrong one time in twelve."""
    entry: dict[str, Any] = {}
    for key, good in _GOOD.items():
        bad = _BAD.get(key)
        value = draw(st.sampled_from(bad if bad and draw(st.integers(0, 11)) == 0 else good))
        if value is not None or (key == "physical_network" and draw(st.booleans())):
            entry[key] = value
    if draw(st.integers(0, 3)) == 0:  # devname instead of (rarely: with) an address
        if draw(st.integers(0, 7)):
            entry.pop("address", None)
        entry["devname"] = draw(st.sampled_from(devnames))
    return entry


def _ours(entry: dict[str, Any], inv: fastvpd.Inventory) -> DeviceSpec | DeviceSpecError:
    try:
        return load_device_specs([entry], inv)[0]
    except DeviceSpecError as e:
        return e


def _names_one_pf(entry: dict[str, Any], inv: fastvpd.Inventory) -> bool:
    """A remote_managed entry naming a single PF: Nova 34 fails on it ("remote-managed-pf-spec")."""
    try:
        spec = DeviceSpec.from_entry(entry)
    except DeviceSpecError:
        return False
    if not spec.remote_managed:
        return False
    single = spec._single
    if spec.devname is not None:
        try:
            single = inv.by_netdev(spec.devname).address
        except fastvpd.DeviceNotFound:
            return False
    return bool(single and single in inv and (inv[single].total_vfs or 0) > 0)


_SPEC_EXAMPLES = max(60, settings().max_examples * 3)


def test_device_specs_accept_reject_and_match_as_nova(nova: Nova, host: testing.BuiltHost,
                                                       inv: fastvpd.Inventory) -> None:
    """Generated entries, each through Nova's PciDeviceSpec and fastvpd's DeviceSpec: the same
    verdict, the same IDs and tags, and the same devices matched."""
    devices = nova_dicts(inv)
    seen = {"accepted": 0, "rejected": 0, "pf-bug": 0}

    @settings(max_examples=_SPEC_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(entry=entries(_devnames(host)))
    def check(entry: dict[str, Any]) -> None:
        theirs = nova.one({"op": "devspec", "spec": entry, "devices": devices}, sysfs=host)
        mine = _ours(entry, inv)
        if "raises" in theirs:
            if theirs["raises"] == "PciDeviceNotFoundById" and _names_one_pf(entry, inv):
                seen["pf-bug"] += 1
                return  # test_remote_managed_pf_spec_difference
            assert isinstance(mine, DeviceSpecError), (entry, theirs)
            seen["rejected"] += 1
            return
        assert isinstance(mine, DeviceSpec), (entry, theirs, mine)
        assert (mine.vendor_id, mine.product_id) == (theirs["vendor_id"], theirs["product_id"])
        assert json.dumps(dict(mine.tags)) == json.dumps(theirs["tags"]), entry
        assert mine.remote_managed == theirs["remote_managed"]
        assert [mine.match(inv[d["address"]]) for d in devices] == theirs["matches"], entry
        assert [mine.match(d) for d in devices] == theirs["matches"], entry
        seen["accepted"] += 1

    check()
    assert all(seen.values()), seen  # every kind of verdict was exercised


def test_remote_managed_pf_spec_difference(nova: Nova, host: testing.BuiltHost,
                                           inv: fastvpd.Inventory) -> None:
    """"remote-managed-pf-spec": Nova 34 fails on every remote_managed entry naming one PF;
    fastvpd applies the intended check."""
    pf = inv[host.pfs[0]]
    ifname = pf.netdevs[0]
    cases = [
        ({"address": pf.address, "product_id": pf.vf_product_id}, "ok"),
        ({"devname": ifname, "vendor_id": pf.vendor_id, "product_id": pf.vf_product_id}, "ok"),
        ({"address": {"domain": "0000", "bus": pf.address[5:7], "slot": "00", "function": "0"},
          "product_id": pf.vf_product_id}, "ok"),
        ({"address": pf.address}, "PFs must not be remote_managed"),
        ({"address": pf.address, "product_id": pf.product_id}, "PFs must not be remote_managed"),
        ({"devname": ifname}, "PFs must not be remote_managed"),
        ({"address": pf.address, "product_id": "1533"}, "do not match the VFs"),
        ({"address": pf.address, "vendor_id": "8086", "product_id": pf.vf_product_id},
         "do not match the VFs"),
    ]
    devices = nova_dicts(inv)
    for entry, verdict in cases:
        entry = {**entry, "remote_managed": "true"}
        theirs = nova.one({"op": "devspec", "spec": entry, "devices": devices}, sysfs=host)
        assert theirs["raises"] == "PciDeviceNotFoundById", (entry, theirs)
        if verdict == "ok":
            spec = load_device_specs([entry], inv)[0]
            matched = {d.address for d in inv.values() if spec.match(d)}
            assert matched == {v.address for v in inv.vfs(pf.address) if v.card_serial_number}
        else:
            with pytest.raises(DeviceSpecError, match=verdict):
                load_device_specs([entry], inv)


def test_whitelist_entries_as_nova(nova: Nova, host: testing.BuiltHost,
                                   inv: fastvpd.Inventory) -> None:
    """Config values (JSON text: a dict, a list of dicts, or something else) and which spec
    each device is assignable by (the first that matches)."""
    devices = nova_dicts(inv)
    configs = [
        ['{"vendor_id": "15b3", "product_id": "101e", "physical_network": "p1"}',
         '{"vendor_id": "*"}'],
        ['[{"address": "0000:03:00.*"}, {"product_id": "a2d6"}]', '{"vendor_id": "8086"}'],
        ['{"vendor_id": "15b3", "remote_managed": "true"}', '{"vendor_id": "15b3"}'],
        ['not json'], ['5'], ['[5]'], ['"text"'], ['[{"vendor_id": "zz"}]'], [],
        ['{"devname": "%s"}' % inv[host.pfs[0]].netdevs[0]],
    ]
    for config in configs:
        theirs = nova.one({"op": "whitelist", "entries": config, "devices": devices}, sysfs=host)
        try:
            specs = load_device_specs(config, inv)
        except DeviceSpecError:
            assert "raises" in theirs, config
            continue
        assert "raises" not in theirs, (config, theirs)
        assert len(specs) == theirs["specs"]
        chosen = dict((d.address, specs.index(s)) for d, s in assignable_devices(inv, specs))
        assert [chosen.get(d["address"]) for d in devices] == theirs["assignable"], config


# -- the trait -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["true", "True", "TRUE", " true", "yes", "1", "on", True, 1,
                                   "false", False, None])
def test_trait_truthy_difference(nova: Nova, host: testing.BuiltHost, inv: fastvpd.Inventory,
                                 value: Any) -> None:
    """"trait-truthy": Nova 34's pools and trait against fastvpd's answer for each spelling."""
    entry: dict[str, Any] = {"vendor_id": "15b3", "product_id": "101e"}
    if value is not None:
        entry["remote_managed"] = value
    config = [json.dumps(entry)]
    theirs = nova.one({"op": "stats", "entries": config, "devices": nova_dicts(inv)}, sysfs=host)
    specs = load_device_specs(config, inv)
    spec = specs[0]
    assert spec.nova_trait_value == theirs["remote_managed_trait"]
    assert exposes_remote_managed_trait(inv, specs) == spec.remote_managed
    # the VFs of a truthy spec leave the normal pools either way: Nova's pools carry the tag
    tagged = [p for p in theirs["pools"] if p.get("remote_managed") is True or str(
        p.get("remote_managed")).strip().lower() in ("1", "t", "true", "on", "y", "yes")]
    assert bool(tagged) == spec.remote_managed
    pooled = sum(p["count"] for p in theirs["pools"])
    assert pooled == len(assignable_devices(inv, specs))


def test_vmd_domain_difference(nova: Nova, tmp_path: Path) -> None:
    """"vmd-domain": a DPU behind an Intel VMD domain (10000): Nova's dicts are fastvpd's, but
    Nova 34 raises when it matches a device spec against them."""
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=2,
                            domain=0x10000)
    inv = fastvpd.scan(host, vf_vpd=True, strict_vpd=True)
    devices = inv.to_nova()
    assert {d["address"][:6] for d in devices} == {"10000:"}
    for entry, want in (({"vendor_id": "15b3"}, [True] * 3),
                        ({"address": "*:03:00.*"}, [True] * 3),
                        ({"address": "0000:*:*.*"}, [False] * 3)):
        theirs = nova.one({"op": "devspec", "spec": entry, "devices": devices}, sysfs=host)
        assert all(m["raises"] == "PciConfigInvalidSpec" for m in theirs["matches"]), theirs
        spec = load_device_specs([entry], inv)[0]
        assert [spec.match(d) for d in devices] == want
