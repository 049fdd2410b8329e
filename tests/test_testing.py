"""fastvpd.testing builds the layout of spec/sysfs.md; the reference scan reads it back.

Trees are built on tmpfs (/dev/shm) when there is one: creating thousands of small files on a
busy disk is what would make these tests slow, not the code under test.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import stat
import tempfile
import time

import pytest

import fastvpd
from fastvpd import testing
from fastvpd.testing import (
    DpuSpec,
    HostSpec,
    NicSpec,
    OtherSpec,
    build_host,
    dpu_host,
    rid,
)
from tests.reference import scan as reference

REPO = pathlib.Path(__file__).resolve().parent.parent


def _load_baselines():
    path = REPO / "benchmarks" / "baselines.py"
    spec = importlib.util.spec_from_file_location("_baselines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


baselines = _load_baselines()


@pytest.fixture
def root(tmp_path):
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        d = tempfile.mkdtemp(prefix="fastvpd-test-", dir=shm)
        try:
            yield os.path.join(d, "sys")
        finally:
            shutil.rmtree(d, ignore_errors=True)
    else:
        yield str(tmp_path / "sys")


def mixed_spec(**dpu) -> HostSpec:
    return HostSpec(
        dpus=[DpuSpec(vfs_per_pf=3, **dpu), DpuSpec(pfs=1, vfs_per_pf=2, pf_driver="vfio-pci",
                                                    pf_netdevs=False, vf_vpd=True)],
        nics=[NicSpec(functions=2), NicSpec(vpd=True, serial="NICSERIAL1")],
        others=[OtherSpec()],
    )


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def by_address(devices):
    return {d["address"]: d for d in devices}


# -- layout ---------------------------------------------------------------------------------------

def test_layout_links_and_files(root):
    host = build_host(root, mixed_spec())
    devices = os.path.join(root, "bus", "pci", "devices")
    assert sorted(os.listdir(devices)) == host.addresses
    assert os.fspath(host) == os.path.abspath(root)
    for address, f in host.functions.items():
        link = os.path.join(devices, address)
        target = os.readlink(link)
        assert not os.path.isabs(target) and target.startswith("../../../devices/pci0000:00/")
        assert target.endswith("/" + address)
        real = os.path.realpath(link)
        assert real == f.path and os.path.isdir(real) and not os.path.islink(real)
        p = f.path + "/"
        assert read(p + "vendor") == b"0x%s\n" % f.vendor_id.encode()
        assert read(p + "device") == b"0x%s\n" % f.product_id.encode()
        assert read(p + "class") == b"0x%06x\n" % f.class_code
        for name in ("subsystem_vendor", "subsystem_device"):
            assert read(p + name).startswith(b"0x") and read(p + name).endswith(b"\n")
        numa = read(p + "numa_node")
        assert numa.endswith(b"\n") and int(numa) == (-1 if f.numa_node is None else f.numa_node)
        config = read(p + "config")
        assert len(config) >= 64
        assert config[0:4] == bytes.fromhex(f.vendor_id)[::-1] + bytes.fromhex(f.product_id)[::-1]
        if f.driver is None:
            assert not os.path.lexists(p + "driver")
        else:
            drv = os.readlink(p + "driver")
            assert drv == "../../../../bus/pci/drivers/" + f.driver
            assert os.path.realpath(p + "driver") == os.path.join(host.root, "bus/pci/drivers",
                                                                 f.driver)
            assert os.path.isdir(p + "driver")
        if f.netdevs:
            assert sorted(os.listdir(p + "net")) == list(f.netdevs)
            for ifname, mac in zip(f.netdevs, f.macs):
                assert read(f"{p}net/{ifname}/address") == mac.encode() + b"\n"
                # as the kernel links them: net/<if>/device -> the function, class/net/<if> ->
                # net/<if> under the function's real directory
                assert os.readlink(f"{p}net/{ifname}/device") == "../../../" + address
                assert os.path.realpath(f"{p}net/{ifname}/device") == os.path.realpath(p)
                link = os.readlink(f"{host.root}/class/net/{ifname}")
                assert link.startswith("../../devices/") and link.endswith(f"/{address}/net/{ifname}")
                assert os.path.realpath(f"{host.root}/class/net/{ifname}") == os.path.realpath(
                    f"{p}net/{ifname}")
        else:
            assert not os.path.exists(p + "net")
        if f.vpd is None:
            assert not os.path.exists(p + "vpd")
        else:
            assert stat.S_IMODE(os.stat(p + "vpd").st_mode) == 0o600
            assert read(p + "vpd") == f.vpd
            assert fastvpd.parse_vpd(f.vpd, strict=True).serial_number == f.serial
            assert config[0x34] == 0x40 and config[0x40] == 0x03  # VPD capability, as lspci wants

        if f.dev_type == "type-PF":
            assert int(read(p + "sriov_totalvfs")) == f.total_vfs
            assert int(read(p + "sriov_numvfs")) == f.num_vfs == len(f.vfs)
            assert int(read(p + "sriov_offset")) == f.sriov_offset
            assert int(read(p + "sriov_stride")) == f.sriov_stride
            assert read(p + "sriov_vf_device") == f.vf_product_id.encode() + b"\n"
            virtfns = sorted(n for n in os.listdir(f.path) if n.startswith("virtfn"))
            assert len(virtfns) == len(f.vfs)
            for n, vf in enumerate(f.vfs):
                assert os.readlink(p + f"virtfn{n}") == "../" + vf
                assert os.path.realpath(p + f"virtfn{n}") == host.functions[vf].path
            assert not os.path.lexists(p + "physfn")
        else:
            assert not any(n.startswith(("sriov_", "virtfn")) for n in os.listdir(f.path))
        if f.dev_type == "type-VF":
            assert os.readlink(p + "physfn") == "../" + f.parent_addr
            assert os.path.realpath(p + "physfn") == host.functions[f.parent_addr].path
            pf = host.functions[f.parent_addr]
            assert pf.vfs[f.vf_num] == address
        else:
            assert not os.path.lexists(p + "physfn")


def test_spec_variants(root):
    host = build_host(root, mixed_spec())
    fs = host.functions
    # card 0: 2 PFs x 3 VFs, VPD on PFs only, netdevs everywhere
    card0, card1 = host.cards
    assert card0.serial == "MT2113X00000" and card1.serial == "MT2113X00001"
    assert len(card0.pfs) == 2 and len(card0.vfs) == 6 and len(card1.vfs) == 2
    assert all(fs[a].vpd is None for a in card0.vfs)
    # card 1: PF on vfio-pci without netdev, VFs with their own VPD
    pf1 = fs[card1.pfs[0]]
    assert pf1.driver == "vfio-pci" and pf1.netdevs == () and pf1.mac_address is None
    assert all(fs[a].serial == "MT2113X00001" for a in card1.vfs)
    nics = [f for f in fs.values() if f.vendor_id == "8086"]
    assert len(nics) == 3 and [f.serial for f in nics] == [None, None, "NICSERIAL1"]
    nvme = [f for f in fs.values() if f.class_code == 0x010802]
    assert len(nvme) == 1 and nvme[0].netdevs == () and nvme[0].driver == "nvme"
    assert host.serials["MT2113X00000"] == tuple(sorted(card0.pfs + card0.vfs))
    assert {f.numa_node for f in fs.values()} == {0, 1}
    # MACs are unique and lower case
    macs = [m for f in fs.values() for m in f.macs]
    assert len(set(macs)) == len(macs) and all(m == m.lower() for m in macs)


def test_deterministic(root):
    a = dpu_host(os.path.join(root, "a"), cards=2, pfs_per_card=2, vfs_per_pf=4)
    b = dpu_host(os.path.join(root, "b"), cards=2, pfs_per_card=2, vfs_per_pf=4)
    assert a.expected() == b.expected()
    assert a.addresses == b.addresses and a.macs == b.macs


def test_older_kernel_numa_and_options(root):
    host = dpu_host(root, cards=1, pfs_per_card=2, vfs_per_pf=2, sriov_files=False,
                    numa_nodes=0, others=[OtherSpec()])
    for pf in host.pfs:
        names = os.listdir(host.functions[pf].path)
        assert "sriov_totalvfs" in names and "sriov_numvfs" in names
        assert not {"sriov_offset", "sriov_stride", "sriov_vf_device"} & set(names)
        assert host.functions[pf].vf_product_id == "101e"  # from its VFs
    assert all(f.numa_node is None for f in host.functions.values())
    assert read(host.functions[host.pfs[0]].path + "/numa_node") == b"-1\n"
    assert len(host.functions) == 2 + 4 + 1


def test_pf_without_vfs(root):
    host = dpu_host(root, cards=1, pfs_per_card=1, vfs_per_pf=0)
    pf = host.functions[host.pfs[0]]
    assert (pf.dev_type, pf.total_vfs, pf.num_vfs, pf.vf_product_id) == ("type-PF", 8, 0, "101e")
    assert reference.scan(root) == host.expected()
    old = dpu_host(os.path.join(root, "old"), cards=1, pfs_per_card=1, vfs_per_pf=0,
                   sriov_files=False)
    assert old.functions[old.pfs[0]].vf_product_id is None
    assert reference.scan(old) == old.expected()


def test_bridges(root):
    host = dpu_host(root, cards=1, pfs_per_card=1, vfs_per_pf=1, bridges=True)
    bridge = host.functions["0000:00:01.0"]
    assert bridge.class_code == 0x060400 and bridge.driver == "pcieport"
    assert os.readlink(bridge.path + "/driver") == "../../../bus/pci/drivers/pcieport"
    assert os.path.dirname(host.functions[host.pfs[0]].path) == bridge.path
    assert reference.scan(root) == host.expected()


# -- routing IDs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stride", [1, 2])
def test_vf_rid_arithmetic_and_bus_spill(root, stride):
    host = dpu_host(root, cards=2, pfs_per_card=2, vfs_per_pf=200, vf_stride=stride)
    fs = host.functions
    for pf in host.pfs:
        p = fs[pf].path + "/"
        offset, st = int(read(p + "sriov_offset")), int(read(p + "sriov_stride"))
        assert st == stride
        for n, vf in enumerate(fs[pf].vfs):
            assert rid(vf) == rid(pf) + offset + n * st
            assert testing.vf_address(pf, offset, st, n) == vf
            domain, bus, slot_fn = vf.split(":")
            assert domain == "0000" and int(slot_fn.split(".")[0], 16) <= 0x1F
    # 2 PFs x 200 VFs do not fit in one bus (256 RIDs): the VFs spill onto the next buses
    card0, card1 = host.cards
    assert len(card0.buses) > 1 and card0.buses[0] == 3
    pf_bus = int(card0.pfs[0].split(":")[1], 16)
    assert max(int(vf.split(":")[1], 16) for vf in card0.vfs) > pf_bus
    assert card1.buses[0] == card0.buses[-1] + 1  # the next card starts on a fresh bus
    assert len(set(host.addresses)) == len(host.addresses) == 2 * 2 * 201
    assert all(os.path.dirname(fs[a].path) == os.path.dirname(fs[card0.pfs[0]].path)
               for a in card0.vfs)  # spilled VFs still sit under the card's root port
    assert reference.scan(root) == host.expected()


def test_host_spans_two_domains(root):
    """With domains=2 a card whose buses no longer fit in domain 0 goes on in domain 1, behind
    that domain's own root complex, and the scan reads both domains."""
    # one PF laid out for 0x7000 VFs takes 113 buses: two such cards fit in domain 0 (buses 3..228)
    card = DpuSpec(pfs=1, vfs_per_pf=3, total_vfs=0x7000)
    host = build_host(root, HostSpec(dpus=[card] * 3, nics=[NicSpec()], domains=2))
    assert [c.pfs[0] for c in host.cards] == ["0000:03:00.0", "0000:74:00.0", "0001:03:00.0"]
    assert host.cards[2].buses[0] == 3 and all(v.startswith("0001:") for v in host.cards[2].vfs)
    nic = [a for a in host.addresses if host.functions[a].dev_type == "type-PCI"]
    assert nic == ["0001:74:00.0"]  # the next group goes on in domain 1, on the next free bus
    pf = host.functions["0001:03:00.0"]
    assert pf.path == f"{root}/devices/pci0001:00/0001:00:01.0/0001:03:00.0"
    assert os.path.realpath(f"{root}/bus/pci/devices/0001:03:00.0") == pf.path
    assert reference.scan(root) == host.expected()
    inv = fastvpd.scan(root)
    assert [{k: getattr(d, k) for k in testing.FACT_KEYS} for d in inv.values()] == host.expected()
    assert inv.problems == () and all(d.problems == () for d in inv.values())
    assert inv.to_nova() == reference.to_nova(reference.scan(root))


