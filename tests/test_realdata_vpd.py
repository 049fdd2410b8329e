"""The six real VPD images in tests/data/vpd (see INDEX.json and NOTICE.md there).

For each image: what tolerant `parse_vpd` extracts (name, fields, the serial a compute agent
would report), the exact problem list, and strict mode's verdict, which the test name states.
`test_raw_values_agree_with_lspci` then runs ``lspci -vv`` on every image (tests/lspci_oracle.py)
and checks that fastvpd's name, raw values, checksum verdict and end-tag verdict are what lspci
prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastvpd import parse_vpd
from fastvpd.errors import VpdFormatError

from tests import lspci_oracle
from tests.test_realdata_lspci import normalise

VPD_DIR = Path(__file__).parent / "data" / "vpd"
INDEX = json.loads((VPD_DIR / "INDEX.json").read_text())
IMAGES = sorted(p.name for p in VPD_DIR.glob("*.bin"))


def blob(name: str) -> bytes:
    return (VPD_DIR / name).read_bytes()


def assert_strict_fails(data: bytes, message: str, offset: int) -> None:
    with pytest.raises(VpdFormatError) as exc:
        parse_vpd(data, strict=True)
    assert str(exc.value) == message
    assert exc.value.offset == offset


def test_every_image_is_indexed_and_tested():
    assert sorted(entry["file"] for entry in INDEX) == IMAGES
    assert sorted(TESTED) == IMAGES


def test_qle2742_clean_sysfs_dump_passes_strict():
    data = blob("qlogic_qle2742.bin")
    vpd = parse_vpd(data, strict=True)
    assert vpd == parse_vpd(data)
    assert vpd.name == "QLogic 32Gb 2-port FC to PCIe Gen3 x8 Adapter"
    assert dict(vpd.read_only) == {"PN": b"QLE2742", "SN": b"AFD1533Y02999",
                                   "EC": b"BK3210407-05 03", "V9": b"010189"}
    assert list(vpd.read_only) == ["PN", "SN", "EC", "V9"]
    assert dict(vpd.read_write) == {}
    assert vpd.serial_number == "AFD1533Y02999"
    assert vpd.part_number == "QLE2742" and vpd.change_level == "BK3210407-05 03"
    assert dict(vpd.vendor_fields) == {"9": "010189"}
    assert vpd.checksum_ok is True
    assert vpd.problems == ()


def test_bcm95720_truncated_inside_rv_fails_strict_but_gives_serial():
    # The NVRAM dump stops 16 bytes into RV's 29 (VPD-R declares 75 bytes, 65 are there), before
    # any end tag. The checksum byte is there, and right.
    data = blob("broadcom_bcm95720_nvram_0x100.bin")
    assert_strict_fails(data, "offset 50: resource 0x90 runs past the end of the data", 50)
    vpd = parse_vpd(data)
    assert vpd.name == "Broadcom NetXtreme Gigabit Ethernet Controller"  # trailing NUL cut
    assert dict(vpd.read_only) == {"PN": b"BCM95720", "EC": b"106679-15", "SN": b"0123456789",
                                   "MN": b"14e4"}
    assert list(vpd.read_only) == ["PN", "EC", "SN", "MN"]
    assert dict(vpd.read_write) == {}
    # A factory placeholder: a compute agent reports it as is (so do Nova/libvirt).
    assert vpd.serial_number == "0123456789"
    assert vpd.part_number == "BCM95720" and vpd.manufacture_id == "14e4"
    assert vpd.checksum_ok is True
    assert vpd.problems == (
        "offset 50: resource 0x90 runs past the end of the data",
        "offset 96: field RV runs past the end of its resource or of the data",
        "offset 115: no end tag before the data ends",
    )
    assert vpd.fatal_problems == vpd.problems


def test_bcm95719_partial_dump_without_end_tag_fails_strict_but_gives_serial():
    # 128 bytes: the whole identifier string and VPD-R, then the dump stops before VPD-W.
    data = blob("broadcom_bcm95719_nvram_0x100.bin")
    assert_strict_fails(data, "offset 128: no end tag before the data ends", 128)
    vpd = parse_vpd(data)
    assert vpd.name == "Broadcom NetXtreme Gigabit Ethernet Controller"
    assert dict(vpd.read_only) == {"PN": b"BCM95719", "EC": b"106679-15", "SN": b"0123456789",
                                   "MN": b"14e4"}
    assert dict(vpd.read_write) == {}
    assert vpd.serial_number == "0123456789"  # placeholder, reported as is
    assert vpd.checksum_ok is True
    assert vpd.problems == ("offset 128: no end tag before the data ends",)
    # The same 128 bytes open the full Talos II image: the dump is a prefix of it.
    assert blob("broadcom_bcm5719_default_vpd_talos2_bcm5719fw.bin")[:128] == data


def test_bcm5719_talos2_default_image_passes_strict_with_placeholder_serial():
    data = blob("broadcom_bcm5719_default_vpd_talos2_bcm5719fw.bin")
    vpd = parse_vpd(data, strict=True)
    assert vpd == parse_vpd(data)
    # The identifier string's trailing NUL is cut, as libvirt does.
    assert vpd.name == "Broadcom NetXtreme Gigabit Ethernet Controller"
    assert list(vpd.read_only) == ["PN", "EC", "SN", "MN"]
    assert dict(vpd.read_write) == {"YA": b"XYZ01234567"}  # the 107-byte RW is not a field
    # Vendor placeholders: a compute agent reports them as is, like Nova/libvirt.
    assert vpd.serial_number == "0123456789"
    assert vpd.asset_tag == "XYZ01234567"
    assert vpd.part_number == "BCM95719" and vpd.change_level == "106679-15"
    assert vpd.manufacture_id == "14e4"
    assert dict(vpd.system_fields) == {}
    assert vpd.checksum_ok is True
    assert vpd.problems == ()


def test_hp_361i_na_values_and_ff_fields_pass_strict_with_serial_na():
    # The vendor programmed N/A for PN/EC/SN and 0xFF-filled YB/YC: the 0xFF values are only
    # non-fatal problems (libvirt skips them too), so strict mode accepts the image.
    data = blob("hp_361i_i350_libvirt.bin")
    vpd = parse_vpd(data, strict=True)
    assert vpd == parse_vpd(data)
    assert vpd.name == "HP Ethernet 1Gb 2-port 361i Adapter"
    assert dict(vpd.read_only) == {"PN": b"N/A", "EC": b"N/A", "SN": b"N/A",
                                   "V0": b"4W/1W PCIeG2x4 2p 1GbE RJ45 Intel i350   "}
    assert dict(vpd.read_write) == {"V1": b"5.7.06", "V3": b"2.8.20", "V6": b"1.5.35",
                                    "YA": b"N/A", "YB": b"\xff" * 16, "YC": b"\xff" * 13}
    assert list(vpd.read_write) == ["V1", "V3", "V6", "YA", "YB", "YC"]  # RW (length 0) not a field
    # 'N/A' is what the card says. A compute agent reports that placeholder as is, like
    # Nova/libvirt: it is text, so it is the serial; deciding it means "none" is not ours to do.
    assert vpd.serial_number == "N/A"
    assert vpd.part_number == "N/A" and vpd.change_level == "N/A" and vpd.asset_tag == "N/A"
    assert dict(vpd.vendor_fields) == {"0": "4W/1W PCIeG2x4 2p 1GbE RJ45 Intel i350"}
    assert dict(vpd.system_fields) == {}  # YB/YC are not text
    assert vpd.checksum_ok is True
    assert vpd.problems == ("offset 143: field YB is not printable ASCII",
                            "offset 162: field YC is not printable ASCII")
    assert vpd.fatal_problems == ()


def test_i350_t4_ocp_reconstructed_sysfs_read_passes_strict():
    data = blob("intel_i350_t4_ocp3_node_exporter_reconstructed.bin")
    vpd = parse_vpd(data, strict=True)
    assert vpd == parse_vpd(data)
    name = "Intel (r) Ethernet Network Adapter I350-T4 for OCP NIC 3.0"
    assert vpd.name == name
    assert dict(vpd.read_only) == {"V1": name.encode(), "PN": b"K53978-004",
                                   "SN": b"6805CAF0CB12", "V2": b"4521"}
    assert list(vpd.read_only) == ["V1", "PN", "SN", "V2"]
    assert dict(vpd.read_write) == {}
    assert vpd.serial_number == "6805CAF0CB12"
    assert vpd.part_number == "K53978-004" and vpd.change_level is None  # no EC on this card
    assert dict(vpd.vendor_fields) == {"1": name, "2": "4521"}
    assert vpd.checksum_ok is True
    assert vpd.problems == ()


TESTED = {
    "qlogic_qle2742.bin": test_qle2742_clean_sysfs_dump_passes_strict,
    "broadcom_bcm95720_nvram_0x100.bin":
        test_bcm95720_truncated_inside_rv_fails_strict_but_gives_serial,
    "broadcom_bcm95719_nvram_0x100.bin":
        test_bcm95719_partial_dump_without_end_tag_fails_strict_but_gives_serial,
    "broadcom_bcm5719_default_vpd_talos2_bcm5719fw.bin":
        test_bcm5719_talos2_default_image_passes_strict_with_placeholder_serial,
    "hp_361i_i350_libvirt.bin": test_hp_361i_na_values_and_ff_fields_pass_strict_with_serial_na,
    "intel_i350_t4_ocp3_node_exporter_reconstructed.bin":
        test_i350_t4_ocp_reconstructed_sysfs_read_passes_strict,
}


@pytest.fixture(scope="module")
def lspci_decoded(tmp_path_factory) -> dict[str, lspci_oracle.LspciVpd]:
    """One lspci run over a fake sysfs tree holding every image."""
    if not lspci_oracle.available():
        pytest.skip("lspci not found: install pciutils (Debian package pciutils)")
    devices = lspci_oracle.run([blob(n) for n in IMAGES], tmp_path_factory.mktemp("sysfs"))
    return dict(zip(IMAGES, devices))


# lspci reads only RV's checksum byte and stops at the end of the data, so it decodes the
# truncated dumps too; it prints RV's declared size (29 bytes: 28 reserved).
LSPCI_RV_RESERVED = {
    "qlogic_qle2742.bin": 0,
    "broadcom_bcm95720_nvram_0x100.bin": 28,
    "broadcom_bcm95719_nvram_0x100.bin": 28,
    "broadcom_bcm5719_default_vpd_talos2_bcm5719fw.bin": 28,
    "hp_361i_i350_libvirt.bin": 0,
    "intel_i350_t4_ocp3_node_exporter_reconstructed.bin": 0,
}
LSPCI_RW_FREE = {"broadcom_bcm5719_default_vpd_talos2_bcm5719fw.bin": [("W", 107)],
                 "hp_361i_i350_libvirt.bin": [("W", 0)]}


@pytest.mark.parametrize("name", IMAGES)
def test_raw_values_agree_with_lspci(name, lspci_decoded):
    """What ``lspci -vv`` prints for the image is what tolerant parse_vpd found in it."""
    vpd = parse_vpd(blob(name))
    dev = lspci_decoded[name]

    assert len(dev.names) == 1 and vpd.name == normalise(dev.names[0])

    def as_lspci_shows(section):  # lspci hides a trailing NUL and shows binary keywords in hex
        return [(kw, lspci_oracle.visible(raw) if lspci_oracle.is_text(kw) else raw)
                for kw, raw in section.items()]

    assert dev.read_only == as_lspci_shows(vpd.read_only)
    assert dev.read_write == as_lspci_shows(vpd.read_write)
    assert dev.invalid_keywords == 0 and not dev.unknown_resource
    # Every image has one RV, whose checksum lspci and fastvpd both find good.
    assert [(rv.section, rv.good, rv.reserved) for rv in dev.rv] == \
        [("R", True, LSPCI_RV_RESERVED[name])]
    assert vpd.checksum_ok is True
    assert dev.rw == LSPCI_RW_FREE.get(name, [])
    # lspci's "End" / "No end tag found" is fastvpd's end-tag verdict.
    assert dev.end == (not any("no end tag" in p for p in vpd.problems))
