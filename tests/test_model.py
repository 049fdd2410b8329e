"""The object model: addresses, devices built from walker rows, inventory queries, Nova dicts."""

from __future__ import annotations

import json

import pytest

import fastvpd
from fastvpd import _walk
from fastvpd.model import FLAG_INFERRED, Inventory, PciAddress, PciDevice
from fastvpd.samples import dpu_vpd

PF_MAC = "b8:ce:f6:00:00:01"


def row(address, *, vendor=0x15B3, device=0xA2D6, klass=0x020000, numa=0, kind=0, parent=-1,
        vf_num=-1, total_vfs=-1, num_vfs=-1, offset=-1, stride=-1, vf_device=-1, flags=0,
        driver="mlx5_core", netdevs=(), vpd=None):
    """A walker row; a function with netdevs has F_NETDEV, as the walker sets it."""
    flags |= _walk.F_NETDEV if netdevs else 0
    return (address, vendor, device, klass, numa, kind, parent, vf_num, total_vfs, num_vfs,
            offset, stride, vf_device, flags, driver, tuple(netdevs), vpd)


def small_host(pf_netdev=True, vf_vpd=None):
    rows = [
        row("0000:03:00.0", device=0x0001, klass=0x010802, driver="nvme", numa=-1),
        row("0000:82:00.0", kind=1, total_vfs=8, num_vfs=2, offset=2, stride=1, vf_device=0x101E,
            netdevs=[("ens1f0", PF_MAC), ("ens1f0v", "b8:ce:f6:00:00:99")] if pf_netdev else (),
            vpd=dpu_vpd("MT2113X00001"), numa=1),
        row("0000:82:00.2", device=0x101E, kind=2, parent=1, vf_num=0, numa=1,
            netdevs=[("ens1f0v0", "aa:00:00:00:00:00")], vpd=vf_vpd),
        row("0000:82:00.3", device=0x101E, kind=2, parent=1, vf_num=1, numa=1),
    ]
    return Inventory(*_walk.from_rows(rows), {3: ("numa_node: unreadable (/x)",)}, ("host thing",),
                     {"openat": 3})


def test_pci_address_parses_formats_and_rejects():
    a = PciAddress.parse("0000:82:1f.7")
    assert (a.domain, a.bus, a.slot, a.function) == (0, 0x82, 0x1F, 7)
    assert str(a) == "0000:82:1f.7" and a.routing_id == 0x82 << 8 | 0x1F << 3 | 7
    assert PciAddress.parse("0000:82:00.0") < a
    for bad in ("0000:82:20.0", "0000:82:00.8", "82:00.0", "0000:82:00.0 ", "", "zzzz:82:00.0"):
        with pytest.raises(ValueError):
            PciAddress.parse(bad)
    with pytest.raises(ValueError):
        PciAddress(0, 0x100, 0, 0)


def test_pci_address_domains_above_ffff_as_the_kernel_names_them():
    """Intel VMD puts functions in domains from 10000 on; the kernel prints the domain with %04x,
    so more than 4 digits appear only above ffff, never with a leading zero."""
    for text, domain in (("10000:e1:00.0", 0x10000), ("fffffffe:01:1f.7", 0xFFFFFFFE),
                         ("1234567:00:00.1", 0x1234567), ("ffff:00:00.0", 0xFFFF)):
        a = PciAddress.parse(text)
        assert a.domain == domain and str(a) == text
        assert PciAddress.parse(text.upper().replace("X", "x")) == a  # hex digits in either case
    assert PciAddress.parse("ffff:ff:1f.7") < PciAddress.parse("10000:00:00.0")
    for bad in ("00000:e1:00.0", "010000:e1:00.0", "100000000:00:00.0", "1000:e1:00", "10000:e1:00.0\n"):
        with pytest.raises(ValueError):
            PciAddress.parse(bad)
    with pytest.raises(ValueError):
        PciAddress(0x1_0000_0000, 0, 0, 0)
    assert str(PciAddress(0xFFFFFFFF, 0xE1, 3, 1)) == "ffffffff:e1:03.1"