def test_domains_validation(tmp_path):
    with pytest.raises(ValueError, match="domains"):
        HostSpec(domains=0)
    with pytest.raises(ValueError, match="domains"):
        HostSpec(domain=0xFFFFFFFF, domains=2)
    card = DpuSpec(pfs=1, vfs_per_pf=0, total_vfs=0x7000)
    with pytest.raises(ValueError, match="256 buses in domain 0001"):  # five cards need 3 domains
        build_host(tmp_path / "sys", HostSpec(dpus=[card] * 5, domains=2))


def test_rid_helpers_and_validation(tmp_path):
    assert rid("0000:82:00.3") == 0x8203
    assert testing.address_of_rid(0, 0x8203) == "0000:82:00.3"
    assert testing.address_of_rid(1, 0x0A1F) == "0001:0a:03.7"
    with pytest.raises(ValueError):
        testing.address_of_rid(0, 0x10000)
    with pytest.raises(ValueError):
        DpuSpec(pfs=9)
    with pytest.raises(ValueError):
        DpuSpec(vfs_per_pf=10, total_vfs=4)
    with pytest.raises(ValueError):
        HostSpec(first_bus=0)
    with pytest.raises(ValueError, match="256 buses"):  # 8 x 8200 VF RIDs: more than one domain
        build_host(tmp_path / "sys", HostSpec(dpus=[DpuSpec(pfs=8, vfs_per_pf=0,
                                                            total_vfs=8200)]))


