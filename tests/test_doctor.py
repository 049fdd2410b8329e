"""`fastvpd.doctor.check` on its own: one synthetic host per reason, the verdict rules, the cost.

Each host is `fastvpd.testing`'s DPU host broken in one way; the test asserts which devices get
the reason (and that the others do not), the component named and the exit status. What Nova
itself does on the same hosts is in tests/test_doctor_nova.py; the command in
tests/test_cli_doctor.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fastvpd
from fastvpd import build_vpd, doctor, testing
from fastvpd.doctor import CODES, Report, check
from fastvpd.profile import load_device_specs
from fastvpd.testing import DpuSpec, HostSpec

ROOT = Path(__file__).resolve().parent.parent
RM = '{"vendor_id": "15b3", "product_id": "101e", "remote_managed": "true"}'


def small(tmp_path: Path, **options: Any) -> testing.BuiltHost:
    """One card, two PFs (0000:03:00.0 and .1), two VFs each: 03:00.2-3 and 03:01.2-3."""
    return testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=2, vfs_per_pf=2, **options)


def codes(report: Report, address: str) -> list[str]:
    """The reason codes of one device (a PF or a VF)."""
    for card in report.cards:
        for pf in card.pfs:
            if pf.address == address:
                return [r.code for r in pf.reasons]
            for vf in pf.vfs:
                if vf.address == address:
                    return [r.code for r in vf.reasons]
    for vf in report.stray_vfs:
        if vf.address == address:
            return [r.code for r in vf.reasons]
    raise AssertionError(f"{address} is not in the report")


def vf_codes(report: Report) -> dict[str, list[str]]:
    return {vf.address: [r.code for r in vf.reasons] for vf in report.vfs()}


def reason(report: Report, address: str, code: str) -> doctor.Reason:
    vf = next(v for v in report.vfs() if v.address == address)
    return next(r for r in vf.reasons if r.code == code)


# -- a healthy host --------------------------------------------------------------------------------

def test_a_healthy_host_is_ready_with_and_without_specs(tmp_path: Path) -> None:
    host = small(tmp_path)
    inv = fastvpd.scan(host)
    bare = check(inv)
    assert bare.ready and bare.exit_status == 0 and bare.reasons == ()
    assert [n.code for n in bare.notes] == ["no-device-spec"] and bare.specs is None
    assert all(vf.ready and vf.spec is None for vf in bare.vfs())
    report = check(inv, [RM])
    assert report.ready and report.exit_status == 0 and report.notes == ()
    assert [vf.address for vf in report.vfs()] == host.vfs
    assert all(vf.ready and vf.spec == 0 and vf.remote_managed for vf in report.vfs())
    (card,) = report.cards
    assert card.slot == "0000:03:00" and card.serials == (testing.dpu_serial(0),)
    assert card.ready and card.name and card.name.startswith("BlueField-2 DPU")
    assert [pf.address for pf in card.pfs] == host.pfs
    for pf in card.pfs:
        built = host.functions[pf.address]
        assert pf.ready and pf.ready_vfs == 2 and pf.mac_address == built.mac_address
        assert pf.netdev == built.netdevs[0] and [v.vf_num for v in pf.vfs] == [0, 1]
        assert [v.address for v in pf.vfs] == list(built.vfs)
    assert report.counted_vfs() == list(report.vfs())
    assert report.specs is not None and report.specs[0].vfs == 4 and report.specs[0].reasons == ()


# -- one host per reason: the card serial number ---------------------------------------------------

def _vpd(blob: bytes) -> Callable[[testing.BuiltHost], None]:
    def put(host: testing.BuiltHost) -> None:
        testing.set_attribute(host, host.pfs[0], "vpd", blob, mode=0o600)
    return put


def _bad_checksum(serial: str) -> bytes:
    """A blob libvirt rejects (the RV checksum is off by one) that still holds `serial`."""
    blob = bytearray(build_vpd("BlueField-2 DPU", [("PN", "X1"), ("SN", serial)]))
    blob[-2] ^= 1  # the checksum byte of RV, just before the end tag
    return bytes(blob)


SERIAL_CASES: dict[str, tuple[str, Callable[[testing.BuiltHost], Any], str]] = {
    # case: (code, what breaks PF 0, component)
    "no vpd file": ("vpd-missing", lambda h: testing.remove_attribute(h, h.pfs[0], "vpd"),
                    doctor.NOVA),
    "vpd a FIFO": ("vpd-unreadable", lambda h: testing.fifo_attribute(h, h.pfs[0], "vpd"),
                   doctor.NOVA),
    "vpd a directory": ("vpd-unreadable",
                        lambda h: testing.directory_attribute(h, h.pfs[0], "vpd"), doctor.NOVA),
    "no SN": ("no-card-serial", _vpd(build_vpd("Card", [("PN", "X1")])), doctor.NOVA),
    "SN not text": ("no-card-serial", _vpd(build_vpd("Card", [("SN", b"\xff\x01")])),
                    doctor.NOVA),
    "blank EEPROM": ("no-card-serial", _vpd(b"\xff" * 64), doctor.NOVA),
    "empty SN": ("vpd-empty-serial", _vpd(build_vpd("Card", [("SN", "  ")])), doctor.NOVA),
    "bad checksum": ("vpd-rejected-by-libvirt", _vpd(_bad_checksum(testing.dpu_serial(0))),
                     doctor.LIBVIRT),
}


@pytest.mark.parametrize("case", SERIAL_CASES)
def test_card_serial_reasons(tmp_path: Path, case: str) -> None:
    code, breaks, component = SERIAL_CASES[case]
    host = small(tmp_path)
    breaks(host)
    inv = fastvpd.scan(host)
    pf0, pf1 = host.pfs
    for report in (check(inv), check(inv, [RM])):
        assert report.exit_status == 1 and report.reasons == ()
        got = vf_codes(report)
        for vf in host.functions[pf0].vfs:
            assert got[vf] == [code], (vf, got[vf])
        assert all(got[vf] == [] for vf in host.functions[pf1].vfs)
        assert codes(report, pf0) == [code] and codes(report, pf1) == []
        r = reason(report, host.functions[pf0].vfs[0], code)
        assert r.component == component and r.subject == f"{host.root}/bus/pci/devices/{pf0}/vpd"
        assert pf0 in r.message
    if code == "vpd-rejected-by-libvirt":
        assert "checksum wrong" in r.message and repr(testing.dpu_serial(0)) in r.message
    else:
        assert "remote_managed device_spec entries only to devices with a card serial" in r.message
    if case == "blank EEPROM":
        assert "no VPD: empty, or first byte 0x00/0xFF" in r.message
    # a remote_managed spec does not match a VF without a serial, but it is the one meant for
    # it: the VF counts, and its reason is the serial, not the spec
    vf = next(v for v in check(inv, [RM]).vfs() if v.address == host.functions[pf0].vfs[0])
    assert vf.spec == 0 and vf.remote_managed


def test_a_strict_scan_says_libvirt_rejects_the_blob(tmp_path: Path) -> None:
    host = small(tmp_path)
    _vpd(_bad_checksum(testing.dpu_serial(0)))(host)
    report = check(fastvpd.scan(host, strict_vpd=True), [RM])
    assert codes(report, host.pfs[0]) == ["vpd-rejected-by-libvirt"]
    assert codes(report, host.pfs[1]) == []


def test_one_card_reporting_two_serials(tmp_path: Path) -> None:
    host = small(tmp_path)
    testing.set_attribute(host, host.pfs[1], "vpd", build_vpd("Card", [("SN", "OTHER01")]),
                          mode=0o600)
    report = check(fastvpd.scan(host), [RM])
    (card,) = report.cards
    assert card.serials == (testing.dpu_serial(0), "OTHER01")
    assert [r.code for r in card.reasons] == ["card-two-serials"]
    r = card.reasons[0]
    assert r.component == doctor.NEUTRON_OVN and r.subject == "0000:03:00"
    assert "does not exist" in r.message and "OTHER01" in r.message
    assert all(c == ["card-two-serials"] for c in vf_codes(report).values())
    assert report.exit_status == 1


def test_one_serial_shared_by_two_cards(tmp_path: Path) -> None:
    host = testing.build_host(tmp_path / "sys", HostSpec(dpus=[
        DpuSpec(pfs=1, vfs_per_pf=2, serial="SAME0001"), DpuSpec(pfs=1, vfs_per_pf=2),
        DpuSpec(pfs=1, vfs_per_pf=2, serial="SAME0001")]))
    report = check(fastvpd.scan(host), [RM])
    shared = {c.slot for c in report.cards if [r.code for r in c.reasons] == ["serial-shared"]}
    assert shared == {"0000:03:00", "0000:05:00"}
    assert next(c for c in report.cards if c.slot == "0000:04:00").ready
    r = report.cards[0].reasons[0]
    assert "card-serial-number=SAME0001 (exact match)" in r.message and "0000:05:00" in r.message
    assert sum(vf.ready for vf in report.vfs()) == 2 and report.exit_status == 1


# -- the PF MAC ------------------------------------------------------------------------------------

def _ifname(host: testing.BuiltHost, pf: str) -> str:
    return host.functions[pf].netdevs[0]


MAC_CASES: dict[str, tuple[str, Callable[[testing.BuiltHost], Any], str, bool]] = {
    # case: (code, what breaks PF 0, component, PF 1 affected too)
    "no MAC file": ("pf-no-mac", lambda h: testing.remove_attribute(
        h, h.pfs[0], f"net/{_ifname(h, h.pfs[0])}/address"), doctor.NEUTRON_OVN, False),
    "zero MAC": ("pf-mac-zero", lambda h: testing.set_attribute(
        h, h.pfs[0], f"net/{_ifname(h, h.pfs[0])}/address", "00:00:00:00:00:00\n"),
        doctor.OVN_VIF, False),
    "duplicate MAC": ("pf-mac-duplicate", lambda h: testing.set_attribute(
        h, h.pfs[1], f"net/{_ifname(h, h.pfs[1])}/address",
        h.functions[h.pfs[0]].mac_address + "\n"), doctor.OVN_VIF, True),
}


@pytest.mark.parametrize("case", MAC_CASES)
def test_pf_mac_reasons(tmp_path: Path, case: str) -> None:
    code, breaks, component, both = MAC_CASES[case]
    host = small(tmp_path)
    breaks(host)
    report = check(fastvpd.scan(host), [RM])
    pf0, pf1 = host.pfs
    assert codes(report, pf0) == [code] and codes(report, pf1) == ([code] if both else [])
    got = vf_codes(report)
    assert all(got[vf] == [code] for vf in host.functions[pf0].vfs)
    assert all(got[vf] == ([code] if both else []) for vf in host.functions[pf1].vfs)
    r = reason(report, host.functions[pf0].vfs[1], code)
    assert r.component == component and r.subject == pf0
    if both:
        assert pf1 in r.message
    assert report.exit_status == 1


def test_pf_without_netdev(tmp_path: Path) -> None:
    host = testing.build_host(tmp_path / "sys", HostSpec(dpus=[
        DpuSpec(pfs=1, vfs_per_pf=3), DpuSpec(pfs=1, vfs_per_pf=3, pf_driver="vfio-pci",
                                              pf_netdevs=False, vf_netdevs=False)]))
    inv = fastvpd.scan(host)
    report = check(inv, [RM])
    bad = host.pfs[1]
    assert codes(report, bad) == ["pf-no-netdev"] and codes(report, host.pfs[0]) == []
    pf = next(p for c in report.cards for p in c.pfs if p.address == bad)
    assert [vf.vf_num for vf in pf.vfs] == [0, 1, 2]  # known without a MAC to carry them
    assert all(vf.reasons == pf.reasons for vf in pf.vfs)
    r = pf.reasons[0]
    assert r.component == doctor.NEUTRON_OVN and "driver vfio-pci" in r.message
    assert "card_serial_number, pf_mac_address and vf_num are all required" in r.message


# -- the VF ----------------------------------------------------------------------------------------

def test_a_missing_virtfn_link_fails_every_vf_of_the_host(tmp_path: Path) -> None:
    host = testing.dpu_host(tmp_path / "sys", cards=2, pfs_per_card=1, vfs_per_pf=3)
    pf = host.pfs[0]
    lost = host.functions[pf].vfs[1]
    testing.remove_attribute(host, pf, "virtfn1")
    for report in (check(fastvpd.scan(host)), check(fastvpd.scan(host), [RM])):
        assert [r.code for r in report.reasons] == ["virtfn-missing"]
        assert lost in report.reasons[0].message and report.reasons[0].subject == "host"
        got = vf_codes(report)
        assert set(got) == set(host.vfs)
        assert all(c == ["virtfn-missing"] for c in got.values())  # once each, own or host's
        own = reason(report, lost, "virtfn-missing")
        assert own.subject == lost and f"its PF {pf} has no virtfn link to {lost}" in own.message
        assert "Nova 34" in own.message and "no PCI device at all" in own.message
        assert reason(report, host.vfs[-1], "virtfn-missing") is report.reasons[0]
        vf = next(v for v in report.vfs() if v.address == lost)
        assert vf.vf_num is None and vf.pf_address == pf
        assert [v.vf_num for c in report.cards[:1] for p in c.pfs for v in p.vfs] == [0, 2, None]
        assert report.exit_status == 1


def test_a_vf_whose_ids_cannot_be_read(tmp_path: Path) -> None:
    host = small(tmp_path)
    vf = host.functions[host.pfs[0]].vfs[0]  # the VF the scan reads; it reads the others then
    testing.garbage_attribute(host, vf, "device")
    inv = fastvpd.scan(host)
    assert inv.nova_dict(vf) is None
    report = check(inv, [RM])
    got = vf_codes(report)
    assert got[vf] == ["vf-ids-unreadable"] and sum(c == [] for c in got.values()) == 3
    assert not next(v for v in report.vfs() if v.address == vf).remote_managed
    assert check(inv).exit_status == 1  # without specs every VF counts
    assert report.exit_status == 0  # the spec tags the other VFs, which are ready


def test_vfs_whose_pf_is_gone(tmp_path: Path) -> None:
    host = testing.dpu_host(tmp_path / "sys", cards=2, pfs_per_card=1, vfs_per_pf=2)
    gone = host.pfs[0]
    testing.dangling_device_link(host, gone)  # the PF went away; its VFs are still listed
    report = check(fastvpd.scan(host), [RM])
    assert [v.address for v in report.stray_vfs] == list(host.functions[gone].vfs)
    assert [c.slot for c in report.cards] == ["0000:04:00"] and report.cards[0].ready
    got = vf_codes(report)
    assert all(got[vf] == ["vf-without-pf"] for vf in host.functions[gone].vfs)
    assert report.reasons == ()  # unlike a lost virtfn link, it hides nothing else from Nova
    assert all(v.remote_managed for v in report.stray_vfs) and report.exit_status == 1
    r = reason(report, host.functions[gone].vfs[0], "vf-without-pf")
    assert r.subject == host.functions[gone].vfs[0] and "is not in the scan" in r.message


# -- device_spec -----------------------------------------------------------------------------------

def test_no_matching_spec(tmp_path: Path) -> None:
    host = small(tmp_path)
    report = check(fastvpd.scan(host), ['{"product_id": "1234", "remote_managed": "true"}'])
    assert all(c == ["no-matching-spec"] for c in vf_codes(report).values())
    assert [r.code for r in report.reasons] == ["no-remote-managed-vf"]
    assert [n.code for n in report.notes] == ["spec-matches-no-vf"]
    assert report.counted_vfs() == [] and report.exit_status == 1
    assert "COMPUTE_REMOTE_MANAGED_PORTS" in report.reasons[0].message


def test_a_spec_without_remote_managed(tmp_path: Path) -> None:
    host = small(tmp_path)
    inv = fastvpd.scan(host)
    plain = check(inv, ['{"vendor_id": "15b3", "product_id": "101e"}'])
    assert all(c == ["spec-not-remote-managed"] for c in vf_codes(plain).values())
    assert [r.code for r in plain.reasons] == ["no-remote-managed-vf"]
    # PF 0's VFs by an address glob, the rest by a later entry: only the tagged VFs count
    mixed = check(inv, ['{"address": "0000:03:00.*", "product_id": "101e", '
                        '"remote_managed": "true"}', '{"product_id": "101e"}'])
    pf0, pf1 = (host.functions[a].vfs for a in host.pfs)
    got = vf_codes(mixed)
    assert all(got[vf] == [] for vf in pf0)
    assert all(got[vf] == ["spec-not-remote-managed"] for vf in pf1)
    assert [v.spec for v in mixed.vfs()] == [0, 0, 1, 1]
    r = reason(mixed, pf1[0], "spec-not-remote-managed")
    assert r.subject == "device_spec entry [1]" and '{"product_id": "101e"}' in r.message
    assert mixed.exit_status == 0 and len(mixed.counted_vfs()) == 2
    assert not mixed.cards[0].ready and mixed.cards[0].pfs[0].ready


@pytest.mark.parametrize("value", ["yes", "1", "on", "True ", True, 1])
def test_the_trait_trap(tmp_path: Path, value: Any) -> None:
    host = small(tmp_path)
    entry = json.dumps({"vendor_id": "15b3", "product_id": "101e", "remote_managed": value})
    report = check(fastvpd.scan(host), [entry])
    assert all(c == ["trait-trap"] for c in vf_codes(report).values())
    r = reason(report, host.vfs[0], "trait-trap")
    assert r.subject == "device_spec entry [0]" and 'write "remote_managed": "true"' in r.message
    assert len(report.counted_vfs()) == 4 and report.exit_status == 1
    assert all(r2 is r for vf in report.vfs() for r2 in vf.reasons)  # one object, shared


def test_every_invalid_entry_is_reported_and_the_rest_still_checked(tmp_path: Path) -> None:
    host = small(tmp_path)
    pf0 = host.pfs[0]
    entries = [
        '{"address": "0000:03:00.8"}',  # [0]
        '[{"product_id": "zz"}, {"product_id": "101e", "address": "0000:03:01.*", '
        '"remote_managed": "true"}, [{"vendor_id": "15b3"}]]',  # [1] bad, [2] good, [3] a list
        "not json",  # [4]
        json.dumps({"address": pf0, "product_id": "101e", "remote_managed": "true"}),  # [5]
        {"product_id": "101e", "remote_managed": "true"},  # [6] a dict, as from Python
    ]
    report = check(fastvpd.scan(host), entries)
    assert report.specs is not None
    assert [(s.index, s.spec is not None, [r.code for r in s.reasons]) for s in report.specs] == [
        (0, False, ["spec-invalid"]), (1, False, ["spec-invalid"]), (2, True, []),
        (3, False, ["spec-invalid"]), (4, False, ["spec-invalid"]),
        (5, True, ["spec-invalid"]), (6, True, [])]
    assert [r.subject for r in report.reasons] == [f"device_spec entry [{i}]"
                                                   for i in (0, 1, 3, 4, 5)]
    messages = [r.message for r in report.reasons]
    assert "address function '8' is above the maximum 7" in messages[0]
    assert "product_id 'zz' is not a hex number" in messages[1]
    assert "expected a dict" in messages[2] and "not valid JSON" in messages[3]
    assert "Nova 34 rejects" in messages[4] and "PciDeviceNotFoundById" in messages[4]
    assert report.specs[1].entry == {"product_id": "zz"} and report.specs[4].entry == "not json"
    # the valid entries still decide each VF (entry [5] too, as fastvpd reads it: PF 0's VFs);
    # every VF carries the invalid entries' reasons
    assert [v.spec for v in report.vfs()] == [5, 5, 2, 2]
    assert all(c == ["spec-invalid"] * 5 for c in vf_codes(report).values())
    assert report.exit_status == 1


def test_device_spec_objects_are_taken_as_they_are(tmp_path: Path) -> None:
    host = small(tmp_path)
    inv = fastvpd.scan(host)
    specs = load_device_specs([RM])  # unbound: check binds them to the inventory
    report = check(inv, specs)
    assert report.ready and report.specs is not None and report.specs[0].spec is not None
    assert report.specs[0].spec.entry == json.loads(RM)


def test_a_host_without_vfs(tmp_path: Path) -> None:
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=0)
    for report in (check(fastvpd.scan(host)), check(fastvpd.scan(host), [RM])):
        assert [r.code for r in report.reasons] == ["no-vfs"] and report.exit_status == 1
        assert report.cards[0].pfs[0].vfs == () and not report.cards[0].ready


# -- the report ------------------------------------------------------------------------------------

def test_to_dict_has_one_object_per_pf_and_vf(tmp_path: Path) -> None:
    host = small(tmp_path)
    testing.remove_attribute(host, host.pfs[0], "vpd")
    report = check(fastvpd.scan(host), [RM])
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ready"] is False and data["exit_status"] == 1
    assert data["counted_vfs"] == 4 and data["ready_vfs"] == 2
    devices = data["devices"]
    assert [d["address"] for d in devices] == sorted(host.pfs + host.vfs)
    vf = next(d for d in devices if d["address"] == host.vfs[0])
    assert vf == {"address": host.vfs[0], "dev_type": "type-VF", "card": "0000:03:00",
                  "pf": host.pfs[0], "vf_num": 0, "ready": False, "spec": 0,
                  "remote_managed": True, "reasons": [reason(report, host.vfs[0],
                                                             "vpd-missing").to_dict()]}
    pf = next(d for d in devices if d["address"] == host.pfs[1])
    assert pf["ready"] is True and pf["reasons"] == [] and pf["vfs"] == pf["ready_vfs"] == 2
    assert set(vf["reasons"][0]) == {"code", "component", "message", "subject"}
    assert data["cards"][0]["serials"] == [testing.dpu_serial(0)]
    assert data["specs"][0]["entry"] == json.loads(RM) and data["specs"][0]["vfs"] == 4


def test_reasons_are_shared_not_copied(tmp_path: Path) -> None:
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=8, vpd=False)
    pf = check(fastvpd.scan(host), [RM]).cards[0].pfs[0]
    assert all(vf.reasons[0] is pf.reasons[0] for vf in pf.vfs)


def test_unknown_codes_and_wrong_components_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown doctor reason code"):
        doctor.Reason("no-such-code", doctor.NOVA, "x", "y")
    with pytest.raises(ValueError, match="is about Nova, not libvirt"):
        doctor.Reason("vpd-missing", doctor.LIBVIRT, "x", "y")


def test_check_of_a_big_host_builds_no_vf_objects(tmp_path: Path) -> None:
    """The facts come from the Nova dicts: only the PFs become PciDevice objects, and the bulk
    read of VF details never happens (counted, not timed)."""
    host = testing.dpu_host(tmp_path / "sys", cards=2, pfs_per_card=2, vfs_per_pf=64,
                            vf_driver="vfio-pci", vf_netdevs=False)
    inv = fastvpd.scan(host)
    report = check(inv, [RM])
    assert report.ready and sum(1 for _ in report.vfs()) == 256
    assert len(inv._devices) == 4 and inv._details_loader is not None
    # a PF without a MAC: its VFs' numbers need the VFs, read in one bulk call
    testing.remove_attribute(host, host.pfs[0], f"net/{_ifname(host, host.pfs[0])}/address")
    inv = fastvpd.scan(host)
    calls = []
    loader = inv._details_loader
    inv._details_loader = lambda wanted: calls.append(len(wanted)) or loader(wanted)
    report = check(inv, [RM])
    assert calls == [256]  # every VF the scan inferred, in one call
    assert [v.vf_num for v in report.cards[0].pfs[0].vfs] == list(range(64))


# -- docs ------------------------------------------------------------------------------------------

def test_the_code_table_of_the_docs_is_the_code_table() -> None:
    text = (ROOT / "docs" / "doctor.md").read_text()
    table = re.findall(r"^\| `([a-z0-9-]+)` \| ([^|]+) \|", text, re.M)
    assert [(code, component.strip()) for code, component in table] == [
        (code, component) for code, (component, _) in CODES.items()]
    assert "docs/doctor.md" in (ROOT / "README.md").read_text()
    assert "(doctor.md)" in (ROOT / "docs" / "README.md").read_text()