def test_vf_inherits_serial_and_pf_mac_and_vf0_is_kept():
    inv = small_host()
    vf0 = inv["0000:82:00.2"]
    assert vf0.dev_type == "type-VF" and vf0.vf_num == 0 and vf0.parent_addr == "0000:82:00.0"
    assert vf0.card_serial_number == "MT2113X00001" and vf0.vpd is None
    assert vf0.pf_mac_address == PF_MAC and vf0.parent_ifname == "ens1f0"
    assert vf0.mac_address == "aa:00:00:00:00:00" and vf0.netdevs == ("ens1f0v0",)
    assert vf0.product_id == "101e" and vf0.numa_node == 1
    nova = vf0.nova_dict()
    assert nova == {
        "dev_id": "pci_0000_82_00_2", "address": "0000:82:00.2", "vendor_id": "15b3",
        "product_id": "101e", "numa_node": 1, "label": "label_15b3_101e", "dev_type": "type-VF",
        "parent_addr": "0000:82:00.0", "parent_ifname": "ens1f0",
        "capabilities": {"sriov": {"pf_mac_address": PF_MAC, "vf_num": 0},
                         "vpd": {"card_serial_number": "MT2113X00001"}},
    }
    assert list(nova) == ["dev_id", "address", "product_id", "vendor_id", "numa_node", "label",
                          "dev_type", "parent_addr", "parent_ifname", "capabilities"]  # Nova's order
    extra = vf0.extra_info()
    assert extra == {"parent_ifname": "ens1f0", "capabilities": json.dumps(nova["capabilities"])}


def test_parent_ifname_only_for_a_vf_that_owns_a_netdev():
    """Nova: a VF gets its PF's netdev name only when the VF itself owns a netdev (vfio-pci VFs,
    the DPU case, have none), however the VF's dict is built."""
    inv = small_host()
    vf1 = inv["0000:82:00.3"]
    assert vf1.netdevs == () and vf1.parent_ifname is None
    assert "parent_ifname" not in vf1.nova_dict()
    by_address = {d["address"]: d for d in inv.to_nova()}
    assert by_address["0000:82:00.2"]["parent_ifname"] == "ens1f0"
    assert "parent_ifname" not in by_address["0000:82:00.3"]
    assert by_address["0000:82:00.3"] == vf1.nova_dict()


def test_pf_fields_and_nova_dict():
    pf = small_host()["0000:82:00.0"]
    assert pf.is_pf and pf.total_vfs == 8 and pf.num_vfs == 2 and pf.vf_product_id == "101e"
    assert pf.mac_address == PF_MAC and pf.pf_mac_address is None and pf.vf_num is None
    assert pf.vpd.serial_number == "MT2113X00001" and pf.card_serial_number == "MT2113X00001"
    assert pf.nova_dict()["mac_address"] == PF_MAC
    assert "parent_addr" not in pf.nova_dict()
    assert pf.nova_dict()["capabilities"] == {"vpd": {"card_serial_number": "MT2113X00001"}}


def test_plain_device_omits_empty_capabilities_and_unknown_numa():
    nvme = small_host()["0000:03:00.0"]
    d = nvme.nova_dict()
    assert d["dev_type"] == "type-PCI" and d["numa_node"] is None
    assert "capabilities" not in d and "mac_address" not in d and "parent_addr" not in d
    assert nvme.total_vfs is None and nvme.class_code == 0x010802


def test_sriov_capability_needs_both_pf_mac_and_vf_num():
    inv = small_host(pf_netdev=False)
    d = inv["0000:82:00.2"].nova_dict()
    assert d["capabilities"] == {"vpd": {"card_serial_number": "MT2113X00001"}}
    assert "parent_ifname" not in d


def test_vf_own_vpd_wins_over_pf_serial():
    inv = small_host(vf_vpd=dpu_vpd("VFSERIAL01"))
    assert inv["0000:82:00.2"].card_serial_number == "VFSERIAL01"
    assert inv["0000:82:00.3"].card_serial_number == "MT2113X00001"


def test_empty_serial_counts_as_absent():
    inv = small_host(vf_vpd=fastvpd.build_vpd("x", [("SN", "   ")]))
    assert inv["0000:82:00.2"].card_serial_number == "MT2113X00001"


def test_to_nova_equals_per_device_nova_dicts():
    inv = small_host()
    assert inv.to_nova() == [inv[a].nova_dict() for a in inv]