# -- reference scan -------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    {},
    {"sriov_files": False},
    {"vf_vpd": True},
    {"pf_driver": "vfio-pci", "pf_netdevs": False},
    {"vf_netdevs": False, "vf_driver": None},
    {"numa_nodes": 0, "vpd": False},
])
def test_reference_scan_matches_built_facts(root, options):
    host = dpu_host(root, cards=2, pfs_per_card=2, vfs_per_pf=5, nics=[NicSpec(vpd=True)],
                    others=[OtherSpec()], **options)
    for flags in ({}, {"vf_vpd": True}, {"read_vpd": False}):
        got = reference.scan(root, **flags)
        assert got == host.expected(**flags)
        assert all(tuple(d) == reference.KEYS == testing.FACT_KEYS for d in got)


def test_reference_scan_facts(root):
    host = build_host(root, mixed_spec())
    got = by_address(reference.scan(root))
    assert list(got) == host.addresses
    card0, card1 = host.cards
    for pf_addr in card0.pfs:
        pf = got[pf_addr]
        assert pf["dev_type"] == "type-PF" and pf["total_vfs"] == 8 and pf["num_vfs"] == 3
        assert pf["vf_product_id"] == "101e" and pf["card_serial_number"] == "MT2113X00000"
        assert pf["mac_address"] == host.functions[pf_addr].macs[0]
        for n, vf_addr in enumerate(host.functions[pf_addr].vfs):
            vf = got[vf_addr]
            assert (vf["dev_type"], vf["parent_addr"], vf["vf_num"]) == ("type-VF", pf_addr, n)
            assert vf["card_serial_number"] == "MT2113X00000"  # inherited from the PF
            assert vf["pf_mac_address"] == pf["mac_address"]
            assert vf["product_id"] == "101e" and vf["total_vfs"] is None
    vf1 = got[card1.vfs[0]]
    assert vf1["pf_mac_address"] is None and vf1["card_serial_number"] == "MT2113X00001"
    nic = [d for d in got.values() if d["card_serial_number"] == "NICSERIAL1"]
    assert len(nic) == 1 and nic[0]["dev_type"] == "type-PCI"
    # VFs' own VPD is read only on request
    assert by_address(reference.scan(root, read_vpd=False))[card1.vfs[0]]["card_serial_number"] \
        is None


