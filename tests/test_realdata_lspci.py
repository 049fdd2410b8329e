"""Every real ``lspci -vv`` VPD capture in tests/data/lspci, rebuilt as a blob and shown by fastvpd.

Raw bytes are not available for these cards, only what lspci printed. For each capture the test
parses the VPD section, rebuilds a blob with `fastvpd.build_vpd` (same keywords and values in the
same order, same RV reserved / RW free sizes), then checks two things:

- ``python -m fastvpd vpd BLOB`` shows the capture's product name, fields and values in the
  capture's order, "Checksum: good" where lspci said "checksum good", the card serial and the
  exact problem list; for the captures lspci itself could not decode, the blob reproduces the
  defect (no end tag; an unknown small resource) and fastvpd must report it as a problem;
- ``lspci -vv`` run on the rebuilt blob (tests/lspci_oracle.py) prints the capture's VPD lines
  again, which proves the blob is faithful to the card.

Reading a capture (all of this is about how the text reached us, not about the card):

- Mail quoting (``> ``, ``> > ``) and indentation are dropped.
- Mail clients wrapped long lines. A line that does not start an lspci item continues the one
  before: directly if that one ends in a space (a soft line break keeps the space: QLE2464
  "...4Gb Fibre " / "Channel HBA"), else after one space (the ConnectX-7 name in the leon capture
  reads "...x16 PCIe extension option..." in the stelline captures of the same card family).
- The X550T capture was reflowed into one line holding V0, MN and RV: it is split before each
  `` [XX] Long name: ``. That capture also ends before lspci's closing line (the quote was cut),
  so its blob gets a normal end tag and only the lines shown are compared.
- pciutils before 3.5.6 printed MN as hex bytes (``31 30 32 38``), as the 2019 and 2021
  captures show. Today's lspci prints MN as text, so those lines are compared in today's form.
- lspci never prints a value's last byte when it is NUL (pciutils ls-vpd.c print_vpd_string:
  "Cards with null-terminated strings have been observed"). A shown value that ends in ``\\x00``
  (E810 V0 ``FFV20.5.13\\x00``) therefore had one more NUL, and the rebuilt value has it.
  fastvpd shows every byte, so its line for that value ends in ``\\x00\\x00``; values are compared
  as bytes.
- Trailing spaces are kept: they are part of the values (ConnectX-4 Lx PN/SN/V0, BlueField-2
  name and fields). A mail client dropped the one lspci prints after an empty value
  (``[YA] Asset tag:``), so lspci's lines are compared with trailing spaces stripped, and exactly
  where the capture itself has trailing spaces.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fastvpd import build_vpd, parse_vpd
from fastvpd.errors import VpdFormatError
from tests import lspci_oracle

DATA = Path(__file__).parent / "data"
CAPTURE_DIR = DATA / "lspci"
CAPTURES = sorted(CAPTURE_DIR.glob("*.txt"))
CAPTURE_IDS = [p.stem for p in CAPTURES]

# -- reading lspci's VPD text --------------------------------------------------------------------
_VPD_CAP = re.compile(r"Capabilities: \[[0-9a-f]+\] Vital Product Data\Z")
_QUOTE = re.compile(r"^(?:>[ \t]?)+")
_TERMINATOR = re.compile(r"End\Z|No end tag found\Z|Not readable\Z|Unknown (small|large) "
                         r"resource type ([0-9a-f]{2}), will not decode more\.\Z")
_ITEM = re.compile(r"Product Name: |Read-only fields:\Z|Read/write fields:\Z|\[[A-Z0-9]{2}\] |"
                   + _TERMINATOR.pattern)
_FIELD = re.compile(r"\[([A-Z0-9]{2})\] ([^:]+):(?: (.*))?\Z", re.S)
_REFLOWED = re.compile(r" (?=\[[A-Z0-9]{2}\] [A-Z][A-Za-z -]*: )")
_RV = re.compile(r"checksum (good|bad), (\d+) byte\(s\) reserved\Z")
_RW = re.compile(r"(\d+) byte\(s\) free\Z")
_OLD_MN = re.compile(r"[0-9a-f]{2}(?: [0-9a-f]{2})+\Z")
_ESCAPE = re.compile(r"\\\\|\\x([0-9a-fA-F]{2})")
_SPACE = b" \t\n\f\r"


def vpd_lines(text: str) -> list[str]:
    """The logical lines of the first VPD section in `text` (a capture or lspci's output)."""
    lines = text.split("\n")  # not splitlines(): raw bytes such as 0x85 are no line breaks
    start = next(i for i, line in enumerate(lines) if _VPD_CAP.search(line))
    out: list[str] = []
    for line in lines[start + 1:]:
        item = _QUOTE.sub("", line).lstrip(" \t")
        if not item.strip() or item.startswith(("Capabilities:", "Kernel driver")):
            break
        if _ITEM.match(item) or not out:
            out.append(item)
        else:  # a line a mail client wrapped
            out[-1] += item if out[-1].endswith(" ") else " " + item
        if _TERMINATOR.match(out[-1]):
            break
    return [part for line in out for part in _REFLOWED.split(line)]


def unescape(shown: str) -> bytes:
    """The bytes behind a value as lspci (or fastvpd) shows it: ``\\xNN`` and ``\\\\`` undone."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(shown):
        out += shown[pos:m.start()].encode("latin-1")  # lspci passes bytes >= 0x80 through
        out += bytes.fromhex(m.group(1)) if m.group(1) else b"\\"
        pos = m.end()
    out += shown[pos:].encode("latin-1")
    return bytes(out)


def lspci_text(raw: bytes) -> str:
    """A value as today's lspci prints it (pciutils ls-vpd.c print_vpd_string)."""
    out = []
    for i, b in enumerate(raw):
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0 and i == len(raw) - 1:
            pass  # the last byte, when NUL, is not printed
        elif b < 0x20 or b == 0x7F:
            out.append(f"\\x{b:02x}")
        else:
            out.append(chr(b))
    return "".join(out)


def shown_value(keyword: str, shown: str) -> bytes:
    """The raw value behind what lspci showed (see the module docstring)."""
    if keyword == "MN" and _OLD_MN.match(shown):
        return bytes.fromhex(shown)
    raw = unescape(shown)
    return raw + b"\0" if raw.endswith(b"\0") else raw


def normalise(raw: bytes) -> str:
    """spec/vpd.md text normalisation (libvirt's), for values known to be printable."""
    return raw.split(b"\0", 1)[0].strip(_SPACE).decode("ascii")


@dataclass
class Section:
    """What lspci printed for one blob, as data."""

    lines: list[str]
    name: bytes | None = None
    read_only: list[tuple[str, str, bytes]] = field(default_factory=list)  # without RV
    read_write: list[tuple[str, str, bytes]] = field(default_factory=list)  # without RW
    rv: tuple[bool, int] | None = None  # (checksum good, reserved bytes)
    rw_free: int | None = None
    ending: str | None = None  # the last line: End, No end tag found, Unknown ...; None if cut
    unknown_tag: int | None = None  # the small resource tag byte lspci stopped at


def parse_section(lines: list[str]) -> Section:
    sec = Section(lines)
    fields: list[tuple[str, str, bytes]] | None = None
    for i, line in enumerate(lines):
        if line.startswith("Product Name: "):
            sec.name = shown_value("", line[len("Product Name: "):])
        elif line == "Read-only fields:":
            fields = sec.read_only
        elif line == "Read/write fields:":
            fields = sec.read_write
        elif m := _TERMINATOR.match(line):
            assert i == len(lines) - 1, line
            sec.ending = line
            if m.group(1) == "small":
                sec.unknown_tag = int(m.group(2), 16) << 3
        else:
            m = _FIELD.match(line)
            assert m is not None and fields is not None, f"not an lspci VPD line: {line!r}"
            kw, long_name, shown = m.group(1), m.group(2), m.group(3) or ""
            if kw == "RV":
                rv = _RV.match(shown)
                assert rv and fields is sec.read_only, line
                sec.rv = (rv.group(1) == "good", int(rv.group(2)))
            elif kw == "RW":
                rw = _RW.match(shown)
                assert rw and fields is sec.read_write, line
                sec.rw_free = int(rw.group(1))
            else:  # rebuild() puts RV/RW last: nothing may follow them
                assert sec.rv is None if fields is sec.read_only else sec.rw_free is None, line
                fields.append((kw, long_name, shown_value(kw, shown)))
    return sec


@dataclass
class Capture(Section):
    stem: str = ""
    source: str = ""


def load_capture(path: Path) -> Capture:
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first.startswith("# source: "), path
    sec = parse_section(vpd_lines(text))
    return Capture(**sec.__dict__, stem=path.stem, source=first[len("# source: "):])


def parse_lspci(output: str) -> Section:
    return parse_section(vpd_lines(output))


def rebuild(cap: Section) -> bytes:
    """A blob that lspci prints as `cap` (see the module docstring)."""
    if cap.unknown_tag is not None and cap.name is None and not cap.read_only:
        # lspci stopped at the first resource: the blob is that small resource (length 0),
        # then an end tag lspci never reached.
        return bytes((cap.unknown_tag, 0x78))
    assert cap.name is not None and cap.rv is not None and cap.rv[0], cap.lines
    ro = [(kw, raw) for kw, _, raw in cap.read_only] + [("RV", bytes(cap.rv[1] + 1))]
    rw = [(kw, raw) for kw, _, raw in cap.read_write]
    if cap.rw_free is not None:
        blob = build_vpd(cap.name.decode("ascii"), ro, rw + [("RW", bytes(cap.rw_free))])
    else:
        blob = build_vpd(cap.name.decode("ascii"), ro)
        if rw:  # VPD-W without RW (the Dell Intel cards): build_vpd would add an empty RW
            body = b"".join(kw.encode() + bytes((len(v),)) + v for kw, v in rw)
            blob = blob[:-1] + b"\x91" + len(body).to_bytes(2, "little") + body + b"\x78"
    if cap.ending == "No end tag found":
        assert blob[-1] == 0x78
        blob = blob[:-1]
    else:
        assert cap.ending in ("End", None), cap.ending
    return blob


def modern_lines(cap: Section) -> list[str]:
    """The capture's lines as today's lspci prints them: MN as text, not hex bytes."""
    out = []
    for line in cap.lines:
        m = _FIELD.match(line)
        if m and m.group(1) == "MN" and _OLD_MN.match(m.group(3) or ""):
            line = f"[MN] {m.group(2)}: {lspci_text(bytes.fromhex(m.group(3)))}"
        out.append(line)
    return out


def assert_same_lines(actual: list[str], expected: list[str]) -> None:
    """`actual` (lspci's lines) equals `expected` (a capture's) as the module docstring says."""
    assert [a.rstrip() for a in actual] == [e.rstrip() for e in expected]
    for a, e in zip(actual, expected):
        if e != e.rstrip():
            assert a == e


# -- the fastvpd command ---------------------------------------------------------------------------
@dataclass
class Shown:
    name: str
    read_only: list[tuple[str, str, bytes]]
    read_write: list[tuple[str, str, bytes]]
    checksum: str
    serial: str
    problems: list[str]


def fastvpd_vpd(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastvpd", "vpd", *args, str(path)],
                          capture_output=True, text=True, timeout=60)


def parse_cli(out: str) -> Shown:
    """Read ``fastvpd vpd`` output back; values keep every byte, trailing spaces included."""
    lines = out.split("\n")
    assert lines[0].endswith(" bytes)") and lines[-1] == ""
    name = checksum = serial = None
    ro: list[tuple[str, str, bytes]] = []
    rw: list[tuple[str, str, bytes]] = []
    problems: list[str] = []
    section = None
    for line in lines[1:-1]:
        if line.startswith("      [") and section is not None:
            m = _FIELD.match(line[6:])
            assert m, line
            section.append((m.group(1), m.group(2), unescape(m.group(3) or "")))
        elif line.startswith("      ") and section is problems:
            problems.append(line[6:])
        elif line.startswith("  Product Name: "):
            name = line[len("  Product Name: "):]
        elif line == "  Read-only fields:":
            section = ro
        elif line == "  Read/write fields:":
            section = rw
        elif line.startswith("  Checksum: "):
            checksum, section = line[len("  Checksum: "):], None
        elif line.startswith("  Card serial number: "):
            serial = line[len("  Card serial number: "):]
        elif line == "  Problems:":
            section = problems
        else:
            assert line == "  Problems: none", line
    assert name is not None and checksum is not None and serial is not None, out
    return Shown(name, ro, rw, checksum, serial, problems)


# -- expectations ----------------------------------------------------------------------------------
#: The exact problems fastvpd lists for each rebuilt blob; every capture not named here: none.
PROBLEMS = {
    # lspci: "No end tag found". The blob stops after VPD-R, as the card's VPD did.
    "cx4lx_mcx4421a_no_end_tag_linuxpci2021": ["offset 113: no end tag before the data ends"],
    # lspci: "Unknown small resource type 06/05, will not decode more." at the first resource.
    "intel_82599es_1dcf_030a_unknown_type06_linuxpci2021": [
        "offset 0: unknown resource 0x30 (small item 0x06) skipped", "offset 1: no VPD-R (read-only) resource"],
    "realtek_rtl8168_rev07_vortex86_unknown_type05_linuxpci2025": [
        "offset 0: unknown resource 0x28 (small item 0x05) skipped", "offset 1: no VPD-R (read-only) resource"],
    "realtek_rtl8168_unknown_type05_linuxpci2025": [
        "offset 0: unknown resource 0x28 (small item 0x05) skipped", "offset 1: no VPD-R (read-only) resource"],
    # The Cisco X550-TX has MN = 11 37 (shown by the old lspci as hex bytes): 0x11 is no text.
    "intel_x550t_cisco_iwl2019": ["offset 73: field MN is not printable ASCII"],
    # The QLE2464 carries an (empty) asset tag YA in VPD-R: not fatal.
    "qlogic_qle2464_linuxscsi2021": ["offset 140: keyword YA in the wrong section"],
}
#: Captures whose blob `parse_vpd(strict=True)` rejects, with the reason.
STRICT_FAILS = {
    "cx4lx_mcx4421a_no_end_tag_linuxpci2021": "offset 113: no end tag before the data ends",
    "intel_82599es_1dcf_030a_unknown_type06_linuxpci2021":
        "offset 1: no VPD-R (read-only) resource",
    "realtek_rtl8168_rev07_vortex86_unknown_type05_linuxpci2025":
        "offset 1: no VPD-R (read-only) resource",
    "realtek_rtl8168_unknown_type05_linuxpci2025": "offset 1: no VPD-R (read-only) resource",
}


@pytest.fixture(params=CAPTURES, ids=CAPTURE_IDS)
def capture(request) -> Capture:
    return load_capture(request.param)


def test_all_22_captures_are_here_with_their_source():
    assert len(CAPTURES) == 22
    for path in CAPTURES:
        cap = load_capture(path)
        assert cap.source and cap.ending != "Not readable", path.name
        assert cap.stem in (DATA / "NOTICE.md").read_text(), f"{path.name} is not in NOTICE.md"


def test_capture_reading_undoes_mail_damage():
    """The capture reader itself, on the captures a mail client reflowed or wrapped."""
    qle2464 = load_capture(CAPTURE_DIR / "qlogic_qle2464_linuxscsi2021.txt")
    assert qle2464.name == b"PCI-Express Quad Channel 4Gb Fibre Channel HBA"
    assert dict((k, v) for k, _, v in qle2464.read_only)["MN"] == b"PX2610401-11  A"
    assert ("YA", "Asset tag", b"") in qle2464.read_only
    x550 = load_capture(CAPTURE_DIR / "intel_x550t_cisco_iwl2019.txt")
    assert x550.name == b"Cisco  X550-TX 10 Gig"
    assert x550.read_only == [("PN", "Part number", b"X550-TX"),
                              ("V0", "Vendor specific", b"MAP 1.86 V0.02 PHY 2.B.B MAC 3.15"),
                              ("MN", "Manufacture ID", b"\x117")]
    assert x550.rv == (True, 0) and x550.ending is None
    x710 = load_capture(CAPTURE_DIR / "intel_x710_dell_6vdpg_iwl2019.txt")
    v4 = dict((k, v) for k, _, v in x710.read_only)["V4"]
    assert v4.startswith(b"DCM1001FFFFFF2101") and v4.endswith(b"2F08FFFFFF") and len(v4) == 163
    leon = load_capture(CAPTURE_DIR / "cx7_mcx713106aehea_qp1_leon_linuxpci2024.txt")
    assert leon.name.endswith(b"x16 PCIe extension option, Crypto, Secure Boot Capable")
    e810 = load_capture(CAPTURE_DIR / "intel_e810_xxv_dell_vk88g_iwl2022.txt")
    assert e810.read_only[0] == ("V0", "Vendor specific", b"FFV20.5.13\0\0")
    assert e810.read_write == [("Y0", "System specific", b"CCF1")] and e810.rw_free is None
    cx4 = load_capture(CAPTURE_DIR / "cx4lx_mcx4421a_no_end_tag_linuxpci2021.txt")
    assert cx4.read_only[0] == ("PN", "Part number", b"MCX4421A-ACQN        ")
    assert cx4.read_only[2] == ("SN", "Serial number", b"MT2042X16761            ")
    assert cx4.ending == "No end tag found"


def test_fastvpd_shows_what_lspci_showed(capture, tmp_path):
    blob = rebuild(capture)
    path = tmp_path / "vpd"
    path.write_bytes(blob)
    proc = fastvpd_vpd(path)
    assert proc.returncode == 0, proc.stderr
    shown = parse_cli(proc.stdout)

    # fastvpd prints the normalised name (trailing spaces of the BlueField-2 name go).
    assert shown.name == ("(none)" if capture.name is None else normalise(capture.name))
    # Fields: keyword, long name and every byte of the value, in the capture's order.
    assert shown.read_only == capture.read_only
    assert shown.read_write == capture.read_write
    if capture.rv is not None:
        assert capture.rv[0] and shown.checksum == "good"
    else:
        assert shown.checksum == "absent (no RV field)"
    sn = [raw for kw, _, raw in capture.read_only if kw == "SN"]
    assert shown.serial == (normalise(sn[0]) if sn else "(none)")
    assert shown.problems == PROBLEMS.get(capture.stem, [])

    # Strict mode: the verdict, in process (the CLI's --strict is covered in test_cli).
    if capture.stem in STRICT_FAILS:
        with pytest.raises(VpdFormatError) as exc:
            parse_vpd(blob, strict=True)
        assert str(exc.value) == STRICT_FAILS[capture.stem]
    else:
        parse_vpd(blob, strict=True)


def test_rebuilt_blob_is_faithful_lspci_prints_the_capture_again(capture):
    lines = vpd_lines(lspci_oracle.lspci_vv(rebuild(capture)))
    expected = modern_lines(capture)
    if capture.ending is None:  # the X550T quote stops before lspci's last line
        assert lines[len(expected):] == ["End"]
        lines = lines[:len(expected)]
    assert_same_lines(lines, expected)


@pytest.mark.parametrize("stem", [s for s in CAPTURE_IDS if "unknown_type" in s])
def test_unknown_small_resource_after_vpd_r_keeps_name_and_fields(stem, tmp_path):
    """The same defect later in the blob: lspci stops there; fastvpd skips it, keeps the rest.

    The head is the real QLE2742 image (tests/data/vpd) without its end tag.
    """
    head = (DATA / "vpd" / "qlogic_qle2742.bin").read_bytes()[:-1]
    tag = load_capture(CAPTURE_DIR / f"{stem}.txt").unknown_tag
    blob = head + bytes((tag, 0x78))

    printed = parse_lspci(lspci_oracle.lspci_vv(blob))
    assert printed.ending == f"Unknown small resource type {tag >> 3:02x}, will not decode more."
    assert printed.name == b"QLogic 32Gb 2-port FC to PCIe Gen3 x8 Adapter"
    assert [kw for kw, _, _ in printed.read_only] == ["PN", "SN", "EC", "V9"]

    path = tmp_path / "vpd"
    path.write_bytes(blob)
    proc = fastvpd_vpd(path)
    assert proc.returncode == 0, proc.stderr
    shown = parse_cli(proc.stdout)
    assert shown.name == "QLogic 32Gb 2-port FC to PCIe Gen3 x8 Adapter"
    assert shown.read_only == printed.read_only
    assert shown.checksum == "good" and shown.serial == "AFD1533Y02999"
    assert shown.problems == [
        f"offset 108: unknown resource 0x{tag:02x} (small item 0x{tag >> 3 & 0xF:02x}) skipped"]
    parse_vpd(blob, strict=True)  # an unknown resource is not fatal
