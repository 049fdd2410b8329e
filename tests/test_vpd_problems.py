"""One test per row of the problems table of spec/vpd.md, in both modes, for both parsers.

Tolerant mode: the exact problem list (offsets, messages) and the values still extracted.
Strict mode: `VpdFormatError` with the offset of the first fatal problem in (offset, code) order,
or, for the non-fatal rows, no exception and the same result as tolerant mode.
Every test runs against fastvpd.parse_vpd (Cython) and the pure-Python reference parser.
"""

from __future__ import annotations

import array

import pytest

import fastvpd
from fastvpd import _vpd as C
from fastvpd.vpd import PROBLEMS
from tests.reference import vpd as reference
from tests.strategies import Field, Resource, assemble

PARSERS = {"fastvpd": fastvpd.parse_vpd, "reference": reference.parse_vpd}


@pytest.fixture(params=sorted(PARSERS))
def parse(request):
    return PARSERS[request.param]


def msg(offset: int, code: int, detail: str | None = None) -> str:
    return f"offset {offset}: " + PROBLEMS[code][1].format(d=detail)


def check(parse, data: bytes, expected: list[tuple]) -> fastvpd.Vpd:
    """Tolerant: exactly ``expected`` problems. Strict: raise at the first fatal one, or not."""
    expected = sorted(expected, key=lambda p: (p[0], p[1]))
    vpd = parse(data)
    assert vpd.problems == tuple(msg(*p) for p in expected)
    fatal = [p for p in expected if PROBLEMS[p[1]][0]]
    if fatal:
        with pytest.raises(fastvpd.VpdFormatError) as err:
            parse(data, strict=True)
        assert err.value.offset == fatal[0][0]
        assert str(err.value) == msg(*fatal[0])
    else:
        assert parse(data, strict=True) == vpd
    return vpd


NAME = Resource(0x82, payload=b"Test card")


def vpd_r(*fields: Field, rv: bool = True, stray: bytes = b"") -> Resource:
    return Resource(0x90, fields=[*fields, *([Field(b"RV", b"\0\0", fix=True)] if rv else [])],
                    stray=stray)


def vpd_w(*fields: Field, rw: bool = True, stray: bytes = b"") -> Resource:
    return Resource(0x91, fields=[*fields, *([Field(b"RW", b"\0" * 4)] if rw else [])],
                    stray=stray)


PN = Field(b"PN", b"PN-1")
SN = Field(b"SN", b"SERIAL-1")
GOOD = assemble([NAME, vpd_r(PN, SN), vpd_w(Field(b"YA", b"tag-1"))])


def test_good_blob_has_no_problem(parse):
    vpd = check(parse, GOOD, [])
    assert vpd.name == "Test card"
    assert vpd.serial_number == "SERIAL-1"
    assert vpd.part_number == "PN-1"
    assert vpd.asset_tag == "tag-1"
    assert vpd.checksum_ok is True
    assert dict(vpd.read_only) == {"PN": b"PN-1", "SN": b"SERIAL-1"}
    assert dict(vpd.read_write) == {"YA": b"tag-1"}


# -- row: empty input, or first byte 0x00/0xFF -----------------------------------------------------
@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff", b"\x00" + GOOD[1:], b"\xff" + GOOD[1:],
                                  b"\xff" * 64, b"\x00" * 64])
def test_no_vpd(parse, data):
    vpd = check(parse, data, [(0, C.NO_VPD)])
    assert vpd.name is None and not vpd.read_only and not vpd.read_write
    assert vpd.checksum_ok is None


# -- row: no end tag before the data ends ----------------------------------------------------------
def test_no_end_tag(parse):
    data = GOOD[:-1]
    vpd = check(parse, data, [(len(data), C.NO_END_TAG)])
    assert vpd.serial_number == "SERIAL-1" and vpd.asset_tag == "tag-1"
    assert vpd.checksum_ok is True


def test_no_end_tag_and_no_vpd_r_at_the_same_place(parse):
    data = assemble([NAME], end=b"")
    check(parse, data, [(len(data), C.NO_END_TAG), (len(data), C.NO_VPD_R)])