def test_reference_scan_never_reads_sriov_numvfs(root):
    host = dpu_host(root, cards=1, pfs_per_card=1, vfs_per_pf=2)
    testing.fifo_attribute(host, host.pfs[0], "sriov_numvfs")  # a read would block for good
    assert reference.scan(root) == host.expected()


def test_first_netdev_in_sorted_order(root):
    host = dpu_host(root, cards=1, pfs_per_card=1, vfs_per_pf=1)
    pf = host.pfs[0]
    testing.add_netdev(host, pf, "aaa0", "AA:BB:CC:00:00:01")
    got = by_address(reference.scan(root))
    assert got[pf]["netdevs"] == ("aaa0", host.functions[pf].netdevs[0])
    assert got[pf]["mac_address"] == "aa:bb:cc:00:00:01"
    assert got[host.vfs[0]]["pf_mac_address"] == "aa:bb:cc:00:00:01"
    assert reference.to_nova(list(got.values()))[1]["parent_ifname"] == "aaa0"


# -- hostile mutators -----------------------------------------------------------------------------

@pytest.fixture
def small(root):
    return dpu_host(root, cards=1, pfs_per_card=2, vfs_per_pf=3, nics=[NicSpec()],
                    others=[OtherSpec()])


def _only_changed(host, got, address, **changes):
    """The scan equals the expected facts except `changes` on `address`."""
    want = by_address(host.expected())
    want[address].update(changes)
    assert by_address(got) == want