def test_to_nova_per_pf_shortcut_handles_odd_vfs():
    """to_nova copies one dict per PF for its VFs; every VF that differs must not get it."""
    vf = dict(device=0x101E, kind=2)
    rows = [
        row("0000:03:00.0", device=0x0001, klass=0x010802, driver="nvme"),
        row("0000:82:00.0", kind=1, total_vfs=8, num_vfs=6, netdevs=[("p0", PF_MAC)],
            vpd=dpu_vpd("MT2113X00001")),
        row("0000:82:00.1", kind=1, total_vfs=8, num_vfs=3),  # no netdev, no VPD
        row("0000:82:00.2", **vf, parent=1, vf_num=0),
        row("0000:82:00.3", **vf, parent=2, vf_num=0),  # the PFs' VFs interleave
        row("0000:82:00.4", **vf, parent=1, vf_num=1, vendor=-1),  # unknown vendor: left out
        row("0000:82:00.5", **vf, parent=2, vf_num=1, numa=1),  # another NUMA node
        row("0000:82:00.6", **vf, parent=1, vf_num=-1),  # orphan: no VF number
        row("0000:82:00.7", **vf, parent=1, vf_num=2, vpd=dpu_vpd("VFSERIAL01")),
        row("0000:82:01.0", kind=2, parent=1, vf_num=3, device=-1),  # unknown device: left out
        row("0000:82:01.1", **vf, parent=2, vf_num=2),
        row("0000:82:01.2", **vf, parent=1, vf_num=4, numa=-1),
        row("0000:82:01.3", **vf, parent=1, vf_num=5),
        row("0000:83:00.0", kind=1, total_vfs=8, num_vfs=2, netdevs=[("q0", PF_MAC)]),
        row("0000:83:00.2", **vf, parent=13, vf_num=0, vendor=-1),  # the PF's first VF is odd
        row("0000:83:00.3", **vf, parent=13, vf_num=1),
    ]
    inv = Inventory(*_walk.from_rows(rows), {})
    nova = inv.to_nova()
    assert nova == [inv[a].nova_dict() for a in inv
                    if inv[a].vendor_id is not None and inv[a].product_id is not None]
    assert len(nova) == len(rows) - 3
    caps = [d["capabilities"] for d in nova if "capabilities" in d]
    inner = [v for c in caps for v in c.values()]
    assert len(caps) == 7 and {id(c) for c in caps}.isdisjoint({id(d) for d in nova})
    assert len({id(x) for x in caps + inner}) == len(caps + inner)  # no dict shared between two
    # The strings of a PF's dicts are made once per scan and shared by every call (immutable);
    # the dicts never are.
    again = inv.to_nova()
    at = {d["address"]: k for k, d in enumerate(nova)}
    pf, vf, pf_again = nova[at["0000:82:00.0"]], nova[at["0000:82:00.2"]], again[at["0000:82:00.0"]]
    assert pf["dev_type"] == "type-PF" and vf["parent_addr"] == pf["address"]
    assert pf_again == pf and pf_again is not pf
    for key in ("address", "dev_id", "label"):
        assert pf_again[key] is pf[key]
    assert vf["parent_addr"] is pf["address"]
    serial = pf["capabilities"]["vpd"]["card_serial_number"]
    assert vf["capabilities"]["vpd"]["card_serial_number"] is serial
    assert pf_again["capabilities"]["vpd"]["card_serial_number"] is serial
    assert pf_again["capabilities"] is not pf["capabilities"]


def test_inventory_mapping_and_queries():
    inv = small_host()
    assert len(inv) == 4 and list(inv) == sorted(inv)
    assert "0000:82:00.3" in inv and "0000:99:00.0" not in inv
    with pytest.raises(fastvpd.DeviceNotFound) as e:
        inv["0000:99:00.0"]
    assert isinstance(e.value, KeyError) and e.value.address == "0000:99:00.0"
    assert [d.address for d in inv.pfs()] == ["0000:82:00.0"]
    assert [d.vf_num for d in inv.vfs("0000:82:00.0")] == [0, 1]
    assert len(inv.vfs()) == 2
    assert [d.address for d in inv.cards["MT2113X00001"]] == ["0000:82:00.0", "0000:82:00.2",
                                                            "0000:82:00.3"]
    assert inv.by_netdev("ens1f0v").address == "0000:82:00.0"
    assert inv.problems == ("host thing",) and inv.counters["openat"] == 3
    assert inv["0000:82:00.3"].problems == ("numa_node: unreadable (/x)",)


