"""`Inventory.from_facts`: an inventory of facts from another source than the sysfs walker.

The check that matters is equality with a scan: the facts of every device of a scanned host,
given back to `from_facts`, make an inventory whose devices and Nova dicts are the scan's.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings

import fastvpd
from fastvpd import DeviceFacts, Inventory, testing
from fastvpd.testing import HostSpec
from tests.host_strategies import host_specs
from tests.support import scratch_dir


def facts_of(dev: fastvpd.PciDevice, raw_vpd: bytes | None) -> DeviceFacts:
    return DeviceFacts(
        address=dev.address, vendor_id=dev.vendor_id, product_id=dev.product_id,
        dev_type=dev.dev_type, class_code=dev.class_code, parent_addr=dev.parent_addr,
        vf_num=dev.vf_num, total_vfs=dev.total_vfs, num_vfs=dev.num_vfs,
        vf_product_id=dev.vf_product_id, numa_node=dev.numa_node, driver=dev.driver,
        netdevs=tuple(zip(dev.netdevs, [dev.mac_address] + [None] * len(dev.netdevs))),
        vpd=raw_vpd, problems=tuple(p for p in dev.problems if not p.startswith("vpd: ")))


@settings(deadline=None)
@given(spec=host_specs)
def test_the_facts_of_a_scan_make_the_scans_inventory(spec: HostSpec) -> None:
    with scratch_dir("facts") as d:
        host = testing.build_host(os.path.join(d, "sys"), spec)
        scan = fastvpd.scan(host, vf_vpd=True)
        raw = {a: f.vpd for a, f in host.functions.items()}
        # one netdev per function in these hosts, so (name, MAC) pairs are known exactly
        assert all(len(f.netdevs) <= 1 for f in host.functions.values())
        facts = [facts_of(dev, raw[a]) for a, dev in reversed(list(scan.items()))]
        ours = Inventory.from_facts(facts)
        assert json.dumps(ours.to_nova()) == json.dumps(scan.to_nova())
        for address, dev in scan.items():
            mine = ours[address].to_dict()
            theirs = dev.to_dict()
            # VPD problems name the sysfs file in a scan; there is no file here
            assert [p.split(" (/")[0] for p in theirs.pop("problems")] == [
                p.split(" (/")[0] for p in mine.pop("problems")]
            assert mine == theirs
        assert ours.sysfs is None and ours.problems == ()
        assert list(ours) == list(scan)  # address order, whatever order the facts came in


def pf(address: str = "0000:03:00.0", **kw) -> DeviceFacts:
    return DeviceFacts(address, "15b3", "a2d6", fastvpd.model.TYPE_PF, total_vfs=8, **kw)


def vf(address: str = "0000:03:00.1", parent: str = "0000:03:00.0", vf_num: int = 0,
       **kw) -> DeviceFacts:
    return DeviceFacts(address, "15b3", "101e", fastvpd.model.TYPE_VF, parent_addr=parent,
                       vf_num=vf_num, **kw)


def test_a_vf_owning_a_netdev_gets_the_pfs_ifname_and_mac() -> None:
    inv = Inventory.from_facts([
        vf(netdevs=(("vf0", "02:00:00:00:00:01"),)),
        pf(num_vfs=1, netdevs=(("pf1", "b8:ce:f6:00:00:02"), ("pf0", "b8:ce:f6:00:00:01"))),
        vf("0000:03:00.2", vf_num=1)])
    assert inv["0000:03:00.0"].netdevs == ("pf0", "pf1")  # sorted, as a scan
    assert inv["0000:03:00.1"].parent_ifname == "pf0"
    assert inv["0000:03:00.1"].pf_mac_address == "b8:ce:f6:00:00:01"
    assert "parent_ifname" not in inv.nova_dict("0000:03:00.2")
    assert inv["0000:03:00.2"].vf_num == 1 and inv["0000:03:00.0"].vf_product_id == "101e"


def test_a_vf_whose_pf_is_missing_says_so() -> None:
    inv = Inventory.from_facts([vf(problems=("seen by the source",))])
    dev = inv["0000:03:00.1"]
    assert dev.parent_addr is None
    assert dev.problems == ("seen by the source",
                            "parent: its PF 0000:03:00.0 is not in the inventory")


def test_the_sources_own_problems_are_the_inventorys() -> None:
    inv = Inventory.from_facts([], problems=("node device x: gone",))
    assert len(inv) == 0 and inv.problems == ("node device x: gone",) and inv.to_nova() == []


@pytest.mark.parametrize("facts, message", [
    ([pf(), pf()], "given more than once: 0000:03:00.0"),
    ([pf("0000:03:00.0 ")], "not a canonical PCI address"),
    ([pf("0000:03:00.A")], "not a canonical PCI address"),
    ([pf("03:00.0")], "not a canonical PCI address"),
    ([DeviceFacts("0000:03:00.0", "15b3", "a2d6", "type-XX")], "dev_type must be one of"),
    ([DeviceFacts("0000:03:00.0", "15B3", "a2d6")], "4 lower-case hex digits"),
    ([DeviceFacts("0000:03:00.0", "15b3", "a2d")], "4 lower-case hex digits"),
    ([DeviceFacts("0000:03:00.0", "15b3", "a2d6", numa_node=-1)], "not a number >= 0"),
    ([DeviceFacts("0000:03:00.0", "15b3", "a2d6", vf_num=0)], "only a VF has"),
    ([DeviceFacts("0000:03:00.0", "15b3", "a2d6", total_vfs=8)], "only a PF has"),
    ([vf("0000:03:00.1", parent="0000:03:00.1")], "cannot be its own PF"),
])
def test_facts_that_cannot_be_true_are_refused(facts: list[DeviceFacts], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Inventory.from_facts(facts)
