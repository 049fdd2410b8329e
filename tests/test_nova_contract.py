"""The Nova/Neutron contract, checked against Nova 34's own code (tests/nova_oracle.py).

Nova runs unmodified: its libvirt driver reads node devices from libvirt's test driver (the XML
`fastvpd.testing.node_device_xml` writes for the tree) and ``nova.pci.utils`` reads the same tree
bind-mounted on /sys. Everything is compared exactly: values, types and key order (the dicts are
compared as JSON text, which is also how Nova hands them to its resource tracker).

Every deliberate difference from Nova is listed once, in `tests.nova_oracle.KNOWN_DIFFERENCES`,
and has a test ``test_<name>_difference`` (here or in tests/test_nova_profiles.py) that asserts it
as that difference, Nova's answer next to fastvpd's. The README's "Compatibility with Nova" section
lists the same names (checked here too).
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

import fastvpd
from fastvpd import testing
from fastvpd.testing import DpuSpec, HostSpec, NicSpec, OtherSpec
from tests import nova_oracle
from tests.nova_oracle import KNOWN_DIFFERENCES, nova  # noqa: F401 (fixture)
from tests.host_strategies import BAD_CHECKSUM_VPD, host_specs
from tests.support import scratch_dir

# -- the oracle ------------------------------------------------------------------------------------

def nova_devices(nova: nova_oracle.Nova, host: str | os.PathLike[str],
                 xml: str | None = None) -> Any:
    """Nova's device dicts for the tree (sorted by address: see "device-order"), or the
    exception Nova raised."""
    root = os.fspath(host)
    path = os.path.join(os.path.dirname(root), "node.xml")
    if xml is None:
        uri = testing.write_node_device_xml(root, path)
    else:
        Path(path).write_text(xml)
        uri = "test://" + path
    got = nova.one({"op": "devices"}, sysfs=root, uri=uri)
    if isinstance(got, dict):
        return got  # {"raises": ..., "message": ...}
    return sorted(got, key=lambda d: d["address"])


def as_json(dicts: Any) -> str:
    """Exact comparison: values, types (JSON's) and key order."""
    return json.dumps(dicts)


def ours(host: str | os.PathLike[str], **options: Any) -> list[dict[str, Any]]:
    return fastvpd.scan(host, **options).to_nova()


# -- device dicts ----------------------------------------------------------------------------------

_ORACLE_EXAMPLES = max(8, settings().max_examples // 4)


@settings(max_examples=_ORACLE_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(spec=host_specs)
def test_device_dicts_and_extra_info_equal_novas(nova: nova_oracle.Nova, spec: HostSpec) -> None:
    """With vf_vpd=True, strict_vpd=True the dicts are Nova's, and so is extra_info()."""
    with scratch_dir("nova") as d:
        host = testing.build_host(os.path.join(d, "sys"), spec)
        theirs = nova_devices(nova, host)
        inv = fastvpd.scan(host, vf_vpd=True, strict_vpd=True)
        mine = inv.to_nova()
        assert as_json(mine) == as_json(theirs)
        extra = nova.one({"op": "extra_info", "devices": theirs})
        assert extra == [inv[dev["address"]].extra_info() for dev in theirs]


def _tolerant_serial(root: str, address: str) -> str | None:
    """The serial fastvpd reads by default: the function's own VPD, tolerantly parsed."""
    path = os.path.join(root, "bus", "pci", "devices", address, "vpd")
    try:
        with open(path, "rb") as f:
            return fastvpd.parse_vpd(f.read()).serial_number or None
    except FileNotFoundError:
        return None


def with_default_vpd(nova_dict: dict[str, Any], root: str) -> dict[str, Any]:
    """Nova's dict turned into what fastvpd reports with its defaults ("vf-vpd" and
    "tolerant-vpd"): the serial of the PF's (or the function's own) VPD, tolerantly parsed."""
    d = copy.deepcopy(nova_dict)
    owner = d["parent_addr"] if d["dev_type"] == "type-VF" else d["address"]
    serial = _tolerant_serial(root, owner)
    caps = d.pop("capabilities", {})
    mac = d.pop("mac_address", None)
    caps.pop("vpd", None)
    if serial:
        caps["vpd"] = {"card_serial_number": serial}
    if caps:
        d["capabilities"] = caps
    if mac is not None:
        d["mac_address"] = mac
    return d


@settings(max_examples=_ORACLE_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(spec=host_specs)
def test_defaults_differ_from_nova_only_as_documented(nova: nova_oracle.Nova,
                                                      spec: HostSpec) -> None:
    with scratch_dir("nova") as d:
        host = testing.build_host(os.path.join(d, "sys"), spec)
        theirs = nova_devices(nova, host)
        assert as_json(ours(host)) == as_json([with_default_vpd(x, host.root) for x in theirs])


def test_vf_vpd_difference(nova: nova_oracle.Nova, tmp_path: Path) -> None:
    """"vf-vpd": a VF whose own VPD names another serial than its PF's."""
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=2, vf_vpd=True)
    vf = host.vfs[1]
    testing.set_attribute(host, vf, "vpd", fastvpd.build_vpd("VF", [("SN", "VFOWN01")]),
                          mode=0o600)
    theirs = {x["address"]: x for x in nova_devices(nova, host)}
    assert theirs[vf]["capabilities"]["vpd"] == {"card_serial_number": "VFOWN01"}
    default = {x["address"]: x for x in ours(host)}
    assert default[vf]["capabilities"]["vpd"] == {"card_serial_number": testing.dpu_serial(0)}
    assert {x["address"]: x for x in ours(host, vf_vpd=True)}[vf] == theirs[vf]


def test_tolerant_vpd_difference(nova: nova_oracle.Nova, tmp_path: Path) -> None:
    """"tolerant-vpd": a card whose VPD has a bad checksum."""
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=1,
                            vpd_blob=BAD_CHECKSUM_VPD)
    theirs = nova_devices(nova, host)
    assert all("vpd" not in x.get("capabilities", {}) for x in theirs)
    default = ours(host)
    assert all(x["capabilities"]["vpd"] == {"card_serial_number": "BADSUM0001"} for x in default)
    assert as_json(ours(host, strict_vpd=True)) == as_json(theirs)


def test_netdev_choice_difference(nova: nova_oracle.Nova, tmp_path: Path) -> None:
    """"netdev-choice": a PF with two netdevs; Nova's pick is os.listdir(net).pop()."""
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=2)
    pf, vf = host.pfs[0], host.vfs[0]
    testing.add_netdev(host, pf, "aaa0", "02:00:00:00:aa:a0")
    net = os.path.join(host.root, "bus", "pci", "devices", pf, "net")
    novas_pick = os.listdir(net).pop()
    sorted_first = sorted(os.listdir(net))[0]
    assert sorted_first == "aaa0"
    mac_of = {name: Path(net, name, "address").read_text().strip() for name in os.listdir(net)}
    theirs = {x["address"]: x for x in nova_devices(nova, host)}
    mine = {x["address"]: x for x in ours(host, vf_vpd=True, strict_vpd=True)}
    assert theirs[pf]["mac_address"] == mac_of[novas_pick]
    assert mine[pf]["mac_address"] == mac_of[sorted_first]
    assert theirs[vf]["parent_ifname"] == novas_pick and mine[vf]["parent_ifname"] == "aaa0"
    assert theirs[vf]["capabilities"]["sriov"]["pf_mac_address"] == mac_of[novas_pick]
    assert mine[vf]["capabilities"]["sriov"]["pf_mac_address"] == mac_of[sorted_first]


def test_network_capabilities_difference(nova: nova_oracle.Nova, tmp_path: Path) -> None:
    """"network-capabilities": libvirt's netdev features, which sysfs does not hold."""
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=2)
    xml = testing.node_device_xml(host).replace(
        "<capability type=\"80203\" />",
        "<capability type=\"80203\" /><feature name=\"rx\" /><feature name=\"tx\" />")
    theirs = nova_devices(nova, host, xml=xml)
    mine = ours(host, vf_vpd=True, strict_vpd=True)
    for t, m in zip(theirs, mine):
        if t["dev_type"] == "type-VF":
            assert t["capabilities"]["network"] == ["rx", "tx"]
            assert list(t["capabilities"])[0] == "network"
            del t["capabilities"]["network"]
    assert as_json(mine) == as_json(theirs)