def test_dangling_device_link(small):
    vf = small.vfs[1]
    b = testing.dangling_device_link(small, vf)
    assert (b.kind, b.address, b.attribute) == ("dangling_device_link", vf, None)
    assert os.path.islink(b.path) and not os.path.exists(b.path)
    assert b.detail == small.functions[vf].path and not os.path.exists(b.detail)
    pf = small.functions[vf].parent_addr
    virtfn = os.path.join(small.functions[pf].path, f"virtfn{small.functions[vf].vf_num}")
    assert os.path.islink(virtfn) and not os.path.exists(virtfn)
    got = by_address(reference.scan(small))
    assert set(got) == set(small.addresses) - {vf}
    assert got[pf]["num_vfs"] == 3  # the dangling virtfn entry still counts


def test_dangling_device_link_of_a_pf(small):
    pf = small.pfs[0]
    testing.dangling_device_link(small, pf)
    got = by_address(reference.scan(small))
    assert pf not in got
    for vf in small.functions[pf].vfs:  # orphans: still VFs of that PF, nothing inherited
        assert got[vf]["dev_type"] == "type-VF" and got[vf]["parent_addr"] == pf
        assert got[vf]["vf_num"] is None and got[vf]["pf_mac_address"] is None
        assert got[vf]["card_serial_number"] is None