@pytest.mark.parametrize("end", [b"\x78", b"\x79", b"\x7f"])
def test_every_small_item_0x0f_is_the_end_tag(parse, end):
    vpd = check(parse, assemble([NAME, vpd_r(SN)], end=end, after=b"\x90\x05"), [])
    assert vpd.serial_number == "SERIAL-1"


# -- row: a resource or field whose length runs past the data / past its resource ------------------
def test_resource_runs_past_the_data_contents_still_read(parse):
    full = assemble([NAME, vpd_r(PN, SN)], end=b"")
    data = full[:full.index(b"RV")]  # VPD-R cut just before its RV
    tag = data.index(b"\x90")
    vpd = check(parse, data, [(tag, C.RESOURCE_OVERRUN, "0x90"), (len(data), C.NO_END_TAG),
                              (tag, C.NO_RV)])
    assert vpd.serial_number == "SERIAL-1" and vpd.part_number == "PN-1"
    assert vpd.checksum_ok is None


def test_resource_overrun_sorts_before_no_rv_at_the_same_offset(parse):
    data = bytes.fromhex("90 10 00") + b"SN\x02ab"
    with pytest.raises(fastvpd.VpdFormatError, match="resource 0x90 runs past") as err:
        parse(data, strict=True)
    assert err.value.offset == 0
    assert parse(data).serial_number == "ab"


def test_truncated_large_resource_header(parse):
    head = assemble([NAME, vpd_r(SN)], end=b"")
    for tail in (b"\x91", b"\x91\x05"):
        data = head + tail
        vpd = check(parse, data, [(len(head), C.RESOURCE_OVERRUN, "0x91"),
                                  (len(data), C.NO_END_TAG)])
        assert vpd.serial_number == "SERIAL-1" and vpd.checksum_ok is True


def test_small_resource_runs_past_the_data(parse):
    head = assemble([NAME, vpd_r(SN)], end=b"")
    data = head + b"\x13ab"  # small item 2 of length 3, only 2 bytes follow
    vpd = check(parse, data, [(len(head), C.RESOURCE_OVERRUN, "0x13"),
                              (len(head), C.UNKNOWN_RESOURCE, "0x13 (small item 0x02)"),
                              (len(data), C.NO_END_TAG)])
    assert vpd.serial_number == "SERIAL-1"


def test_name_runs_past_the_data(parse):
    data = b"\x82\x20\x00Truncated name "
    vpd = check(parse, data, [(0, C.RESOURCE_OVERRUN, "0x82"), (len(data), C.NO_END_TAG),
                              (len(data), C.NO_VPD_R)])
    assert vpd.name == "Truncated name"


def test_field_runs_past_its_resource(parse):
    bad = Field(b"V1", b"vendor", length=200)
    data = assemble([NAME, vpd_r(PN, bad, SN), vpd_w(Field(b"YA", b"tag-1"))])
    tag, at = data.index(b"\x90"), data.index(b"V1")
    vpd = check(parse, data, [(at, C.FIELD_OVERRUN, "V1"), (tag, C.NO_RV)])
    # fields before the bad one are kept, the walk goes on with the next resource
    assert dict(vpd.read_only) == {"PN": b"PN-1"}
    assert vpd.asset_tag == "tag-1"
    assert vpd.checksum_ok is None


@pytest.mark.parametrize("cut,checksum_ok", [(2, False), (1, True)])
def test_field_runs_past_the_data(parse, cut, checksum_ok):
    data = assemble([NAME, vpd_r(PN, SN)], end=b"")[:-cut]  # cut inside the RV field
    tag, rv = data.index(b"\x90"), data.index(b"RV")
    vpd = check(parse, data, [(tag, C.RESOURCE_OVERRUN, "0x90"), (rv, C.FIELD_OVERRUN, "RV"),
                              (len(data), C.NO_END_TAG)])
    assert vpd.serial_number == "SERIAL-1"
    # without its checksum byte the RV cannot be verified; with it, it is (reserved bytes cut)
    assert vpd.checksum_ok is checksum_ok


