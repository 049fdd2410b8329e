"""PCI Vital Product Data: the `Vpd` object, `parse_vpd` and `build_vpd`.

The byte walk is in the Cython module `_vpd`; this module holds the policy of docs/vpd.md: problem
messages, which problems are fatal in strict mode, and text normalisation of the known keywords.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from . import _vpd
from .errors import VpdFormatError

__all__ = ["Vpd", "parse_vpd", "build_vpd", "escape_value", "MAX_VPD_SIZE", "KEYWORD_NAMES",
           "PROBLEMS"]

MAX_VPD_SIZE = _vpd.MAX_VPD_SIZE

#: code -> (fatal in strict mode, message template; {d} is the detail: a keyword, tag or section)
PROBLEMS: Mapping[int, tuple[bool, str]] = MappingProxyType({
    _vpd.NO_VPD: (True, "no VPD: empty, or first byte 0x00/0xFF (unprogrammed EEPROM)"),
    _vpd.NO_END_TAG: (True, "no end tag before the data ends"),
    _vpd.RESOURCE_OVERRUN: (True, "resource {d} runs past the end of the data"),
    _vpd.FIELD_OVERRUN: (True, "field {d} runs past the end of its resource or of the data"),
    _vpd.STRAY_BYTES: (True, "stray bytes at the end of {d}"),
    _vpd.NO_VPD_R: (True, "no VPD-R (read-only) resource"),
    _vpd.NO_RV: (True, "VPD-R has no RV checksum field"),
    _vpd.RV_NOT_LAST: (True, "RV is not the last field of VPD-R"),
    _vpd.RV_EMPTY: (True, "RV has length 0 (no checksum byte)"),
    _vpd.CHECKSUM_BAD: (True, "checksum wrong"),
    _vpd.RW_IN_VPD_R: (True, "RW field inside VPD-R"),
    _vpd.RV_IN_VPD_W: (True, "RV field inside VPD-W"),
    _vpd.RW_NOT_LAST: (True, "RW is not the last field of VPD-W"),
    _vpd.RW_REPEATED: (True, "more than one RW field in VPD-W"),
    _vpd.BAD_NAME: (True, "identifier string is not printable ASCII"),
    _vpd.UNKNOWN_RESOURCE: (False, "unknown resource {d} skipped"),
    _vpd.INVALID_KEYWORD: (False, "invalid keyword 0x{d} skipped"),
    _vpd.WRONG_SECTION: (False, "keyword {d} in the wrong section"),
    _vpd.NOT_TEXT: (False, "field {d} is not printable ASCII"),
})

#: Long names of keywords, as `lspci -vv` prints them (pciutils ls-vpd.c), for display.
KEYWORD_NAMES: Mapping[str, str] = MappingProxyType({
    "PN": "Part number",
    "EC": "Engineering changes",
    "MN": "Manufacture ID",
    "SN": "Serial number",
    "FG": "Fabric geography",
    "LC": "Location",
    "PG": "PCI geography",
    "CP": "Extended capability",
    "RV": "Reserved",
    "YA": "Asset tag",
    "RW": "Read-write area",
    "CC": "CCIN",
    "FC": "Feature code",
    "FN": "FRU number",
    "NA": "Network address",
    "RM": "Firmware version",
    "VI": "Vendor ID",
    "DD": "Device driver level",
})


def keyword_name(keyword: str) -> str:
    """The long name of a keyword: known names, then the `Vx`/`Yx`/`Zx` families."""
    name = KEYWORD_NAMES.get(keyword)
    if name is not None:
        return name
    if keyword[0] == "V":
        return "Vendor specific"
    if keyword[0] == "Y":
        return "System specific"
    if keyword[0] == "Z":
        return "Product specific"
    return "Unknown"


def _message(offset: int, code: int, detail: str | None) -> str:
    return f"offset {offset}: " + PROBLEMS[code][1].format(d=detail)


def _problem_dict(offset: int, code: int, detail: str | None) -> dict[str, Any]:
    fatal, template = PROBLEMS[code]
    return {"offset": offset, "message": template.format(d=detail), "fatal": fatal}


_EMPTY: Mapping[str, bytes] = MappingProxyType({})
text = _vpd.text


class Vpd(_vpd.Blob):
    """A decoded VPD blob. Immutable; raw values are kept, text is normalised on access.

    ``read_only``/``read_write`` map keyword -> raw value in blob order (a repeated keyword keeps
    its first position and its last value). ``checksum_ok`` is None when VPD-R has no RV.
    A Vpd is the walker's `Blob` (the bytes and a packed field table) and decodes on demand: a
    caller that reads only ``serial_number`` pays for nothing else.
    """

    __slots__ = ()

    def __new__(cls, name: str | None = None, read_only: Mapping[str, bytes] | None = None,
                read_write: Mapping[str, bytes] | None = None, checksum_ok: bool | None = None,
                problems: Iterable[str] = ()) -> Vpd:
        """Build a Vpd by hand (tests, synthetic hosts); `parse_vpd` is the usual way."""
        self = _from_fields(cls, None if name is None else name.encode("ascii"),
                            list((read_only or {}).items()), list((read_write or {}).items()),
                            -1 if checksum_ok is None else int(checksum_ok), [])
        self._cache_problems = tuple(problems)
        return self

    @classmethod
    def _from_fields(cls, name_raw: bytes | None, read_only: Iterable[tuple[str, bytes]],
                     read_write: Iterable[tuple[str, bytes]], checksum: int,
                     raw_problems: list[tuple[int, int, str | None]]) -> Vpd:
        """A Vpd from decoded fields (in blob order, repeats included) and raw problems.

        For other parsers with the same semantics (the tests' reference parser).
        """
        return _from_fields(cls, name_raw, list(read_only), list(read_write), checksum,
                            list(raw_problems))

    # -- raw data ---------------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        """The identifier string (product name), normalised; None if absent or not text."""
        return self.find_text(_NAME)

    @property
    def read_only(self) -> Mapping[str, bytes]:
        m = self._cache_ro
        if m is None:
            m = self._cache_ro = MappingProxyType(self.mapping(_READ_ONLY))
        return m

    @property
    def read_write(self) -> Mapping[str, bytes]:
        m = self._cache_rw
        if m is None:
            m = self._cache_rw = MappingProxyType(self.mapping(_READ_WRITE))
        return m

    @property
    def checksum_ok(self) -> bool | None:
        """True when every RV checksum holds, False when one fails or is empty, None: no RV."""
        c = self.checksum_state
        return None if c < 0 else c == 1

    @property
    def problems(self) -> tuple[str, ...]:
        """Human-readable problems, each with its byte offset; empty for a clean blob."""
        p = self._cache_problems
        if p is None:
            p = self._cache_problems = tuple(_message(o, c, d) for o, c, d in self.raw_problems)
        return p

    @property
    def fatal_problems(self) -> tuple[str, ...]:
        """The problems that make ``parse_vpd(strict=True)`` raise."""
        return tuple(_message(o, c, d) for o, c, d in self.raw_problems if PROBLEMS[c][0])

    # -- text accessors ---------------------------------------------------------------------------
    @property
    def serial_number(self) -> str | None:
        """``SN`` of VPD-R as text: the card serial a compute agent reports."""
        return self.find_text(_READ_ONLY, "SN")

    @property
    def part_number(self) -> str | None:
        return self.find_text(_READ_ONLY, "PN")

    @property
    def change_level(self) -> str | None:
        """``EC``, the engineering change level."""
        return self.find_text(_READ_ONLY, "EC")

    @property
    def manufacture_id(self) -> str | None:
        """``MN``."""
        return self.find_text(_READ_ONLY, "MN")

    @property
    def asset_tag(self) -> str | None:
        """``YA`` of VPD-W."""
        return self.find_text(_READ_WRITE, "YA")

    @property
    def vendor_fields(self) -> Mapping[str, str]:
        """Read-only ``Vx`` fields as text: index character -> text (non-text values left out)."""
        return _indexed_text(self.read_only, "V", "")

    @property
    def system_fields(self) -> Mapping[str, str]:
        """Read-write ``Yx`` fields (x != A) as text."""
        return _indexed_text(self.read_write, "Y", "A")

    # -- value semantics --------------------------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        return (self.name, tuple(self.read_only.items()), tuple(self.read_write.items()),
                self.checksum_ok, self.problems)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vpd):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Vpd(name={self.name!r}, serial_number={self.serial_number!r}, "
                f"read_only={dict(self.read_only)!r}, read_write={dict(self.read_write)!r}, "
                f"checksum_ok={self.checksum_ok!r}, problems={self.problems!r})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form.

        Each field is ``{"raw_hex": ..., "text": ...}``: the raw bytes as hex (lossless) and the
        normalised text, or None when the value is not printable ASCII (docs/vpd.md). Each
        problem is ``{"offset", "message", "fatal"}``; ``fatal``: ``parse_vpd(strict=True)`` (and
        libvirt) reject the blob for it. A Vpd built by hand has problems without an offset
        (``offset`` and ``fatal`` are None). `escape_value` gives the lspci-like form for text.
        """
        if self.raw_problems:
            problems = [_problem_dict(o, c, d) for o, c, d in self.raw_problems]
        else:
            problems = [{"offset": None, "message": p, "fatal": None} for p in self.problems]
        return {
            "name": self.name,
            "serial_number": self.serial_number,
            "read_only": {k: _field_dict(v) for k, v in self.read_only.items()},
            "read_write": {k: _field_dict(v) for k, v in self.read_write.items()},
            "checksum_ok": self.checksum_ok,
            "problems": problems,
        }


def _field_dict(raw: bytes) -> dict[str, str | None]:
    return {"raw_hex": raw.hex(), "text": text(raw)}


def escape_value(raw: bytes) -> str:
    """A raw value as lspci -vv prints it (``\\`` for a backslash, ``\\xNN`` for control bytes),
    and ``\\xNN`` for bytes >= 0x80 too, which lspci passes through raw, so output stays ASCII.

    Unlike lspci, every byte is shown: lspci hides a value's last NUL byte.
    """
    out = []
    for b in raw:
        if b == 0x5C:
            out.append("\\\\")
        elif b < 0x20 or b >= 0x7F:
            out.append(f"\\x{b:02x}")
        else:
            out.append(chr(b))
    return "".join(out)


_from_fields = _vpd.from_fields
_READ_ONLY, _READ_WRITE, _NAME = _vpd.READ_ONLY, _vpd.READ_WRITE, _vpd.NAME


def _indexed_text(section: Mapping[str, bytes], family: str, excluded: str) -> Mapping[str, str]:
    out = {}
    for kw, raw in section.items():
        if kw[0] == family and kw[1] not in excluded:
            value = text(raw)
            if value is not None:
                out[kw[1]] = value
    return MappingProxyType(out)


_walk = _vpd.parse


def parse_vpd(data: bytes | bytearray | memoryview, *, strict: bool = False) -> Vpd:
    """Decode a VPD blob.

    Tolerant (default): never raises for any bytes; problems are kept on ``Vpd.problems``.
    ``strict=True`` raises `VpdFormatError` (with ``.offset``) at the first fatal problem.
    Raises TypeError for anything but bytes, bytearray or memoryview.
    """
    vpd: Vpd = _walk(data, Vpd)
    if strict and vpd.raw_problems:
        for offset, code, detail in vpd.raw_problems:
            if PROBLEMS[code][0]:
                raise VpdFormatError(_message(offset, code, detail), offset)
    return vpd


_KEYWORD = re.compile(r"[A-Z0-9]{2}\Z")


def _field_bytes(section: str, keyword: object, value: object) -> tuple[str, bytes]:
    if not isinstance(keyword, str) or not _KEYWORD.match(keyword):
        raise ValueError(f"{section}: invalid keyword {keyword!r} (two characters of A-Z, 0-9)")
    if isinstance(value, str):
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"{section} {keyword}: text must be ASCII: {value!r}") from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise TypeError(f"{section} {keyword}: value must be bytes or str, not {type(value).__name__}")
    if len(raw) > 255:
        raise ValueError(f"{section} {keyword}: value of {len(raw)} bytes (at most 255)")
    return keyword, raw


