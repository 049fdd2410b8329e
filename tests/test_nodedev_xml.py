"""`fastvpd.testing.node_device_xml` served by libvirt's real test driver (libvirt-python)."""

from __future__ import annotations

import importlib.util
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import fastvpd
from fastvpd import testing
from tests.host_strategies import BAD_CHECKSUM_VPD

if importlib.util.find_spec("libvirt") is None:
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError("libvirt-python must be installed in CI (the README's test command)")
    pytest.skip("libvirt-python is not installed (the README's test command installs it)",
                allow_module_level=True)

import libvirt  # noqa: E402

libvirt.virEventRegisterDefaultImpl()
libvirt.registerErrorHandler(lambda *_: None, None)
FLAGS = libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_NET | libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV


def devices(uri: str) -> dict[str, ET.Element]:
    conn = libvirt.open(uri)
    try:
        return {d.name(): ET.fromstring(d.XMLDesc(0)) for d in conn.listAllDevices(FLAGS)}
    finally:
        conn.close()


def test_libvirt_serves_every_function_and_netdev(tmp_path: Path) -> None:
    host = testing.dpu_host(tmp_path / "sys", cards=2, pfs_per_card=2, vfs_per_pf=3,
                            nics=[testing.NicSpec()], numa_nodes=0)
    served = devices(testing.write_node_device_xml(host, tmp_path / "node.xml"))
    inv = fastvpd.scan(host)
    pci = {n: e for n, e in served.items() if n.startswith("pci_")}
    assert sorted(pci) == sorted(testing.nodedev_name(a) for a in host.addresses)
    for address, f in host.functions.items():
        cap = pci[testing.nodedev_name(address)].find("capability[@type='pci']")
        assert cap.find("vendor").get("id") == f"0x{f.vendor_id}"
        assert cap.find("product").get("id") == f"0x{f.product_id}"
        assert cap.find("numa") is None  # numa_node -1: no element, as libvirt
        if f.dev_type == "type-VF":
            pf = cap.find("capability[@type='phys_function']/address")
            assert (pf.get("bus"), pf.get("function")) == (f"0x{f.parent_addr[5:7]}",
                                                           f"0x{f.parent_addr[-1]}")
        if f.dev_type == "type-PF":
            vfs = cap.findall("capability[@type='virt_functions']/address")
            assert len(vfs) == len(f.vfs)
            serial = cap.find("capability[@type='vpd']/fields[@access='readonly']/serial_number")
            assert serial.text == inv[address].card_serial_number
    nets = {n: e for n, e in served.items() if n.startswith("net_")}
    assert len(nets) == sum(len(f.netdevs) for f in host.functions.values())
    for name, e in nets.items():
        parent = e.find("parent").text
        ifname = e.find("capability/interface").text
        owner = next(a for a in host.addresses if testing.nodedev_name(a) == parent)
        assert ifname in host.functions[owner].netdevs
        assert name == f"net_{ifname}_{e.find('capability/address').text.replace(':', '_')}"


def test_a_vpd_libvirt_would_reject_is_left_out_whole(tmp_path: Path) -> None:
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=1,
                            vpd_blob=BAD_CHECKSUM_VPD, numa_node=1)
    served = devices(testing.write_node_device_xml(host, tmp_path / "node.xml"))
    cap = served[testing.nodedev_name(host.pfs[0])].find("capability[@type='pci']")
    assert cap.find("capability[@type='vpd']") is None
    assert cap.find("numa").get("node") == "1"


def test_virt_functions_stop_at_the_first_missing_link_as_libvirt_reads_them(tmp_path: Path,
                                                                             ) -> None:
    """libvirt reads virtfn0, virtfn1, ... up to the first link that is missing or dangles, so a
    VF's position in the list is its VF number; VFs past a gap are not listed."""
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=2, vfs_per_pf=3)
    gap, dangling = host.pfs
    testing.remove_attribute(host, gap, "virtfn1")
    testing.dangling_virtfn_link(host, dangling, vf_num=2)
    served = devices(testing.write_node_device_xml(host, tmp_path / "node.xml"))

    def listed(pf: str) -> list[str]:
        cap = served[testing.nodedev_name(pf)].find("capability[@type='pci']")
        return [f"{int(a.get('domain'), 16):04x}:{int(a.get('bus'), 16):02x}:"
                f"{int(a.get('slot'), 16):02x}.{int(a.get('function'), 16):x}"
                for a in cap.findall("capability[@type='virt_functions']/address")]

    assert listed(gap) == list(host.functions[gap].vfs[:1])
    assert listed(dangling) == list(host.functions[dangling].vfs[:2])