def test_rv_and_rw_run_past_their_resource(parse):
    data = assemble([vpd_r(SN, Field(b"RV", b"\0", length=9, fix=True)),
                     vpd_w(Field(b"YA", b"t"), rw=False), Resource(0x91, fields=[
                         Field(b"RW", b"\0\0", length=3)])])
    rv, ya = data.index(b"RV"), data.index(b"YA")
    rw = data.index(b"RW")
    vpd = check(parse, data, [(rv, C.FIELD_OVERRUN, "RV"), (rw, C.FIELD_OVERRUN, "RW")])
    assert vpd.checksum_ok is True  # the checksum byte itself is inside the resource
    assert vpd.asset_tag == "t" and ya < rw


def test_invalid_keyword_running_past_its_resource(parse):
    data = assemble([vpd_r(SN, Field(b"s\x01", b"xy", length=50), rv=False)])
    tag, at = data.index(b"\x90"), data.index(b"s\x01")
    check(parse, data, [(at, C.INVALID_KEYWORD, "7301"), (at, C.FIELD_OVERRUN, None),
                        (tag, C.NO_RV)])


# -- row: 1-2 stray bytes at the end of VPD-R or VPD-W ---------------------------------------------
@pytest.mark.parametrize("stray", [b"\x01", b"AB"])
def test_stray_bytes_in_vpd_r(parse, stray):
    data = assemble([NAME, vpd_r(SN, stray=stray)])
    vpd = check(parse, data, [(len(data) - 1 - len(stray), C.STRAY_BYTES, "VPD-R")])
    assert vpd.serial_number == "SERIAL-1" and vpd.checksum_ok is True


@pytest.mark.parametrize("stray", [b"\x00", b"\xff\xff"])
def test_stray_bytes_in_vpd_w(parse, stray):
    data = assemble([NAME, vpd_r(SN), vpd_w(Field(b"YA", b"tag-1"), stray=stray)])
    vpd = check(parse, data, [(len(data) - 1 - len(stray), C.STRAY_BYTES, "VPD-W")])
    assert vpd.asset_tag == "tag-1"


def test_stray_bytes_after_rv_are_not_a_field_after_rv(parse):
    data = assemble([vpd_r(SN, stray=b"RV")])
    check(parse, data, [(len(data) - 3, C.STRAY_BYTES, "VPD-R")])


# -- row: no VPD-R; VPD-R without RV; RV not last; RV of length 0 ----------------------------------
def test_no_vpd_r(parse):
    data = assemble([NAME, vpd_w(Field(b"YA", b"tag-1"))])
    vpd = check(parse, data, [(len(data) - 1, C.NO_VPD_R)])  # at the end tag
    assert vpd.name == "Test card" and vpd.asset_tag == "tag-1"
    assert vpd.checksum_ok is None and not vpd.read_only


def test_vpd_r_without_rv(parse):
    data = assemble([NAME, vpd_r(PN, SN, rv=False)])
    vpd = check(parse, data, [(data.index(b"\x90"), C.NO_RV)])
    assert vpd.serial_number == "SERIAL-1" and vpd.checksum_ok is None


def test_each_vpd_r_needs_its_rv(parse):
    second = Resource(0x90, fields=[Field(b"V1", b"more")])
    data = assemble([NAME, vpd_r(SN), second])
    vpd = check(parse, data, [(data.rindex(b"\x90"), C.NO_RV)])
    assert dict(vpd.vendor_fields) == {"1": "more"} and vpd.checksum_ok is True


def test_rv_not_last(parse):
    data = assemble([NAME, Resource(0x90, fields=[PN, Field(b"RV", b"\0", fix=True), SN])])
    vpd = check(parse, data, [(data.index(b"RV"), C.RV_NOT_LAST, "RV")])
    assert vpd.serial_number == "SERIAL-1" and vpd.checksum_ok is True
    assert "RV" not in vpd.read_only


def test_rv_followed_by_an_invalid_field_is_not_last(parse):
    data = assemble([Resource(0x90, fields=[Field(b"RV", b"\0", fix=True), Field(b"\x00\x00")])])
    rv = data.index(b"RV")
    check(parse, data, [(rv, C.RV_NOT_LAST, "RV"), (rv + 4, C.INVALID_KEYWORD, "0000")])