def build_vpd(name: str | None = None, read_only: Iterable[tuple[str, bytes | str]] = (),
              read_write: Iterable[tuple[str, bytes | str]] = (), *, checksum: bool = True) -> bytes:
    """Encode a spec-conformant VPD blob: identifier string, VPD-R, optional VPD-W, end tag.

    With ``checksum=True`` an ``RV`` field is appended to VPD-R (or, if ``read_only`` ends with
    one, its first byte is set) so that the bytes through it sum to zero; a given ``RV`` value sets
    the field length (1 checksum byte + reserved bytes). VPD-W gets an empty ``RW`` unless it ends
    with one. ``checksum=False`` writes fields verbatim (no RV added): useful for broken blobs.
    Raises ValueError for anything the format cannot hold.
    """
    ro = [_field_bytes("read_only", k, v) for k, v in read_only]
    rw = [_field_bytes("read_write", k, v) for k, v in read_write]
    for i, (kw, _) in enumerate(ro):
        if kw == "RW":
            raise ValueError("read_only: RW belongs to VPD-W")
        if kw == "RV" and i != len(ro) - 1:
            raise ValueError("read_only: RV must be the last field")
    for i, (kw, _) in enumerate(rw):
        if kw == "RV":
            raise ValueError("read_write: RV belongs to VPD-R")
        if kw == "RW" and i != len(rw) - 1:
            raise ValueError("read_write: RW must be the last field")
    if checksum:
        if ro and ro[-1][0] == "RV":
            if not ro[-1][1]:
                raise ValueError("read_only: RV needs at least its checksum byte")
        else:
            ro.append(("RV", b"\0"))
    if rw and rw[-1][0] != "RW":
        rw.append(("RW", b""))

    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be str or None, not {type(name).__name__}")
    try:
        raw_name = None if name is None else name.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"name must be ASCII: {name!r}") from None
    size = _size(raw_name, ro, rw)
    if size > MAX_VPD_SIZE:
        raise ValueError(f"VPD of {size} bytes is larger than {MAX_VPD_SIZE}")

    out = bytearray()
    if raw_name is not None:
        out += b"\x82" + len(raw_name).to_bytes(2, "little") + raw_name
    for tag, fields in ((0x90, ro), (0x91, rw)):
        if not fields:
            continue
        body = b"".join(kw.encode("ascii") + bytes((len(v),)) + v for kw, v in fields)
        out += bytes((tag,)) + len(body).to_bytes(2, "little") + body
        if tag == 0x90 and checksum:
            at = len(out) - len(fields[-1][1])  # the RV checksum byte
            out[at] = (-sum(out[:at])) & 0xFF
    out.append(0x78)
    return bytes(out)


def _size(raw_name: bytes | None, ro: list[tuple[str, bytes]], rw: list[tuple[str, bytes]]) -> int:
    size = 1 + (3 + len(raw_name) if raw_name is not None else 0)
    for fields in (ro, rw):
        if fields:
            size += 3 + sum(3 + len(v) for _, v in fields)
    return size
