"""fastvpd.parse_vpd checked against two independent oracles.

1. The pure-Python reference parser (tests/reference/vpd.py), on hypothesis-generated valid and
   corrupted blobs: identical walk results, identical `Vpd`, identical strict-mode exception.
2. ``lspci -vv`` from pciutils (tests/lspci_oracle.py), on the same kinds of blobs put into a fake
   sysfs tree, many per lspci run. It compares every raw keyword value lspci prints, the last
   product name, whether the end tag was reached, and the checksum verdict, restricted to what
   lspci prints unambiguously:
   - only keywords of two characters [A-Z0-9] (fastvpd skips the others);
   - a text value (or name) ending in NUL is compared without that NUL (lspci drops it; the name
     per 256-byte piece);
   - ``RV``/``RW`` values are not printed by lspci (only "checksum good/bad, N reserved" and
     "N byte(s) free"), so ``RW`` inside VPD-R is compared by length and ``RV`` inside VPD-W not
     at all;
   - lspci stops at the first unknown resource and at a resource reaching past 32768 bytes, so the
     comparison is against ``parse_vpd`` of the blob up to there;
   - blobs fastvpd calls "no VPD" (first byte 0x00/0xFF) must show nothing in lspci either;
   - a name resource running past the data is not compared (lspci prints only whole 256-byte
     pieces);
   - the checksum verdict only when lspci read every byte fastvpd sums: no stray bytes, no field
     running past its resource, no RV of length 0, and every RV before the last VPD-R RV without
     reserved bytes (lspci skips reserved bytes and unknown resources; fastvpd sums them).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import fastvpd
from fastvpd import _vpd as C
from fastvpd.samples import SAMPLES
from tests import lspci_oracle
from tests.reference import vpd as reference
from tests.strategies import (
    Field,
    Resource,
    any_blobs,
    assemble,
    capped_blobs,
    corrupted_blobs,
    mutated,
    random_blobs,
    structured_blobs,
    valid_blobs,
)


# -- the reference parser as oracle ----------------------------------------------------------------
def _walk(data) -> tuple:
    """The Cython walk read out into the reference's 5-tuple."""
    blob = C.parse(data)
    names = blob.fields(C.NAME)
    return (names[-1][1] if names else None, blob.fields(C.READ_ONLY), blob.fields(C.READ_WRITE),
            blob.checksum_state, blob.raw_problems)


def same_as_reference(data) -> str:
    """Assert identical results in both modes; returns which strict outcome it was."""
    assert _walk(data) == reference.parse(data)
    tolerant = fastvpd.parse_vpd(data)
    assert tolerant == reference.parse_vpd(data)
    try:
        strict = fastvpd.parse_vpd(data, strict=True)
    except fastvpd.VpdFormatError as err:
        with pytest.raises(fastvpd.VpdFormatError) as ref_err:
            reference.parse_vpd(data, strict=True)
        assert (err.offset, str(err)) == (ref_err.value.offset, str(ref_err.value))
        assert str(err) in tolerant.problems
        return "strict: raised"
    else:
        assert strict == reference.parse_vpd(data, strict=True) == tolerant
        assert not tolerant.fatal_problems
        return "strict: clean"


@given(valid_blobs)
def test_reference_valid(data):
    same_as_reference(data)
    assert fastvpd.parse_vpd(data, strict=True).problems == ()


@given(structured_blobs())
def test_reference_structured(data):
    event(same_as_reference(data))


@given(mutated(valid_blobs))
def test_reference_damaged_valid(data):
    event(same_as_reference(data))


@given(mutated(structured_blobs()))
def test_reference_damaged_structured(data):
    event(same_as_reference(data))


@given(random_blobs)
def test_reference_random_bytes(data):
    event(same_as_reference(data))


@given(capped_blobs())
def test_reference_around_the_cap(data):
    event(same_as_reference(data))


@given(any_blobs, st.sampled_from(["bytearray", "memoryview", "strided"]))
def test_reference_other_buffer_types(data, kind):
    if kind == "bytearray":
        buf = bytearray(data)
    elif kind == "memoryview":
        buf = memoryview(data)
    else:
        buf = memoryview(bytes(b for b in data for _ in (0, 1)))[::2]
    assert _walk(buf) == reference.parse(buf) == _walk(data)


def test_reference_on_the_samples():
    for data in SAMPLES.values():
        same_as_reference(data)
        for cut in range(len(data)):
            same_as_reference(data[:cut])


# -- lspci as oracle -------------------------------------------------------------------------------
needs_lspci = pytest.mark.skipif(
    not lspci_oracle.available(), reason="lspci not found: install pciutils (Debian package pciutils)")


