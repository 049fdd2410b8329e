"""Text normalisation, repeated keywords and resources, and which section each accessor reads.

Runs against fastvpd.parse_vpd and the pure-Python reference parser.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastvpd
from fastvpd.vpd import text
from tests.reference import vpd as reference
from tests.strategies import Field, Resource, assemble, text_like_bytes

PARSERS = {"fastvpd": fastvpd.parse_vpd, "reference": reference.parse_vpd}


@pytest.fixture(params=sorted(PARSERS))
def parse(request):
    return PARSERS[request.param]


def ro(*fields: Field) -> Resource:
    return Resource(0x90, fields=[*fields, Field(b"RV", b"\0", fix=True)])


def rw(*fields: Field) -> Resource:
    return Resource(0x91, fields=[*fields, Field(b"RW", b"")])


# (raw value, normalised text or None)
TEXT_CASES = [
    (b"MT2113X00042", "MT2113X00042"),
    (b"ABC\x00junk", "ABC"),                 # cut at the first NUL
    (b"ABC\x00\x80\x01", "ABC"),             # whatever follows the NUL does not matter
    (b"\x00ABC", ""),
    (b"ABC\x00\x00\x00", "ABC"),
    (b"  ABC   ", "ABC"),                    # trailing and leading spaces
    (b"\t\n\f\r ABC \r\n\t\f", "ABC"),       # the other stripped bytes
    (b"AB  C", "AB  C"),                     # inner spaces stay
    (b"  AB C\x00  ", "AB C"),
    (b"ABC\x0b", None),                      # 0x0B is not stripped, and not printable
    (b"\x0bABC", None),
    (b"A\tB", None),                         # a stripped byte inside the text is not printable
    (b"ABC\x7f", None),                      # DEL
    (b"caf\xe9", None),                      # bytes >= 0x80
    (b"\x80", None),
    (b"\xff\xfe", None),
    (b"~ !", "~ !"),                         # the printable range ends
    (b"", ""),
    (b"    ", ""),
    (b" \x00\x01", ""),
]


@pytest.mark.parametrize("raw,expected", TEXT_CASES)
def test_text_normalisation(raw, expected):
    assert text(raw) == expected
    assert reference.text(raw) == expected
    assert text(bytearray(raw)) == expected and text(memoryview(raw)) == expected


@pytest.mark.parametrize("raw,expected", TEXT_CASES)
def test_text_accessors_normalise_and_keep_raw(parse, raw, expected):
    data = assemble([Resource(0x82, payload=raw),
                     ro(Field(b"SN", raw), Field(b"PN", raw), Field(b"EC", raw), Field(b"MN", raw),
                        Field(b"V7", raw)),
                     rw(Field(b"YA", raw), Field(b"Y3", raw))])
    vpd = parse(data)
    assert vpd.name == expected
    assert vpd.serial_number == vpd.part_number == vpd.change_level == expected
    assert vpd.manufacture_id == vpd.asset_tag == expected
    assert dict(vpd.vendor_fields) == ({} if expected is None else {"7": expected})
    assert dict(vpd.system_fields) == ({} if expected is None else {"3": expected})
    assert vpd.read_only["SN"] == raw and vpd.read_write["YA"] == raw  # raw bytes always kept
    not_text = [p for p in vpd.problems if "not printable" in p]
    assert len(not_text) == (0 if expected is not None else 8)  # name + 5 VPD-R + 2 VPD-W


@given(text_like_bytes(max_size=60))
def test_text_agrees_with_the_reference(raw):
    assert text(raw) == reference.text(raw)


@given(st.binary(max_size=60))
def test_text_of_any_bytes(raw):
    value = text(raw)
    assert value == reference.text(raw)
    if value is not None:
        assert value.encode() in raw
        assert value == value.strip(" \t\n\f\r")
        assert all(0x20 <= ord(c) <= 0x7E for c in value)


# -- repeats --------------------------------------------------------------------------------------
def test_repeated_keyword_last_value_first_position(parse):
    data = assemble([ro(Field(b"PN", b"p1"), Field(b"SN", b"first"), Field(b"EC", b"e"),
                        Field(b"SN", b"second"), Field(b"PN", b"p2"))])
    vpd = parse(data)
    assert list(vpd.read_only.items()) == [("PN", b"p2"), ("SN", b"second"), ("EC", b"e")]
    assert vpd.serial_number == "second" and vpd.part_number == "p2"
    assert vpd.problems == ()


def test_repeated_keyword_the_last_value_decides_the_text(parse):
    vpd = parse(assemble([ro(Field(b"SN", b"good"), Field(b"SN", b"\x01bad"))]))
    assert vpd.serial_number is None and vpd.read_only["SN"] == b"\x01bad"
    assert len(vpd.problems) == 1 and "SN is not printable" in vpd.problems[0]
    vpd = parse(assemble([ro(Field(b"SN", b"\x01bad"), Field(b"SN", b"good"))]))
    assert vpd.serial_number == "good"
    assert len(vpd.problems) == 1 and "SN is not printable" in vpd.problems[0]


def test_repeated_resources_merge(parse):
    data = assemble([Resource(0x82, payload=b"Card"),
                     ro(Field(b"PN", b"p1"), Field(b"SN", b"s1")),
                     rw(Field(b"YA", b"a1"), Field(b"Y1", b"y1")),
                     ro(Field(b"V1", b"v1"), Field(b"SN", b"s2")),
                     rw(Field(b"Y2", b"y2"), Field(b"YA", b"a2"))])
    vpd = parse(data)
    assert list(vpd.read_only) == ["PN", "SN", "V1"]
    assert list(vpd.read_write) == ["YA", "Y1", "Y2"]
    assert vpd.serial_number == "s2" and vpd.asset_tag == "a2"
    assert dict(vpd.vendor_fields) == {"1": "v1"}
    assert dict(vpd.system_fields) == {"1": "y1", "2": "y2"}
    assert vpd.checksum_ok is True and vpd.problems == ()


def test_later_identifier_string_replaces_earlier(parse):
    vpd = parse(assemble([Resource(0x82, payload=b"First"), ro(Field(b"SN", b"s")),
                          Resource(0x82, payload=b"Second")]))
    assert vpd.name == "Second" and vpd.problems == ()


def test_later_bad_identifier_string_replaces_a_good_one(parse):
    data = assemble([Resource(0x82, payload=b"First"), ro(Field(b"SN", b"s")),
                     Resource(0x82, payload=b"Sec\x01ond")])
    vpd = parse(data)
    assert vpd.name is None
    second = data.rindex(b"\x82\x07\x00")
    assert vpd.problems == (f"offset {second}: identifier string is not printable ASCII",)


def test_good_identifier_string_after_a_bad_one(parse):
    data = assemble([Resource(0x82, payload=b"\xffirst"), ro(Field(b"SN", b"s")),
                     Resource(0x82, payload=b" Second\x00")])
    vpd = parse(data)
    assert vpd.name == "Second"
    assert vpd.problems == ("offset 0: identifier string is not printable ASCII",)


# -- sections --------------------------------------------------------------------------------------
def test_accessors_read_only_their_own_section(parse):
    data = assemble([ro(Field(b"YA", b"ro-asset"), Field(b"Y1", b"ro-sys"), Field(b"V1", b"v")),
                     rw(Field(b"SN", b"rw-serial"), Field(b"PN", b"rw-pn"), Field(b"EC", b"rw-ec"),
                        Field(b"MN", b"rw-mn"), Field(b"V2", b"rw-vendor"), Field(b"Y2", b"y"))])
    vpd = parse(data)
    assert vpd.serial_number is None and vpd.part_number is None
    assert vpd.change_level is None and vpd.manufacture_id is None
    assert vpd.asset_tag is None
    assert dict(vpd.vendor_fields) == {"1": "v"}     # V2 lives in VPD-W: not a vendor field
    assert dict(vpd.system_fields) == {"2": "y"}     # Y1 lives in VPD-R: not a system field
    assert vpd.read_only["YA"] == b"ro-asset" and vpd.read_write["SN"] == b"rw-serial"
    assert vpd.read_write["V2"] == b"rw-vendor"


def test_asset_tag_is_not_a_system_field(parse):
    vpd = parse(assemble([ro(), rw(Field(b"YA", b"asset"), Field(b"YB", b"b"),
                                   Field(b"Y0", b"zero"))]))
    assert vpd.asset_tag == "asset"
    assert dict(vpd.system_fields) == {"B": "b", "0": "zero"}


def test_vendor_fields_skip_non_text(parse):
    vpd = parse(assemble([ro(Field(b"V0", b"zero "), Field(b"VA", b"\x80"), Field(b"VZ", b""))]))
    assert dict(vpd.vendor_fields) == {"0": "zero", "Z": ""}
    assert vpd.read_only["VA"] == b"\x80"


def test_empty_serial_is_text(parse):
    vpd = parse(assemble([ro(Field(b"SN", b"   "))]))
    assert vpd.serial_number == "" and vpd.problems == ()


def test_rv_and_rw_are_never_in_the_mappings(parse):
    vpd = parse(assemble([ro(Field(b"SN", b"s")), rw(Field(b"YA", b"a"))]))
    assert "RV" not in vpd.read_only and "RW" not in vpd.read_write
    assert vpd.checksum_ok is True
