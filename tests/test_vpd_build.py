"""build_vpd: layout, checksum, round trip through parse_vpd, and what it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given

from fastvpd import build_vpd, parse_vpd
from fastvpd.vpd import MAX_VPD_SIZE, text
from tests.reference import vpd as reference
from tests.strategies import build_args, clean_build_args


def _raw(value) -> bytes:
    return value.encode("ascii") if isinstance(value, str) else bytes(value)


def _merged(fields, skip: str) -> list[tuple[str, bytes]]:
    """Last value wins, first position kept: what parse_vpd's mappings should hold."""
    out: dict[str, bytes] = {}
    for kw, value in fields:
        if kw != skip:
            out[kw] = _raw(value)
    return list(out.items())


def _checksum_byte(blob: bytes, name: str | None) -> int:
    """Offset of the RV checksum byte, found from the layout build_vpd promises."""
    at = 0 if name is None else 3 + len(name)
    assert blob[at] == 0x90
    end = at + 3 + int.from_bytes(blob[at + 1:at + 3], "little")
    pos = at + 3
    while True:  # step over the fields to the last one, which must be RV
        size = 3 + blob[pos + 2]
        if pos + size == end:
            assert blob[pos:pos + 2] == b"RV"
            return pos + 3
        pos += size


def test_layout_of_a_small_blob():
    blob = build_vpd("AB", [("SN", "1")])
    head = bytes.fromhex("82 02 00 41 42 90 08 00 53 4e 01 31 52 56 01")
    assert blob[:-2] == head and blob[-1] == 0x78
    assert (sum(head) + blob[-2]) % 256 == 0


def test_vpd_w_gets_an_rw_and_is_left_out_when_empty():
    blob = build_vpd(None, [("SN", b"s")], [("YA", "a")])
    assert blob.endswith(b"\x91\x07\x00YA\x01aRW\x00\x78")
    assert b"\x91" not in build_vpd(None, [("SN", b"s")])
    assert build_vpd(None, [("SN", b"s")], [("YA", "a"), ("RW", bytes(5))]).endswith(
        b"RW\x05" + bytes(5) + b"\x78")


@given(build_args())
def test_checksum_is_right(args):
    name, ro, rw = args
    blob = build_vpd(name, ro, rw)
    at = _checksum_byte(blob, name)
    assert sum(blob[:at + 1]) % 256 == 0
    assert parse_vpd(blob).checksum_ok is True


@given(build_args())
def test_round_trip(args):
    name, ro, rw = args
    blob = build_vpd(name, ro, rw)
    assert len(blob) <= MAX_VPD_SIZE and blob[-1] == 0x78
    vpd = parse_vpd(blob)
    assert list(vpd.read_only.items()) == _merged(ro, "RV")
    assert list(vpd.read_write.items()) == _merged(rw, "RW")
    assert vpd.name == (None if name is None else text(name.encode()))
    assert vpd.checksum_ok is True
    # only the problems that come from the values themselves, never from the framing
    allowed = ("not printable", "wrong section")
    assert all(any(a in p for a in allowed) for p in vpd.problems), vpd.problems
    assert vpd == reference.parse_vpd(blob)


@given(clean_build_args())
def test_round_trip_clean_is_strict_clean(args):
    name, ro, rw = args
    blob = build_vpd(name, ro, rw)
    vpd = parse_vpd(blob, strict=True)
    assert vpd.problems == ()
    assert list(vpd.read_only.items()) == _merged(ro, "RV")
    assert list(vpd.read_write.items()) == _merged(rw, "RW")
    sn = dict(_merged(ro, "RV")).get("SN")
    assert vpd.serial_number == (None if sn is None else text(sn))


def test_str_and_bytes_values_are_the_same():
    assert build_vpd("n", [("SN", "abc")], [("YA", "x")]) == build_vpd(
        "n", [("SN", b"abc")], [("YA", bytearray(b"x"))])


def test_given_rv_keeps_its_reserved_bytes():
    blob = build_vpd("n", [("SN", "s"), ("RV", bytes(6))])
    assert blob.count(b"RV") == 1 and b"RV\x06" in blob
    at = _checksum_byte(blob, "n")
    assert sum(blob[:at + 1]) % 256 == 0 and blob[at + 1:at + 6] == bytes(5)
    assert parse_vpd(blob, strict=True).checksum_ok is True


def test_without_checksum():
    blob = build_vpd("n", [("SN", "s")], checksum=False)
    assert b"RV" not in blob
    vpd = parse_vpd(blob)
    assert vpd.checksum_ok is None and vpd.serial_number == "s"
    assert any("no RV" in p for p in vpd.problems)
    # verbatim: a given RV is written as is, wrong checksum and all
    vpd = parse_vpd(build_vpd("n", [("SN", "s"), ("RV", b"\x01")], checksum=False))
    assert vpd.checksum_ok is False
    assert parse_vpd(build_vpd(None, checksum=False)).problems == ("offset 0: no VPD-R (read-only) "
                                                                   "resource",)


def test_largest_blob():
    fields = [("V1", bytes(255))] * 126 + [("V2", bytes(249))]
    blob = build_vpd(None, fields)
    assert len(blob) == MAX_VPD_SIZE
    vpd = parse_vpd(blob, strict=True)
    assert vpd.read_only["V2"] == bytes(249) and vpd.checksum_ok is True
    with pytest.raises(ValueError, match="larger than"):
        build_vpd(None, fields[:-1] + [("V2", bytes(250))])
    with pytest.raises(ValueError, match="larger than"):
        build_vpd("x" * 40000)


@pytest.mark.parametrize("section", ["ro", "rw"])
@pytest.mark.parametrize("value", [bytes(256), "x" * 256, bytes(1000)])
def test_value_over_255_bytes(section, value):
    fields = [("V1", value)]
    with pytest.raises(ValueError, match="at most 255"):
        build_vpd("n", **{"read_only" if section == "ro" else "read_write": fields})
    build_vpd("n", **{"read_only" if section == "ro" else "read_write": [("V1", value[:255])]})


@pytest.mark.parametrize("section", ["read_only", "read_write"])
@pytest.mark.parametrize("keyword", ["sn", "S", "SNX", "", "S-", "S\u00e9", "Sn", b"SN", 12, None])
def test_invalid_keyword(section, keyword):
    with pytest.raises(ValueError, match="invalid keyword"):
        build_vpd("n", **{section: [(keyword, b"v")]})


@pytest.mark.parametrize("kwargs", [
    {"read_only": [("RW", b"")]},                              # RW belongs to VPD-W
    {"read_write": [("RV", b"\0")]},                           # RV belongs to VPD-R
    {"read_only": [("RV", b"\0"), ("SN", b"s")]},              # RV not last
    {"read_only": [("RV", b"\0"), ("RV", b"\0")]},             # two RVs
    {"read_write": [("RW", b""), ("YA", b"a")]},               # RW not last
    {"read_write": [("RW", b""), ("RW", b"")]},                # two RWs
    {"read_only": [("SN", b"s"), ("RV", b"")]},                # RV without its checksum byte
])
def test_rv_rw_misuse(kwargs):
    with pytest.raises(ValueError):
        build_vpd("n", **kwargs)


def test_bad_types_and_non_ascii():
    with pytest.raises(ValueError):
        build_vpd("caf\u00e9")
    with pytest.raises(ValueError):
        build_vpd("n", [("SN", "caf\u00e9")])
    with pytest.raises(TypeError):
        build_vpd(b"name")
    with pytest.raises(TypeError):
        build_vpd("n", [("SN", 5)])