def test_dangling_virtfn_link(small):
    pf = small.pfs[0]
    vf = small.functions[pf].vfs[1]
    b = testing.dangling_virtfn_link(small, pf, 1)
    assert (b.kind, b.address, b.attribute, b.detail) == ("dangling_virtfn_link", pf, "virtfn1", vf)
    assert os.path.islink(b.path) and not os.path.exists(b.path)
    assert not os.path.lexists(os.path.join(small.root, "bus/pci/devices", vf))
    got = by_address(reference.scan(small))
    assert vf not in got and got[pf]["num_vfs"] == 3  # the entry is still there
    assert got[small.functions[pf].vfs[2]]["vf_num"] == 2


@pytest.mark.parametrize("mutator, check", [
    (testing.fifo_attribute, stat.S_ISFIFO),
    (testing.directory_attribute, stat.S_ISDIR),
    (testing.empty_attribute, lambda m: stat.S_ISREG(m)),
    (testing.garbage_attribute, lambda m: stat.S_ISREG(m)),
])
def test_attribute_mutators(small, mutator, check):
    address = small.vfs[0]
    b = mutator(small, address, "vendor")
    assert (b.address, b.attribute) == (address, "vendor")
    assert b.path == os.path.join(small.root, "bus/pci/devices", address, "vendor")
    assert check(os.lstat(b.path).st_mode)
    if b.kind == "empty_attribute":
        assert read(b.path) == b""
    if b.kind == "garbage_attribute":
        assert read(b.path) and not read(b.path).startswith(b"0x")
    _only_changed(small, reference.scan(small), address, vendor_id=None)


def test_unreadable_attribute(small):
    address = small.pfs[1]
    b = testing.unreadable_attribute(small, address, "numa_node")
    assert (b.kind, b.address, b.attribute) == ("unreadable_attribute", address, "numa_node")
    assert stat.S_IMODE(os.stat(b.path).st_mode) == 0
    if os.geteuid() != 0:  # root reads it anyway (CAP_DAC_OVERRIDE)
        with pytest.raises(PermissionError):
            read(b.path)
        _only_changed(small, reference.scan(small), address, numa_node=None)


def test_remove_attribute(small):
    pf = small.pfs[0]
    testing.remove_attribute(small, pf, "numa_node")
    b = testing.remove_attribute(small, pf, "net")
    assert not os.path.lexists(b.path)
    got = by_address(reference.scan(small))
    assert got[pf]["numa_node"] is None and got[pf]["netdevs"] == ()
    assert all(got[vf]["pf_mac_address"] is None for vf in small.functions[pf].vfs)


def test_stray_entries(small):
    b1 = testing.non_pci_entry(small)
    b2 = testing.long_name_entry(small)
    assert b1.address == "serial8250" and b1.kind == "non_pci_entry"
    assert len(b2.address) == 250 and b2.address.startswith("0000:00:00.0")
    listing = os.listdir(os.path.join(small.root, "bus/pci/devices"))
    assert b1.address in listing and b2.address in listing
    for b in (b1, b2):
        assert os.path.isfile(os.path.join(b.path, "vendor"))  # looks like a device inside
    assert reference.scan(small) == small.expected()
    with pytest.raises(ValueError):
        testing.long_name_entry(small, length=256)


def test_set_link(small):
    nic = small.addresses[-2]
    b = testing.set_link(small, nic, "driver", "driver")
    assert (b.kind, b.address, b.attribute, b.detail) == ("set_link", nic, "driver", "driver")
    assert os.readlink(b.path) == "driver"
    b = testing.set_link(small, nic, "virtfn0", "../nowhere")  # creates one where none was
    assert os.readlink(b.path) == "../nowhere"