def test_rv_empty(parse):
    data = assemble([NAME, Resource(0x90, fields=[SN, Field(b"RV", b"")])])
    vpd = check(parse, data, [(data.index(b"RV"), C.RV_EMPTY, "RV")])
    assert vpd.serial_number == "SERIAL-1"
    assert vpd.checksum_ok is False
    assert "RV" not in vpd.read_only


# -- row: checksum wrong ---------------------------------------------------------------------------
def test_checksum_wrong(parse):
    data = bytearray(GOOD)
    at = data.index(b"RV") + 3
    data[at] ^= 0x55
    vpd = check(parse, bytes(data), [(at, C.CHECKSUM_BAD, "RV")])
    assert vpd.checksum_ok is False
    assert vpd.serial_number == "SERIAL-1" and vpd.asset_tag == "tag-1"


def test_checksum_covers_every_byte_before_it(parse):
    """Unknown resources and RV reserved bytes count too (libvirt leaves the former out)."""
    data = assemble([Resource(0xA0, payload=b"xyz"), vpd_r(SN), vpd_r(PN)])
    first, second = data.index(b"RV") + 3, data.rindex(b"RV") + 3
    unknown = (0, C.UNKNOWN_RESOURCE, "0xa0 (large item 0x20)")
    assert check(parse, data, [unknown]).checksum_ok is True
    in_unknown = bytearray(data)
    in_unknown[4] ^= 1
    vpd = check(parse, bytes(in_unknown), [unknown, (first, C.CHECKSUM_BAD, "RV"),
                                           (second, C.CHECKSUM_BAD, "RV")])
    assert vpd.checksum_ok is False
    in_reserved = bytearray(data)
    in_reserved[first + 1] ^= 1  # reserved byte of the first RV: only the second RV sees it
    vpd = check(parse, bytes(in_reserved), [unknown, (second, C.CHECKSUM_BAD, "RV")])
    assert vpd.checksum_ok is False


def test_every_rv_must_hold(parse):
    good_then_bad = bytearray(assemble([vpd_r(SN), vpd_r(PN)]))
    second = good_then_bad.rindex(b"RV") + 3
    good_then_bad[second] ^= 1
    vpd = check(parse, bytes(good_then_bad), [(second, C.CHECKSUM_BAD, "RV")])
    assert vpd.checksum_ok is False


def test_checksum_does_not_cover_data_after_it(parse):
    data = bytearray(GOOD)
    data[-3] ^= 0x11  # inside VPD-W, after the RV
    assert parse(bytes(data)).checksum_ok is True


# -- row: RW inside VPD-R; RV inside VPD-W; RW not last, or more than one RW -----------------------
def test_rw_in_vpd_r(parse):
    data = assemble([NAME, vpd_r(SN, Field(b"RW", b"\x01\x02"))])
    vpd = check(parse, data, [(data.index(b"RW"), C.RW_IN_VPD_R, "RW")])
    assert vpd.read_only["RW"] == b"\x01\x02" and vpd.serial_number == "SERIAL-1"


def test_rv_in_vpd_w(parse):
    data = assemble([NAME, vpd_r(SN), vpd_w(Field(b"RV", b"\x07"))])
    vpd = check(parse, data, [(data.rindex(b"RV"), C.RV_IN_VPD_W, "RV")])
    assert vpd.read_write["RV"] == b"\x07" and vpd.checksum_ok is True


def test_rw_not_last(parse):
    data = assemble([NAME, vpd_r(SN), Resource(0x91, fields=[Field(b"RW", b"\0"),
                                                             Field(b"YA", b"tag-1")])])
    vpd = check(parse, data, [(data.index(b"RW"), C.RW_NOT_LAST, "RW")])
    assert vpd.asset_tag == "tag-1" and "RW" not in vpd.read_write


def test_rw_repeated(parse):
    data = assemble([NAME, vpd_r(SN), Resource(0x91, fields=[Field(b"RW", b"\0"),
                                                             Field(b"RW", b"\0\0")])])
    first, second = data.index(b"RW"), data.rindex(b"RW")
    check(parse, data, [(first, C.RW_NOT_LAST, "RW"), (second, C.RW_REPEATED, "RW")])


