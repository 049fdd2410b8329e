"""What `fastvpd doctor` says Nova does, checked against Nova 34's own code (tests/nova_oracle.py).

Nova runs unmodified: its libvirt driver lists the host from libvirt's test driver (the node
device XML `fastvpd.testing` writes for the tree, which leaves out a VPD blob libvirt's strict
parser rejects, as libvirt does) with ``nova.pci.utils`` reading the tree bind-mounted on /sys;
its ``Whitelist``, ``PciDeviceStats`` and ``_get_pci_device_profile`` then run on Nova's own
device dicts. Each test breaks a host one way and asserts both the doctor's reason and what Nova
does about it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fastvpd
from fastvpd import build_vpd, testing
from fastvpd.doctor import Report, check
from fastvpd.testing import DpuSpec, HostSpec
from tests.nova_oracle import Nova, nova  # noqa: F401 (fixture)

RM = '{"vendor_id": "15b3", "product_id": "101e", "remote_managed": "true"}'
_TRUE = ("1", "t", "true", "on", "y", "yes")


def nova_devices(nova: Nova, host: testing.BuiltHost) -> Any:
    """Nova's device dicts for the tree, by address, or the exception Nova raised."""
    uri = testing.write_node_device_xml(host, os.path.join(os.path.dirname(host.root), "node.xml"))
    got = nova.one({"op": "devices"}, sysfs=host, uri=uri)
    return got if isinstance(got, dict) else sorted(got, key=lambda d: d["address"])


def assignable(nova: Nova, host: testing.BuiltHost, entries: list[str],
               devices: list[dict[str, Any]]) -> dict[str, int | None]:
    """Nova's Whitelist: the index of the entry each device is assignable by (None: none)."""
    got = nova.one({"op": "whitelist", "entries": entries, "devices": devices}, sysfs=host)
    assert "raises" not in got, got
    return {d["address"]: i for d, i in zip(devices, got["assignable"])}


def vf_codes(report: Report) -> dict[str, list[str]]:
    return {vf.address: [r.code for r in vf.reasons] for vf in report.vfs()}


def two_cards(tmp_path: Path, **second: Any) -> testing.BuiltHost:
    """Card 0 (PF 0000:03:00.0) for a test to break; card 1 (0000:04:00.0) stays fine."""
    return testing.build_host(tmp_path / "sys", HostSpec(dpus=[
        DpuSpec(pfs=1, vfs_per_pf=2, **second), DpuSpec(pfs=1, vfs_per_pf=2)]))


def test_a_missing_virtfn_link_makes_nova_34_report_no_device(nova: Nova, tmp_path: Path) -> None:
    host = two_cards(tmp_path)
    assert len(nova_devices(nova, host)) == len(host.functions)
    assert check(fastvpd.scan(host), [RM]).ready
    pf = host.pfs[0]
    lost = host.functions[pf].vfs[1]
    testing.remove_attribute(host, pf, "virtfn1")
    assert nova_devices(nova, host) == {"raises": "PciDeviceNotFoundById",
                                        "message": f"PCI device {lost} not found"}
    report = check(fastvpd.scan(host), [RM])
    got = vf_codes(report)
    assert set(got) == set(host.vfs)  # the other card's VFs too: Nova reports nothing
    assert all(codes == ["virtfn-missing"] for codes in got.values())
    assert report.exit_status == 1


def test_vfs_whose_pf_is_gone_are_reported_by_nova_without_their_facts(
        nova: Nova, tmp_path: Path) -> None:
    """Unlike a lost virtfn link, a PF gone altogether does not make Nova 34 raise: it reports
    its VFs, without serial, PF MAC or VF number, and gives them to no remote-managed port."""
    host = two_cards(tmp_path)
    gone = host.cards[0].vfs
    testing.dangling_device_link(host, host.pfs[0])
    devices = nova_devices(nova, host)
    by_address = {d["address"]: d for d in devices}
    assert all("capabilities" not in by_address[vf] for vf in gone)
    chosen = assignable(nova, host, [RM], devices)
    assert [chosen[vf] for vf in gone] == [None, None]
    assert [chosen[vf] for vf in host.cards[1].vfs] == [0, 0]
    report = check(fastvpd.scan(host), [RM])
    got = vf_codes(report)
    assert [got[vf] for vf in gone] == [["vf-without-pf"]] * 2
    assert [got[vf] for vf in host.cards[1].vfs] == [[], []] and report.reasons == ()


