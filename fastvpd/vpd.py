"""PCI Vital Product Data: the `Vpd` object, `parse_vpd` and `build_vpd` (docs/vpd.md).

`Vpd`, `parse_vpd`, `text` and the problem table `PROBLEMS` come from the Cython module `_vpd`,
where the walk and the object are one C type, because the card serial is read on every scan;
this module adds the encoder and what a display needs (long keyword names, lspci-like escapes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ._vpd import MAX_VPD_SIZE, PROBLEMS, Vpd, parse_vpd, text

__all__ = ["Vpd", "parse_vpd", "build_vpd", "escape_value", "MAX_VPD_SIZE", "KEYWORD_NAMES",
           "PROBLEMS"]

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