def test_rw_in_each_of_several_vpd_w_is_fine(parse):
    """The vendor layout that repeats a VPD-W with its own RW: no problem at all."""
    data = assemble([NAME, vpd_r(SN), vpd_w(Field(b"V1", b"a")), vpd_w(Field(b"V2", b"b"))])
    vpd = check(parse, data, [])
    assert dict(vpd.read_write) == {"V1": b"a", "V2": b"b"}


# -- row: identifier string not printable ----------------------------------------------------------
@pytest.mark.parametrize("name", [b"Bad\x01name", b"caf\xe9", b"tab\x0bvt"])
def test_bad_name(parse, name):
    data = assemble([Resource(0x82, payload=name), vpd_r(SN)])
    vpd = check(parse, data, [(0, C.BAD_NAME)])
    assert vpd.name is None and vpd.serial_number == "SERIAL-1" and vpd.checksum_ok is True


# -- row: unknown resource item; invalid keyword; wrong section; non-printable value (not fatal) ---
@pytest.mark.parametrize("resource", [Resource(0xA1, payload=b"vendor"), Resource(0x81),
                                      Resource(0x10, payload=b"ab"), Resource(0x00)])
def test_unknown_resource(parse, resource):
    data = assemble([NAME, resource, vpd_r(SN)])
    tag = data[len(NAME.payload) + 3]
    item = f"large item 0x{tag & 0x7F:02x}" if tag & 0x80 else f"small item 0x{tag >> 3 & 0xF:02x}"
    vpd = check(parse, data, [(len(NAME.payload) + 3, C.UNKNOWN_RESOURCE, f"0x{tag:02x} ({item})")])
    assert vpd.serial_number == "SERIAL-1" and vpd.checksum_ok is True


@pytest.mark.parametrize("keyword", [b"sn", b"S-", b"\x00\x00", b"\xff\xff", b"S\xce"])
def test_invalid_keyword(parse, keyword):
    data = assemble([NAME, vpd_r(Field(keyword, b"skip me"), SN)])
    vpd = check(parse, data, [(data.index(keyword + b"\x07"), C.INVALID_KEYWORD, keyword.hex())])
    assert dict(vpd.read_only) == {"SN": b"SERIAL-1"}


def test_wrong_section(parse):
    data = assemble([NAME, vpd_r(Field(b"YA", b"asset"), Field(b"Y1", b"sys")),
                     vpd_w(Field(b"SN", b"rw-serial"), Field(b"CP", b"\x01"), Field(b"PN", b"p"),
                           Field(b"EC", b"e"), Field(b"MN", b"m"))])
    expected = [(data.index(kw), C.WRONG_SECTION, kw.decode())
                for kw in (b"YA", b"Y1", b"SN", b"CP", b"PN", b"EC", b"MN")]
    vpd = check(parse, data, expected)
    # kept raw, but the accessors read their own section only
    assert vpd.read_only["YA"] == b"asset" and vpd.read_write["SN"] == b"rw-serial"
    assert vpd.asset_tag is None and vpd.serial_number is None and vpd.part_number is None
    assert not vpd.system_fields


@pytest.mark.parametrize("keyword,value", [(b"SN", b"S\x01N"), (b"PN", b"\x80"),
                                           (b"EC", b"A\x0b"), (b"MN", b"\x7f"),
                                           (b"V3", b"caf\xe9")])
def test_not_text_in_vpd_r(parse, keyword, value):
    data = assemble([NAME, vpd_r(Field(keyword, value))])
    vpd = check(parse, data, [(data.index(keyword), C.NOT_TEXT, keyword.decode())])
    assert vpd.read_only[keyword.decode()] == value  # the raw bytes stay
    assert vpd.vendor_fields.get("3") is None


@pytest.mark.parametrize("keyword", [b"YA", b"Y5"])
def test_not_text_in_vpd_w(parse, keyword):
    data = assemble([NAME, vpd_r(SN), vpd_w(Field(keyword, b"\x01x\x02"))])
    vpd = check(parse, data, [(data.index(keyword), C.NOT_TEXT, keyword.decode())])
    assert vpd.asset_tag is None and not vpd.system_fields