def _lspci_stop(blob: bytes, problems: list) -> tuple[int, str | None]:
    """Where lspci stops decoding before the data ends: an unknown resource, or past 32 KiB."""
    cut, why = len(blob), None
    for offset, code, _detail in problems:
        if code == C.UNKNOWN_RESOURCE and offset < cut:
            cut, why = offset, "unknown"
        elif code == C.RESOURCE_OVERRUN and blob[offset] & 0x80 and offset + 3 <= len(blob):
            if offset + 3 + int.from_bytes(blob[offset + 1:offset + 3], "little") > 32768:
                if offset < cut:
                    cut, why = offset, "past 32K"
    return cut, why


def _lspci_view(raw_fields) -> list[tuple[str, bytes]]:
    """parse_vpd's fields as lspci shows them: no RV/RW values, text without a final NUL."""
    return [(kw, lspci_oracle.visible(v) if lspci_oracle.is_text(kw) else v)
            for kw, v in raw_fields.items() if kw not in ("RV", "RW")]


def compare_with_lspci(blob: bytes, dev: lspci_oracle.LspciVpd) -> set[str]:
    """Assert that lspci's view of ``blob`` agrees with parse_vpd; returns what was compared."""
    compared = set()
    problems = C.parse(blob).raw_problems
    if any(code == C.NO_VPD for _, code, _ in problems):
        assert not (dev.names or dev.read_only or dev.read_write or dev.rv or dev.rw or dev.end)
        return {"no-vpd"}
    cut, why = _lspci_stop(blob, problems)
    data = blob[:cut]
    vpd = fastvpd.parse_vpd(data)
    name_raw, _, _, _, problems = _walk(data)
    codes = {code for _, code, _ in problems}
    assert dev.unknown_resource == (why == "unknown")

    # every raw keyword value
    assert dev.merged("R") == _lspci_view(vpd.read_only), dev.lines
    assert dev.merged("W") == _lspci_view(vpd.read_write), dev.lines
    compared.add("fields" if vpd.read_only or vpd.read_write else "no fields")
    rw_in_ro = [free for section, free in dev.rw if section == "R"][-1:]
    assert rw_in_ro == ([len(vpd.read_only["RW"])] if "RW" in vpd.read_only else [])

    # the product name (the last one wins in both)
    if not any(c == C.RESOURCE_OVERRUN and d == "0x82" for _, c, d in problems):
        assert (dev.names[-1] if dev.names else None) == (
            None if name_raw is None else lspci_oracle.visible(name_raw)), dev.lines
        if name_raw is not None:
            compared.add("name")
    assert dev.end == (cut == len(blob) and C.NO_END_TAG not in codes)

    # the checksum verdict, where lspci sums the same bytes
    if codes & {C.STRAY_BYTES, C.FIELD_OVERRUN, C.RV_EMPTY}:
        return compared
    ro_rvs = [i for i, rv in enumerate(dev.rv) if rv.section == "R"]
    if not ro_rvs:
        assert vpd.checksum_ok is None
        compared.add("no checksum")
    elif all(rv.reserved == 0 for rv in dev.rv[:ro_rvs[-1]]) and dev.rv[ro_rvs[-1]].reserved >= 0:
        assert vpd.checksum_ok == all(dev.rv[i].good for i in ro_rvs), dev.lines
        compared.add("checksum good" if vpd.checksum_ok else "checksum bad")
    return compared


def _run_lspci(blobs: list[bytes]) -> list[set[str]]:
    with tempfile.TemporaryDirectory(prefix="fastvpd-lspci-") as root:
        devices = lspci_oracle.run(blobs, Path(root))
    return [compare_with_lspci(blob, dev) for blob, dev in zip(blobs, devices, strict=True)]