def test_inventory_takes_a_pci_address_wherever_it_takes_an_address_string():
    inv = small_host()
    pf, vf = PciAddress.parse("0000:82:00.0"), PciAddress.parse("0000:82:00.3")
    assert inv[vf] is inv["0000:82:00.3"] and inv.get(vf) is inv["0000:82:00.3"]
    assert vf in inv and PciAddress.parse("0000:99:00.0") not in inv
    assert inv.vfs(pf_address=pf) == inv.vfs("0000:82:00.0") and len(inv.vfs(pf)) == 2
    missing = PciAddress.parse("0000:99:00.0")
    for lookup in (lambda: inv[missing], lambda: inv.vfs(missing)):
        with pytest.raises(fastvpd.DeviceNotFound) as e:
            lookup()
        assert e.value.address == "0000:99:00.0"
        assert str(e.value) == "no PCI device '0000:99:00.0' in the inventory"
    assert inv.get(missing) is None


def test_by_netdev_names_the_netdev_it_did_not_find():
    inv = small_host()
    with pytest.raises(fastvpd.NetdevNotFound) as e:
        inv.by_netdev("nope")
    assert str(e.value) == "no netdev 'nope' in the inventory"
    assert e.value.ifname == "nope" and e.value.address is None
    # still the DeviceNotFound (and KeyError) that callers catch
    assert isinstance(e.value, fastvpd.DeviceNotFound) and isinstance(e.value, KeyError)
    assert isinstance(e.value, fastvpd.FastVpdError)


def test_devices_are_immutable_and_cached():
    inv = small_host()
    dev = inv["0000:82:00.0"]
    assert inv["0000:82:00.0"] is dev
    with pytest.raises(AttributeError):
        dev.driver = "vfio-pci"
    assert isinstance(dev, PciDevice) and dev.to_dict()["netdevs"] == ["ens1f0", "ens1f0v"]


def test_device_to_dict_is_json_ready_with_the_vpd_as_its_own_dict():
    inv = small_host()
    d = inv["0000:82:00.0"].to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["vpd"] == inv["0000:82:00.0"].vpd.to_dict()
    assert d["vpd"]["read_only"]["SN"] == {"raw_hex": b"MT2113X00001".hex(), "text": "MT2113X00001"}
    assert inv["0000:82:00.3"].to_dict()["vpd"] is None
    assert inv["0000:82:00.3"].to_dict()["problems"] == ["numa_node: unreadable (/x)"]


def test_vpd_problems_are_kept_on_the_device():
    blob = bytearray(dpu_vpd("MT2113X00001"))
    blob[-2] ^= 1  # break the checksum
    rows = [row("0000:82:00.0", vpd=bytes(blob))]
    dev = Inventory(*_walk.from_rows(rows), {}, sysfs="/s")["0000:82:00.0"]
    assert dev.card_serial_number == "MT2113X00001"
    (problem,) = dev.problems  # names the file, like every sysfs problem
    assert problem.startswith("vpd: offset ") and "checksum wrong" in problem
    assert problem.endswith("(/s/bus/pci/devices/0000:82:00.0/vpd)")


def test_inferred_vf_details_are_loaded_once_in_bulk():
    calls = []

    def loader(addresses):
        calls.append(list(addresses))
        out = {a: ("mlx5_core", (("v" + a[-1], "aa:bb:cc:dd:ee:0" + a[-1]),), []) for a in addresses}
        out["0000:82:00.3"] += ([("net", "garbage content 'zz'", "/x/net/v3/address")],)
        out["0000:82:00.3"] = out["0000:82:00.3"][:2] + out["0000:82:00.3"][3:]
        return out

    rows = [row("0000:82:00.0", kind=1, total_vfs=4, num_vfs=2, netdevs=[("p0", PF_MAC)]),
            row("0000:82:00.2", kind=2, parent=0, vf_num=0, flags=FLAG_INFERRED, driver=None),
            row("0000:82:00.3", kind=2, parent=0, vf_num=1, flags=FLAG_INFERRED, driver=None)]
    inv = Inventory(*_walk.from_rows(rows), {}, details_loader=loader)
    assert inv.to_nova()[1]["capabilities"]["sriov"] == {"pf_mac_address": PF_MAC, "vf_num": 0}
    assert calls == []  # Nova's dicts need no per-VF reads
    assert inv["0000:82:00.3"].netdevs == ("v3",)
    assert inv["0000:82:00.3"].problems == ("net: garbage content 'zz' (/x/net/v3/address)",)
    assert inv["0000:82:00.2"].driver == "mlx5_core" and inv["0000:82:00.2"].problems == ()
    assert calls == [["0000:82:00.2", "0000:82:00.3"]]