def test_binary_keywords_are_not_text_checked(parse):
    data = assemble([NAME, vpd_r(Field(b"CP", b"\x01\xff"), Field(b"ZZ", b"\x00\x80")),
                     vpd_w(Field(b"V1", b"\x01"), Field(b"ZZ", b"\xff"))])
    vpd = check(parse, data, [])
    assert vpd.read_only["CP"] == b"\x01\xff" and vpd.read_write["V1"] == b"\x01"


def test_non_fatal_problems_do_not_hide_fatal_ones(parse):
    data = bytearray(assemble([NAME, Resource(0xA1, payload=b"x"), vpd_r(SN)]))
    data[data.index(b"RV") + 3] ^= 1
    with pytest.raises(fastvpd.VpdFormatError, match="checksum wrong") as err:
        parse(bytes(data), strict=True)
    assert err.value.offset == data.index(b"RV") + 3


def test_strict_raises_at_the_first_fatal_offset(parse):
    data = assemble([Resource(0x82, payload=b"\x01"), vpd_r(SN, rv=False)], end=b"")
    with pytest.raises(fastvpd.VpdFormatError) as err:
        parse(data, strict=True)
    assert err.value.offset == 0 and "identifier string" in str(err.value)


# -- row: data after the end tag -------------------------------------------------------------------
@pytest.mark.parametrize("after", [b"\x00", b"\xff" * 100, b"\x90\xff\xff", b"\x91\x03\x00SN\x09",
                                   GOOD])
def test_data_after_the_end_tag_is_not_a_problem(parse, after):
    vpd = check(parse, GOOD + after, [])
    assert vpd == parse(GOOD)


def test_input_is_capped_at_32k(parse):
    pad = Resource(0xA2, payload=bytes(32768 - 17))  # SN ends exactly at the cap, RV after it
    data = assemble([pad, vpd_r(SN)])
    assert len(data) > 32768
    tag = data.index(b"\x90")
    vpd = check(parse, data, [(0, C.UNKNOWN_RESOURCE, "0xa2 (large item 0x22)"), (tag, C.RESOURCE_OVERRUN, "0x90"),
                              (32768, C.NO_END_TAG), (tag, C.NO_RV)])
    assert vpd.serial_number == "SERIAL-1"
    assert vpd == parse(data[:32768])


# -- input types -----------------------------------------------------------------------------------
@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("data", [GOOD.decode("latin-1"), 42, list(GOOD), None, array.array("B"),
                                  iter(GOOD)])
def test_type_error_for_non_bytes(parse, data, strict):
    with pytest.raises(TypeError):
        parse(data, strict=strict)


@pytest.mark.parametrize("strict", [False, True])
def test_bytes_like_inputs(parse, strict):
    expected = parse(GOOD)
    doubled = bytes(b for b in GOOD for _ in (0, 1))
    views = [bytearray(GOOD), memoryview(GOOD), memoryview(bytearray(GOOD)),
             memoryview(doubled)[::2], memoryview(b"xx" + GOOD + b"yy")[2:-2],
             memoryview(GOOD + b"\x00" * (len(GOOD) % 2)).cast("H")]
    for data in views:
        assert not isinstance(data, memoryview) or data.tobytes().startswith(GOOD)
        assert parse(data, strict=strict) == expected
    assert not memoryview(doubled)[::2].c_contiguous


def test_empty_bytes_like(parse):
    for data in (bytearray(), memoryview(b""), memoryview(b"abc")[3:]):
        assert parse(data).problems == (msg(0, C.NO_VPD),)


# -- the Blob type: no instance can read through a missing buffer ----------------------------------
@pytest.mark.parametrize("make", [lambda: C.Blob(), lambda: C.Blob.__new__(C.Blob),
                                  lambda: C.Blob.__new__(fastvpd.Vpd)],
                         ids=["Blob()", "Blob.__new__(Blob)", "Blob.__new__(Vpd)"])