def _virtfn(host, pf, n):
    return os.path.join(host.root, "bus/pci/devices", pf, f"virtfn{n}")


def test_virtfn_to_pf_and_to_a_foreign_vf(small):
    pf, other = small.pfs
    vf1 = small.functions[pf].vfs[1]
    b = testing.virtfn_to_pf(small, pf, 1, other)
    assert (b.kind, b.address, b.attribute, b.detail) == ("virtfn_to_pf", pf, "virtfn1", vf1)
    assert b.path == _virtfn(small, pf, 1)
    assert os.readlink(b.path) == "../" + other  # relative to the PF's directory, as the kernel's
    assert os.path.samefile(b.path, small.functions[other].path)
    foreign = small.functions[other].vfs[2]
    b = testing.virtfn_to_foreign_vf(small, pf, 0, foreign)
    assert b.detail == small.functions[pf].vfs[0] and os.readlink(b.path) == "../" + foreign
    # nothing but the links changed: the VFs that lost theirs still have their physfn
    for vf in small.functions[pf].vfs[:2]:
        assert os.path.samefile(os.path.join(small.functions[vf].path, "physfn"),
                                small.functions[pf].path)


def test_duplicate_virtfn(small):
    pf = small.pfs[0]
    vfs = small.functions[pf].vfs
    b = testing.duplicate_virtfn(small, pf, 2, 0)
    assert (b.kind, b.address, b.attribute, b.detail) == ("duplicate_virtfn", vfs[0], "virtfn2", vfs[2])
    assert os.readlink(_virtfn(small, pf, 2)) == os.readlink(_virtfn(small, pf, 0)) == "../" + vfs[0]


def test_virtfn_outside_tree_looks_like_the_vf_but_for_where_it_leads(small):
    pf = small.pfs[1]
    vf = small.functions[pf].vfs[0]
    b = testing.virtfn_outside_tree(small, pf, 0)
    assert (b.kind, b.address, b.attribute, b.detail) == ("virtfn_outside_tree", pf, "virtfn0", vf)
    target = os.path.realpath(b.path)
    assert os.path.basename(target) == vf and not target.startswith(small.root + os.sep)
    assert not os.path.samefile(target, small.functions[vf].path)
    for name in ("vendor", "device", "class", "numa_node"):
        assert read(os.path.join(target, name)) == read(os.path.join(small.functions[vf].path, name))
    assert os.path.samefile(os.path.join(target, "physfn"), small.functions[pf].path)
    # by name nothing is wrong: the reference scanner, which reads link names, sees the old tree
    assert reference.scan(small) == small.expected()


def test_bad_vpd_still_gives_the_serial(small):
    pf = small.pfs[0]
    blob = bytearray(small.functions[pf].vpd)
    blob[-2] ^= 0xFF  # the RV checksum byte
    testing.set_attribute(small, pf, "vpd", bytes(blob), mode=0o600)
    assert fastvpd.parse_vpd(bytes(blob)).checksum_ok is False
    assert by_address(reference.scan(small))[pf]["card_serial_number"] == "MT2113X00000"
    testing.set_attribute(small, pf, "vpd", b"\xff" * 64, mode=0o600)  # unprogrammed EEPROM
    got = by_address(reference.scan(small))
    assert got[pf]["card_serial_number"] is None
    assert all(got[vf]["card_serial_number"] is None for vf in small.functions[pf].vfs)


# -- Nova dicts -----------------------------------------------------------------------------------

