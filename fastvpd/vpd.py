"""PCI Vital Product Data: the `Vpd` object, `parse_vpd` and `build_vpd`.

The byte walk is in the Cython module `_vpd`; this module holds the policy of spec/vpd.md: problem
messages, which problems are fatal in strict mode, and text normalisation of the known keywords.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from . import _vpd
from .errors import VpdFormatError

__all__ = ["Vpd", "parse_vpd", "build_vpd", "MAX_VPD_SIZE", "KEYWORD_NAMES", "PROBLEMS"]

MAX_VPD_SIZE = _vpd.MAX_VPD_SIZE

#: code -> (fatal in strict mode, message template; {d} is the detail: a keyword, tag or section)
PROBLEMS: Mapping[int, tuple[bool, str]] = MappingProxyType({
    _vpd.NO_VPD: (True, "no VPD: empty, or first byte 0x00/0xFF (unprogrammed EEPROM)"),
    _vpd.NO_END_TAG: (True, "no end tag before the data ends"),
    _vpd.RESOURCE_OVERRUN: (True, "resource {d} runs past the end of the data"),
    _vpd.FIELD_OVERRUN: (True, "field {d} runs past the end of its resource"),
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


_EMPTY: Mapping[str, bytes] = MappingProxyType({})
text = _vpd.text


class Vpd:
    """A decoded VPD blob. Immutable; raw values are kept, text is normalised on access.

    ``read_only``/``read_write`` map keyword -> raw value in blob order (a repeated keyword keeps
    its first position and its last value). ``checksum_ok`` is None when VPD-R has no RV.
    """

    __slots__ = ("_name_raw", "_ro", "_rw", "checksum_ok", "_problems", "_raw_problems",
                 "_ro_map", "_rw_map")

    _name_raw: bytes | None
    _ro: list[tuple[str, bytes]]
    _rw: list[tuple[str, bytes]]
    checksum_ok: bool | None
    _raw_problems: list[tuple[int, int, str | None]]

    def __init__(self, name: str | None = None, read_only: Mapping[str, bytes] | None = None,
                 read_write: Mapping[str, bytes] | None = None, checksum_ok: bool | None = None,
                 problems: Iterable[str] = ()) -> None:
        """Build a Vpd by hand (tests, synthetic hosts); `parse_vpd` is the usual way."""
        _set = object.__setattr__
        _set(self, "_name_raw", None if name is None else name.encode("ascii"))
        _set(self, "_ro", list((read_only or {}).items()))
        _set(self, "_rw", list((read_write or {}).items()))
        _set(self, "checksum_ok", checksum_ok)
        _set(self, "_raw_problems", [])
        _set(self, "_problems", tuple(problems))
        _set(self, "_ro_map", None)
        _set(self, "_rw_map", None)

    @classmethod
    def _from_walk(cls, walked: tuple[Any, ...]) -> Vpd:
        name_raw, ro, rw, checksum, raw_problems = walked
        self = cls.__new__(cls)
        _set = object.__setattr__
        _set(self, "_name_raw", name_raw)
        _set(self, "_ro", ro)
        _set(self, "_rw", rw)
        _set(self, "checksum_ok", None if checksum < 0 else bool(checksum))
        if len(raw_problems) > 1:
            raw_problems.sort(key=_problem_key)
        _set(self, "_raw_problems", raw_problems)
        _set(self, "_problems", None)
        _set(self, "_ro_map", None)
        _set(self, "_rw_map", None)
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Vpd is immutable (cannot set {name!r})")

    __delattr__ = __setattr__  # type: ignore[assignment]

    # -- raw data ---------------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        """The identifier string (product name), normalised; None if absent or not text."""
        raw = self._name_raw
        return None if raw is None else text(raw)

    @property
    def read_only(self) -> Mapping[str, bytes]:
        m = self._ro_map
        if m is None:
            m = MappingProxyType(dict(self._ro))
            object.__setattr__(self, "_ro_map", m)
        return m

    @property
    def read_write(self) -> Mapping[str, bytes]:
        m = self._rw_map
        if m is None:
            m = MappingProxyType(dict(self._rw))
            object.__setattr__(self, "_rw_map", m)
        return m

    @property
    def problems(self) -> tuple[str, ...]:
        """Human-readable problems, each with its byte offset; empty for a clean blob."""
        p = self._problems
        if p is None:
            p = tuple(_message(o, c, d) for o, c, d in self._raw_problems)
            object.__setattr__(self, "_problems", p)
        return p

    @property
    def fatal_problems(self) -> tuple[str, ...]:
        """The problems that make ``parse_vpd(strict=True)`` raise."""
        return tuple(_message(o, c, d) for o, c, d in self._raw_problems if PROBLEMS[c][0])

    # -- text accessors ---------------------------------------------------------------------------
    def _ro_text(self, keyword: str) -> str | None:
        value = None
        for kw, raw in self._ro:  # a handful of fields: cheaper than building the mapping
            if kw == keyword:
                value = raw
        return None if value is None else text(value)

    def _rw_text(self, keyword: str) -> str | None:
        raw = self.read_write.get(keyword)
        return None if raw is None else text(raw)

    @property
    def serial_number(self) -> str | None:
        return self._ro_text("SN")

    @property
    def part_number(self) -> str | None:
        return self._ro_text("PN")

    @property
    def change_level(self) -> str | None:
        return self._ro_text("EC")

    @property
    def manufacture_id(self) -> str | None:
        return self._ro_text("MN")

    @property
    def asset_tag(self) -> str | None:
        return self._rw_text("YA")

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
        """A JSON-ready form: text where the value is text, else ``hex:`` + the bytes in hex."""
        return {
            "name": self.name,
            "serial_number": self.serial_number,
            "read_only": {k: _display(v) for k, v in self.read_only.items()},
            "read_write": {k: _display(v) for k, v in self.read_write.items()},
            "checksum_ok": self.checksum_ok,
            "problems": list(self.problems),
        }


def _problem_key(p: tuple[int, int, str | None]) -> tuple[int, int]:
    return (p[0], p[1])


def _indexed_text(section: Mapping[str, bytes], family: str, excluded: str) -> Mapping[str, str]:
    out = {}
    for kw, raw in section.items():
        if kw[0] == family and kw[1] not in excluded:
            value = text(raw)
            if value is not None:
                out[kw[1]] = value
    return MappingProxyType(out)


def _display(raw: bytes) -> str:
    value = text(raw)
    if value is not None and len(value) == len(raw.split(b"\0", 1)[0].strip(b" \t\n\f\r")):
        return value
    return "hex:" + raw.hex()


_walk = _vpd.parse
_from_walk = Vpd._from_walk


def parse_vpd(data: bytes | bytearray | memoryview, *, strict: bool = False) -> Vpd:
    """Decode a VPD blob.

    Tolerant (default): never raises for any bytes; problems are kept on ``Vpd.problems``.
    ``strict=True`` raises `VpdFormatError` (with ``.offset``) at the first fatal problem.
    """
    vpd = _from_walk(_walk(data))
    if strict and vpd._raw_problems:
        for offset, code, detail in vpd._raw_problems:
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