def _corpus() -> list[bytes]:
    rv = Field(b"RV", b"\0", fix=True)
    rv3 = Field(b"RV", b"\0\0\0", fix=True)
    name = Resource(0x82, payload=b"Oracle card")
    blobs = list(SAMPLES.values())
    blobs += [s[:cut] for s in SAMPLES.values() for cut in (1, 2, 3, len(s) // 2, len(s) - 1)]
    blobs += [
        fastvpd.build_vpd("name", [("SN", b"AB\\x41\x00"), ("PN", b"back\\slash\\"),
                                   ("EC", b"\x01\x7f\x1f\x0a\x0d"), ("MN", b"\x80\x85\xe9\xff"),
                                   ("V1", b"v\x00\x00"), ("V2", b"\x00"), ("VZ", b""),
                                   ("CP", b"\x00\x01\xff"), ("ZZ", b"zz"), ("XX", b"\x00\x5c"),
                                   ("CC", b"c"), ("FN", b"f"), ("NA", b"\x00n"), ("RM", b"r"),
                                   ("FC", b"f\x00"), ("PG", b"p"), ("LC", b"l"), ("FG", b"g")],
                          [("YA", b"asset\x00"), ("Y1", b"\xff\\"), ("V9", b"\x00\x00"),
                           ("SN", b"rw serial")]),
        fastvpd.build_vpd("x" * 255 + "\x00" + "tail", [("SN", "s")]),   # NUL ends a 256-piece
        fastvpd.build_vpd("y" * 300 + "\x00", [("SN", "s")]),
        fastvpd.build_vpd(" \\name\x7f ", [("SN", "s")]),
        assemble([name, Resource(0x90, fields=[Field(b"SN", b"a"), rv,
                                               Field(b"SN", b"b"), Field(b"RV", b"\x00")])]),
        assemble([name, Resource(0x90, fields=[Field(b"SN", b"a"), rv3]),
                  Resource(0x90, fields=[Field(b"PN", b"p"), rv])]),        # reserved bytes
        assemble([name, Resource(0x90, fields=[Field(b"SN", b"a"), Field(b"RW", b"xyz"), rv]),
                  Resource(0x91, fields=[Field(b"RV", b"\x07\x07"), Field(b"RW", b"\0\0")])]),
        assemble([name, Resource(0x90, fields=[Field(b"SN", b"a"), Field(b"RV", b"")]),
                  Resource(0x91, fields=[Field(b"RV", b"")])]),
        assemble([name, Resource(0x90, fields=[Field(b"s\x01", b"x"), Field(b"] ", b"y"),
                                               Field(b"Va", b"z"), Field(b"\\\\", b""), rv])]),
        assemble([name, Resource(0xA0, payload=b"unknown"), Resource(0x90, fields=[rv])]),
        assemble([name, Resource(0x90, fields=[rv]), Resource(0x10, payload=b"ab"),
                  Resource(0x91, fields=[Field(b"YA", b"a")])]),
        assemble([name, Resource(0x90, fields=[Field(b"SN", b"a"), rv], stray=b"PN")]),
        assemble([name, Resource(0x90, fields=[Field(b"SN", b"a", length=40), rv])]),
        assemble([name, Resource(0x90, fields=[Field(b"SN", b"a"), rv], length=200)], end=b""),
        assemble([Resource(0x82, payload=b"long " * 100, length=900)], end=b""),
        assemble([Resource(0xA5, payload=bytes(32750)), Resource(0x90, fields=[
            Field(b"SN", b"a"), rv], length=30)], end=b""),
        b"", b"\x00", b"\xff\x01\x00x\x78", b"\x00\x90\x04\x00RV\x01\x00\x78", b"\x78",
        b"\x82", b"\x82\x01", b"\x90\x03\x00SN\x00\x78",
    ]
    return blobs


@needs_lspci
def test_lspci_corpus():
    blobs = _corpus()
    compared = _run_lspci(blobs)
    seen = set().union(*compared)
    # the comparison is not vacuous: each kind was compared on some blob
    assert {"fields", "name", "checksum good", "checksum bad", "no checksum", "no-vpd"} <= seen


@needs_lspci
def test_lspci_prints_what_the_oracle_assumes():
    """The pciutils behaviour the restrictions above rest on, seen on one blob."""
    blob = fastvpd.build_vpd("ab\x00", [("SN", b"A\\x41\x00"), ("V1", b"\x85\xe9\n"),
                                        ("CP", b"\x00\x01"), ("ZZ", b"z\x00\x00")],
                             [("YA", b"t")])
    with tempfile.TemporaryDirectory() as root:
        (dev,) = lspci_oracle.run([blob], Path(root))
    text = "\n".join(dev.lines)
    assert "\t\tProduct Name: ab\n" in text                      # trailing NUL dropped
    assert "[SN] Serial number: A\\\\x41\n" in text              # backslash doubled, NUL dropped
    assert "[V1] Vendor specific: \x85\xe9\\x0a\n" in text       # high bytes raw, control escaped
    assert "[CP] Extended capability: 00 01\n" in text
    assert "[ZZ] Product specific: z\\x00\n" in text             # only the last NUL dropped
    assert "[RV] Reserved: checksum good, 0 byte(s) reserved" in text
    assert "[RW] Read-write area: 0 byte(s) free" in text
    assert dev.end and dev.merged("R") == [("SN", b"A\\x41"), ("V1", b"\x85\xe9\n"),
                                           ("CP", b"\x00\x01"), ("ZZ", b"z\x00")]


@needs_lspci
@settings(max_examples=max(5, settings().max_examples // 5))
@given(st.lists(st.one_of(valid_blobs, structured_blobs(), corrupted_blobs), min_size=40,
                max_size=80))
def test_lspci_generated(blobs):
    for kinds in _run_lspci(blobs):
        for kind in kinds:
            event(kind)