def test_to_nova_shapes(root):
    host = build_host(root, mixed_spec())
    nova = {d["address"]: d for d in reference.to_nova(reference.scan(root))}
    card0, card1 = host.cards
    pf = host.functions[card0.pfs[0]]
    vf0 = nova[pf.vfs[0]]
    assert vf0 == {
        "dev_id": "pci_" + pf.vfs[0].replace(":", "_").replace(".", "_"),
        "address": pf.vfs[0],
        "vendor_id": "15b3",
        "product_id": "101e",
        "numa_node": 0,
        "label": "label_15b3_101e",
        "dev_type": "type-VF",
        "parent_addr": pf.address,
        "parent_ifname": pf.netdevs[0],
        "capabilities": {"sriov": {"pf_mac_address": pf.macs[0], "vf_num": 0},
                         "vpd": {"card_serial_number": "MT2113X00000"}},
    }
    # Nova 34's order (Host._get_pcidev_info): product_id before vendor_id
    assert list(vf0) == ["dev_id", "address", "product_id", "vendor_id", "numa_node", "label",
                         "dev_type", "parent_addr", "parent_ifname", "capabilities"]
    assert vf0["capabilities"]["sriov"]["vf_num"] == 0  # VF 0 keeps its number
    pf_d = nova[pf.address]
    assert pf_d["mac_address"] == pf.macs[0] and "parent_addr" not in pf_d
    assert pf_d["capabilities"] == {"vpd": {"card_serial_number": "MT2113X00000"}}
    # a PF without netdev: its VFs get neither parent_ifname nor sriov, but keep the serial
    vf1 = nova[card1.vfs[0]]
    assert "parent_ifname" not in vf1 and vf1["capabilities"] == {
        "vpd": {"card_serial_number": "MT2113X00001"}}
    assert "mac_address" not in nova[card1.pfs[0]] and "mac_address" not in vf1
    # no VPD, not a VF: no capabilities key at all
    plain = [d for d in nova.values() if d["vendor_id"] in ("8086", "144d")]
    assert len(plain) == 4
    for d in plain:
        assert "mac_address" not in d and "parent_addr" not in d
        if d["vendor_id"] == "8086" and "capabilities" in d:
            assert d["capabilities"] == {"vpd": {"card_serial_number": "NICSERIAL1"}}
    assert sum("capabilities" not in d for d in plain) == 3
    # without VPD a VF still has sriov; without VPD and PF MAC it has no capabilities
    bare = reference.to_nova(reference.scan(root, read_vpd=False))
    by = {d["address"]: d for d in bare}
    assert by[pf.vfs[0]]["capabilities"] == {"sriov": {"pf_mac_address": pf.macs[0], "vf_num": 0}}
    assert "capabilities" not in by[card1.vfs[0]]


def test_to_nova_leaves_out_functions_without_ids(small):
    testing.garbage_attribute(small, small.vfs[0], "device")
    nova = reference.to_nova(reference.scan(small))
    assert small.vfs[0] not in {d["address"] for d in nova}
    assert len(nova) == len(small.functions) - 1


# -- nova-like baseline ---------------------------------------------------------------------------

def test_nova_like_baseline_agrees(root):
    host = dpu_host(root, cards=1, pfs_per_card=2, vfs_per_pf=12, others=[OtherSpec()])
    got = baselines.nova_like_scan(root)
    want = {d["address"]: (d["pf_mac_address"], d["vf_num"])
            for d in host.expected() if d["dev_type"] == "type-VF"}
    assert got == want
    vf = host.vfs[0]
    assert baselines.nova_vf_num(root, vf) == 0
    with pytest.raises(baselines.NotFound):
        baselines.nova_vf_num(root, host.pfs[0])  # a PF has no physfn


# -- speed ----------------------------------------------------------------------------------------

@pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="needs tmpfs for a fair timing")
def test_builds_8_pfs_x_512_vfs_in_seconds(root):
    start = time.perf_counter()
    host = dpu_host(root, cards=4, pfs_per_card=2, vfs_per_pf=512)
    elapsed = time.perf_counter() - start
    assert len(host.pfs) == 8 and len(host.vfs) == 8 * 512
    assert elapsed < 5, f"building 8x512 took {elapsed:.1f} s"
    got = reference.scan(root)
    assert got == host.expected()