def test_a_blob_made_without_parse_is_empty_not_broken(make):
    """The readers take the size of the bytes unchecked: a blob built any other way than by
    parse/from_fields must still hold bytes (empty), never None."""
    blob = make()
    assert (blob.data, blob.table, blob.checksum_state, blob.raw_problems) == (b"", b"", -1, [])
    for section in (C.READ_ONLY, C.READ_WRITE, C.NAME):
        assert blob.find(section, "SN") is None and blob.find_text(section, "SN") is None
        assert blob.fields(section) == [] and blob.mapping(section) == {}
    with pytest.raises(TypeError):
        blob.find(C.READ_ONLY, None)
    with pytest.raises(AttributeError):
        blob.data = None  # read-only from Python
    if isinstance(blob, fastvpd.Vpd):
        assert (blob.serial_number, blob.name, blob.problems, blob.checksum_ok) == (None, None, (), None)


def test_pickled_blobs_are_checked_when_loaded():
    import pickle

    parsed = fastvpd.parse_vpd(GOOD)
    built = fastvpd.Vpd(name="Hand made", read_only={"SN": b"X1"}, problems=["made by hand"])
    for vpd in (parsed, built):
        back = pickle.loads(pickle.dumps(vpd))
        assert type(back) is fastvpd.Vpd and back == vpd and back.problems == vpd.problems
    restore, (cls, data, table, checksum, problems, cached) = parsed.__reduce__()
    assert restore(cls, data, table, checksum, problems, cached) == parsed
    with pytest.raises(ValueError, match="outside the data"):
        restore(cls, data[:5], table, checksum, problems, cached)  # a table past the bytes
    with pytest.raises(ValueError, match="partial entry"):
        restore(cls, data, table[:-1], checksum, problems, cached)
    with pytest.raises(TypeError):
        restore(cls, None, table, checksum, problems, cached)
    with pytest.raises(TypeError):
        restore(object, data, table, checksum, problems, cached)


# -- the Vpd type: a C type, immutable however it was made ------------------------------------------
@pytest.mark.parametrize("make", [lambda: fastvpd.parse_vpd(GOOD), lambda: fastvpd.Vpd(),
                                  lambda: fastvpd.Vpd(name="Hand made", read_only={"SN": b"X1"}),
                                  lambda: fastvpd.Vpd._from_fields(None, [("SN", b"X1")], [], 1, [])],
                         ids=["parsed", "Vpd()", "hand made", "_from_fields"])
def test_a_vpd_cannot_be_changed(make):
    vpd = make()
    before = (repr(vpd), vpd.to_dict(), hash(vpd))
    for name in ("serial_number", "name", "read_only", "problems", "checksum_ok", "data", "table",
                 "raw_problems", "checksum_state", "_cache_problems", "_cache_ro", "other"):
        with pytest.raises(AttributeError):
            setattr(vpd, name, None)
    with pytest.raises(TypeError, match="immutable"):
        vpd.__init__(name="Other", read_only={"SN": b"Y2"})  # cannot fill it a second time
    with pytest.raises(TypeError):
        vpd.read_only["SN"] = b"Y2"
    assert (repr(vpd), vpd.to_dict(), hash(vpd)) == before


def test_a_vpd_subclass_is_built_and_pickled_like_a_vpd():
    class Mine(fastvpd.Vpd):
        pass

    mine = Mine(name="Hand made", read_only={"SN": b"X1"})
    assert type(mine) is Mine and mine == fastvpd.Vpd(name="Hand made", read_only={"SN": b"X1"})
    walked = C.parse(GOOD, Mine)
    assert type(walked) is Mine and walked == fastvpd.parse_vpd(GOOD)
    assert type(C.Blob.__new__(Mine)) is Mine


def test_a_clean_parse_allocates_the_vpd_and_its_field_table_only():
    """Problems are a list only once there is one: a clean blob costs two blocks, text nothing
    until it is read. Counted with tracemalloc over many parses kept alive."""
    import tracemalloc

    fastvpd.parse_vpd(GOOD).serial_number  # keyword strings are interned once, on first use
    n = 1000
    kept = [None] * n
    tracemalloc.start()
    try:
        for i in range(n):
            kept[i] = fastvpd.parse_vpd(GOOD)
        blocks = sum(s.count for s in tracemalloc.take_snapshot().statistics("filename"))
    finally:
        tracemalloc.stop()
    assert not kept[0].problems and kept[0].serial_number == "SERIAL-1"
    assert blocks <= 2 * n + 20, blocks / n