def _vpd(blob: bytes) -> Callable[[testing.BuiltHost], Any]:
    return lambda h: testing.set_attribute(h, h.pfs[0], "vpd", blob, mode=0o600)


def _bad_checksum() -> bytes:
    blob = bytearray(build_vpd("DPU", [("PN", "X1"), ("SN", testing.dpu_serial(0))]))
    blob[-2] ^= 1  # the RV checksum byte
    return bytes(blob)


NO_SERIAL: dict[str, Callable[[testing.BuiltHost], Any]] = {
    "vpd-missing": lambda h: testing.remove_attribute(h, h.pfs[0], "vpd"),
    "vpd-unreadable": lambda h: testing.directory_attribute(h, h.pfs[0], "vpd"),
    "no-card-serial": _vpd(build_vpd("DPU", [("PN", "X1")])),
    "vpd-empty-serial": _vpd(build_vpd("DPU", [("PN", "X1"), ("SN", " ")])),
    "vpd-rejected-by-libvirt": _vpd(_bad_checksum()),
}


@pytest.mark.parametrize("code", NO_SERIAL)
def test_without_a_serial_nova_gives_the_vfs_to_no_remote_managed_port(
        nova: Nova, tmp_path: Path, code: str) -> None:
    host = two_cards(tmp_path)
    NO_SERIAL[code](host)
    devices = nova_devices(nova, host)
    broken, fine = host.cards[0].vfs, host.cards[1].vfs
    by_address = {d["address"]: d for d in devices}
    assert all("vpd" not in by_address[vf].get("capabilities", {}) for vf in broken)
    assert all(by_address[vf]["capabilities"]["vpd"]["card_serial_number"]
               == testing.dpu_serial(1) for vf in fine)
    chosen = assignable(nova, host, [RM], devices)
    assert [chosen[vf] for vf in broken] == [None, None]  # Nova leaves them out
    assert [chosen[vf] for vf in fine] == [0, 0]
    report = check(fastvpd.scan(host), [RM])
    got = vf_codes(report)
    assert [got[vf] for vf in broken] == [[code], [code]]
    assert [got[vf] for vf in fine] == [[], []]
    if code == "vpd-rejected-by-libvirt":  # fastvpd itself reads the serial Nova does not see
        assert fastvpd.scan(host)[broken[0]].card_serial_number == testing.dpu_serial(0)


def test_a_pf_without_netdev_leaves_nova_s_profile_without_mac_and_vf_number(
        nova: Nova, tmp_path: Path) -> None:
    host = two_cards(tmp_path, pf_driver="vfio-pci", pf_netdevs=False, vf_netdevs=False)
    devices = nova_devices(nova, host)
    vfs = [d for d in devices if d["dev_type"] == "type-VF"]
    profiles = nova.one({"op": "profiles", "devices": vfs}, sysfs=host, device_spec=[RM])
    by_address = dict(zip((d["address"] for d in vfs), profiles))
    for vf in host.cards[0].vfs:  # what Neutron's OVN driver rejects: all three are required
        assert "card_serial_number" in by_address[vf]
        assert "pf_mac_address" not in by_address[vf] and "vf_num" not in by_address[vf]
    for vf in host.cards[1].vfs:
        assert {"card_serial_number", "pf_mac_address", "vf_num"} <= set(by_address[vf])
    got = vf_codes(check(fastvpd.scan(host), [RM]))
    assert [got[vf] for vf in host.cards[0].vfs] == [["pf-no-netdev"]] * 2
    assert [got[vf] for vf in host.cards[1].vfs] == [[], []]


def test_an_all_zero_pf_mac_goes_to_neutron_as_it_is(nova: Nova, tmp_path: Path) -> None:
    """Nova and Neutron take the zero MAC; the DPU's agent is the one that finds nothing."""
    host = two_cards(tmp_path)
    pf = host.pfs[0]
    testing.set_attribute(host, pf, f"net/{host.functions[pf].netdevs[0]}/address",
                          "00:00:00:00:00:00\n")
    devices = nova_devices(nova, host)
    vfs = [d for d in devices if d["address"] in host.cards[0].vfs]
    profiles = nova.one({"op": "profiles", "devices": vfs}, sysfs=host, device_spec=[RM])
    assert [p["pf_mac_address"] for p in profiles] == ["00:00:00:00:00:00"] * 2
    got = vf_codes(check(fastvpd.scan(host), [RM]))
    assert [got[vf] for vf in host.cards[0].vfs] == [["pf-mac-zero"]] * 2