def test_missing_virtfn_difference(nova: nova_oracle.Nova, tmp_path: Path) -> None:
    """"missing-virtfn": VF 1's virtfn link is gone (as while sriov_numvfs is being lowered)."""
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=3)
    pf, vf1 = host.pfs[0], host.vfs[1]
    testing.remove_attribute(host, pf, "virtfn1")
    theirs = nova_devices(nova, host)
    assert theirs == {"raises": "PciDeviceNotFoundById",
                      "message": f"PCI device {vf1} not found"}
    inv = fastvpd.scan(host, vf_vpd=True, strict_vpd=True)
    mine = {x["address"]: x for x in inv.to_nova()}
    assert sorted(mine) == host.addresses
    assert "sriov" not in mine[vf1]["capabilities"] and inv[vf1].vf_num is None
    assert any("lists no virtfn link to it" in p for p in inv[vf1].problems)
    for vf in (host.vfs[0], host.vfs[2]):
        assert mine[vf]["capabilities"]["sriov"]["vf_num"] == host.functions[vf].vf_num


def test_unescaped_vpd_difference(nova: nova_oracle.Nova, tmp_path: Path) -> None:
    """"unescaped-vpd": a card whose VPD part number is 'A&B' (libvirt writes it raw)."""
    blob = fastvpd.build_vpd("Card", [("PN", "A&B"), ("SN", "AMP0001")])
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=2,
                            vpd_blob=blob)
    theirs = nova_devices(nova, host)
    assert isinstance(theirs, dict) and theirs["raises"] == "XMLSyntaxError"
    mine = ours(host, vf_vpd=True, strict_vpd=True)
    assert [d["address"] for d in mine] == host.addresses
    assert all(d["capabilities"]["vpd"] == {"card_serial_number": "AMP0001"} for d in mine)


def test_device_order_difference(nova: nova_oracle.Nova, tmp_path: Path) -> None:
    """"device-order": the same dicts; Nova's in libvirt's listing order, ours by address."""
    host = testing.dpu_host(tmp_path / "sys", cards=2, pfs_per_card=2, vfs_per_pf=3)
    uri = testing.write_node_device_xml(host, tmp_path / "node.xml")
    listing = nova.one({"op": "devices"}, sysfs=host, uri=uri)
    mine = ours(host, vf_vpd=True, strict_vpd=True)
    assert [d["address"] for d in mine] == host.addresses
    assert sorted(listing, key=lambda d: d["address"]) == mine


# -- what Nova reads from sysfs itself -------------------------------------------------------------

MIXED = HostSpec(
    dpus=[DpuSpec(pfs=2, vfs_per_pf=3),
          DpuSpec(pfs=1, vfs_per_pf=2, vf_driver="vfio-pci", vf_netdevs=False),
          DpuSpec(pfs=1, vfs_per_pf=2, pf_driver="vfio-pci", pf_netdevs=False, vf_netdevs=False),
          DpuSpec(pfs=1, vfs_per_pf=2, sriov_files=False)],
    nics=[NicSpec(functions=2, vpd=True)], others=[OtherSpec()], bridges=True)


def test_nova_pci_utils_read_the_synthetic_tree_as_fastvpd_does(nova: nova_oracle.Nova,
                                                                 tmp_path: Path) -> None:
    """nova.pci.utils on the tree bind-mounted on /sys gives the facts fastvpd scans: the
    synthetic trees look like sysfs to Nova, and fastvpd reads them as Nova does."""
    host = testing.build_host(tmp_path / "sys", MIXED)
    inv = fastvpd.scan(host)
    calls: list[tuple[str, list[Any]]] = []
    want: list[Any] = []
    not_found = {"raises": "PciDeviceNotFoundById"}
    for dev in inv.values():
        a = dev.address
        calls.append(("is_physical_function", re.split("[:.]", a)))
        want.append(dev.is_pf)
        if dev.is_vf:
            calls.append(("get_vf_num_by_pci_address", [a]))
            want.append(dev.vf_num)
            calls.append(("get_mac_by_pci_address", [a, True]))
            want.append(dev.pf_mac_address or not_found)
        if dev.netdevs:
            calls.append(("get_ifname_by_pci_address", [a]))
            want.append(dev.netdevs[0])  # one netdev each here (see "netdev-choice")
            calls.append(("get_mac_by_pci_address", [a]))
            want.append(dev.mac_address)
            for ifname in dev.netdevs:
                calls.append(("get_function_by_ifname", [ifname]))
                want.append([a, dev.is_pf])
        if dev.is_pf and dev.vf_product_id and host.spec.dpus[
                host.functions[a].card].sriov_files:
            calls.append(("get_vf_product_id_by_pf_addr", [a]))
            want.append(dev.vf_product_id)
    got = nova.one({"op": "pci_utils", "calls": calls}, sysfs=host)
    for (name, args), g, w in zip(calls, got, want):
        if isinstance(w, dict):
            assert isinstance(g, dict) and g["raises"] == w["raises"], (name, args, g)
        else:
            assert g == w, (name, args)
    assert len(got) == len(calls) > 40


def test_every_known_difference_has_its_test_and_is_in_the_readme() -> None:
    from tests import test_nova_profiles

    tests = set(globals()) | set(vars(test_nova_profiles))
    for name in KNOWN_DIFFERENCES:
        assert f"test_{name.replace('-', '_')}_difference" in tests, name
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Compatibility with Nova", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- \*\*([a-z0-9-]+)\*\*", section, re.M)
    assert listed == list(KNOWN_DIFFERENCES)