@pytest.mark.parametrize("value", ["true", "TRUE", "yes", "1", "on", True])
def test_the_trait_trap_as_nova_34_pools_it(nova: Nova, tmp_path: Path, value: Any) -> None:
    host = two_cards(tmp_path)
    entry = json.dumps({"vendor_id": "15b3", "product_id": "101e", "remote_managed": value})
    devices = nova_devices(nova, host)
    theirs = nova.one({"op": "stats", "entries": [entry], "devices": devices}, sysfs=host)
    pools = theirs["pools"]
    assert sum(p["count"] for p in pools) == len(host.vfs)
    # every VF left the ordinary pools: each pool is tagged remote_managed ...
    assert all(p["remote_managed"] is True or str(p["remote_managed"]).strip().lower() in _TRUE
               for p in pools)
    report = check(fastvpd.scan(host), [entry])
    trapped = {tuple(codes) for codes in vf_codes(report).values()}
    # ... and Nova reports the trait exactly when the doctor sees no trap
    if theirs["remote_managed_trait"]:
        assert trapped == {()} and report.ready
    else:
        assert trapped == {("trait-trap",)} and report.exit_status == 1


def test_the_entries_the_doctor_calls_invalid_are_the_ones_nova_rejects(
        nova: Nova, tmp_path: Path) -> None:
    host = two_cards(tmp_path)
    pf = host.pfs[0]
    entries = [
        RM,
        '{"address": "0000:03:00.8"}',
        '{"product_id": "zz"}',
        '{"vendor_id": "15b3", "managed": "maybe"}',
        "not json",
        '[{"product_id": "101e"}, 5]',
        json.dumps({"address": pf, "product_id": "101e", "remote_managed": "true"}),
        json.dumps({"address": pf, "remote_managed": "true"}),
        '{"devname": "nope", "remote_managed": "true"}',
        '{"devname": "nope"}',
    ]
    report = check(fastvpd.scan(host), entries)
    assert report.specs is not None
    invalid = {s.index for s in report.specs if s.reasons}
    # one doctor index per entry here but for the list, whose two elements are [5] and [6]
    by_value = [[0], [1], [2], [3], [4], [5, 6], [7], [8], [9], [10]]
    for value, indexes in zip(entries, by_value):
        theirs = nova.one({"op": "whitelist", "entries": [value], "devices": []}, sysfs=host)
        assert ("raises" in theirs) == any(i in invalid for i in indexes), (value, theirs)
        if value == entries[6]:  # fastvpd reads it as the PF's VFs; Nova 34 fails on it
            assert theirs["raises"] == "PciDeviceNotFoundById"
            assert report.specs[7].spec is not None
    assert invalid == {1, 2, 3, 4, 6, 7, 8, 9}
    assert {tuple(codes) for codes in vf_codes(report).values()} == {("spec-invalid",) * 8}


def test_the_entry_each_vf_gets_is_the_one_nova_assigns_it_by(nova: Nova, tmp_path: Path) -> None:
    host = testing.dpu_host(tmp_path / "sys", cards=2, pfs_per_card=2, vfs_per_pf=2)
    entries = [
        '{"address": "0000:03:00.*", "product_id": "101e", "remote_managed": "true"}',
        '{"address": "0000:04:*.*", "product_id": "101e"}',
        '{"address": "0000:03:01.*", "product_id": "101e", "remote_managed": "true"}',
    ]
    devices = nova_devices(nova, host)
    chosen = assignable(nova, host, entries, devices)
    report = check(fastvpd.scan(host), entries)
    for vf in report.vfs():
        assert vf.spec == chosen[vf.address], vf.address
    got = vf_codes(report)
    for vf in report.vfs():
        want = {0: [], 1: ["spec-not-remote-managed"], 2: [], None: ["no-matching-spec"]}
        assert got[vf.address] == want[vf.spec]
    assert {vf.spec for vf in report.vfs()} == {0, 1, 2}
    theirs = nova.one({"op": "stats", "entries": entries, "devices": devices}, sysfs=host)
    ordinary = sum(p["count"] for p in theirs["pools"] if p["remote_managed"] == "false")
    assert ordinary == sum(1 for vf in report.vfs() if vf.spec == 1)
    assert report.exit_status == 0  # the VFs the entries tag remote_managed are ready
