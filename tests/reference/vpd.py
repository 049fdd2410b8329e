"""A plain pure-Python VPD parser with the semantics of spec/vpd.md, written from the spec.

It is the oracle the Cython walker is tested against and the baseline the benchmarks compare
with, so it stays simple and direct, but it is not slow on purpose: slicing and ``bytes`` methods
do the per-byte work.

``parse(data)`` returns what ``fastvpd._vpd.parse`` yields once its field table is read out:
``(name_raw, read_only, read_write, checksum, problems)`` where ``read_only``/``read_write`` are
``[(keyword, raw value)]`` in blob order with repeats, ``checksum`` is -1 (no RV), 0 (some RV
empty, unverifiable or wrong) or 1 (every RV right), and ``problems`` is
``[(offset, code, detail)]`` sorted by ``(offset, code)``.
"""

from __future__ import annotations

import re

from fastvpd import _vpd as codes
from fastvpd.errors import VpdFormatError
from fastvpd.vpd import PROBLEMS, Vpd

__all__ = ["parse", "parse_vpd", "text", "MAX_SIZE"]

MAX_SIZE = 32768

_SPACE = b" \t\n\f\r"  # stripped around text; 0x0B (vertical tab) is deliberately not here
_PRINTABLE = re.compile(rb"[\x20-\x7e]*\Z")
_KEYWORD = re.compile(rb"[A-Z0-9]{2}\Z")

# Text keywords of each section, and keywords that belong to the other section.
_RO_TEXT = {b"PN", b"EC", b"MN", b"SN"}  # plus every Vx
_RW_ONLY_IN_RO = b"Y"  # any Yx in VPD-R is in the wrong section
_RO_ONLY_IN_RW = {b"PN", b"EC", b"MN", b"SN", b"CP"}


def text(raw: bytes) -> str | None:
    """libvirt's normalisation: cut at NUL, strip the space bytes, then printable ASCII or None."""
    cut = bytes(raw).split(b"\0", 1)[0].strip(_SPACE)
    if _PRINTABLE.match(cut) is None:
        return None
    return cut.decode("ascii")


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray):
        return bytes(data)
    if isinstance(data, memoryview):
        return data.tobytes()
    raise TypeError(f"VPD data must be bytes, bytearray or memoryview, not {type(data).__name__}")


class _Walk:
    """State of one parse: the data, what was found, and the running checksum."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.problems: list[tuple[int, int, str | None]] = []
        self.name: bytes | None = None
        self.ro: list[tuple[str, bytes]] = []
        self.rw: list[tuple[str, bytes]] = []
        self.verdicts: list[bool] = []  # one per RV of VPD-R
        self._sum = 0  # sum of data[:self._summed]
        self._summed = 0

    def problem(self, offset: int, code: int, detail: str | None = None) -> None:
        self.problems.append((offset, code, detail))

    def sum_through(self, offset: int) -> int:
        """8-bit sum of every byte from 0 through ``offset`` (offsets only grow)."""
        self._sum += sum(self.data[self._summed:offset + 1])
        self._summed = offset + 1
        return self._sum & 0xFF

    # -- resources ---------------------------------------------------------------------------------
    def resources(self) -> None:
        data, n = self.data, len(self.data)
        pos = 0
        saw_end = saw_vpd_r = False
        while pos < n:
            tag = data[pos]
            if tag & 0x80:  # large resource: tag, 16-bit little-endian length, data
                if n - pos < 3:
                    self.problem(pos, codes.RESOURCE_OVERRUN, f"0x{tag:02x}")
                    pos = n
                    break
                start = pos + 3
                end = start + int.from_bytes(data[pos + 1:pos + 3], "little")
            else:  # small resource: item in bits 6-3, length in bits 2-0
                if tag >> 3 == 0x0F:
                    saw_end = True
                    break
                start = pos + 1
                end = start + (tag & 0x07)
            if end > n:
                self.problem(pos, codes.RESOURCE_OVERRUN, f"0x{tag:02x}")
                end = n
            if tag == 0x82:
                self.name = data[start:end]
                if text(self.name) is None:
                    self.problem(pos, codes.BAD_NAME)
            elif tag == 0x90:
                saw_vpd_r = True
                self.fields(pos, start, end, read_only=True)
            elif tag == 0x91:
                self.fields(pos, start, end, read_only=False)
            else:
                size = "large" if tag & 0x80 else "small"
                item = tag & 0x7F if tag & 0x80 else (tag >> 3) & 0x0F
                self.problem(pos, codes.UNKNOWN_RESOURCE, f"0x{tag:02x} ({size} item 0x{item:02x})")
            pos = end
        if not saw_end:
            self.problem(pos, codes.NO_END_TAG)
        if not saw_vpd_r:
            self.problem(pos, codes.NO_VPD_R)

    # -- keyword fields ----------------------------------------------------------------------------
    def fields(self, tag_at: int, begin: int, limit: int, read_only: bool) -> None:
        data = self.data
        section = "VPD-R" if read_only else "VPD-W"
        out = self.ro if read_only else self.rw
        last_kw = b"RV" if read_only else b"RW"  # the field that must close this section
        last_at = None  # offset of a closing field not yet followed by another field
        closings = 0
        pos = begin
        while pos < limit:
            if limit - pos < 3:
                self.problem(pos, codes.STRAY_BYTES, section)
                return self._close(read_only, closings, tag_at)
            kw = data[pos:pos + 2]
            value_at = pos + 3
            value_end = value_at + data[pos + 2]
            fits = value_end <= limit
            if last_at is not None:
                self.problem(last_at, codes.RV_NOT_LAST if read_only else codes.RW_NOT_LAST,
                             last_kw.decode())
                last_at = None

            if kw == last_kw:
                closings += 1
                if read_only:
                    self.checksum_field(pos, value_at, value_end, limit)
                elif closings > 1:
                    self.problem(pos, codes.RW_REPEATED, "RW")
                if not fits:
                    self.problem(pos, codes.FIELD_OVERRUN, last_kw.decode())
                    break
                last_at = pos
                pos = value_end
                continue

            if _KEYWORD.match(kw) is None:
                self.problem(pos, codes.INVALID_KEYWORD, kw.hex())
                if not fits:
                    self.problem(pos, codes.FIELD_OVERRUN, None)
                    break
                pos = value_end
                continue

            name = kw.decode("ascii")
            if not fits:
                self.problem(pos, codes.FIELD_OVERRUN, name)
                break
            value = data[value_at:value_end]
            out.append((name, value))
            self.judge(pos, kw, name, value, read_only)
            pos = value_end
        self._close(read_only, closings, tag_at)

    def _close(self, read_only: bool, closings: int, tag_at: int) -> None:
        if read_only and not closings:
            self.problem(tag_at, codes.NO_RV)

    def checksum_field(self, pos: int, value_at: int, value_end: int, limit: int) -> None:
        """An RV field of VPD-R: its first byte makes the sum of bytes 0..itself zero."""
        if value_end == value_at:
            self.problem(pos, codes.RV_EMPTY, "RV")
            self.verdicts.append(False)
        elif value_at >= limit:
            self.verdicts.append(False)  # the checksum byte is not there
        elif self.sum_through(value_at):
            self.problem(value_at, codes.CHECKSUM_BAD, "RV")
            self.verdicts.append(False)
        else:
            self.verdicts.append(True)

    def judge(self, pos: int, kw: bytes, name: str, value: bytes, read_only: bool) -> None:
        """Problems of a stored field: misplaced RV/RW, wrong section, or text that is not text."""
        if read_only:
            if kw == b"RW":
                self.problem(pos, codes.RW_IN_VPD_R, name)
            elif kw[:1] == _RW_ONLY_IN_RO:
                self.problem(pos, codes.WRONG_SECTION, name)
            elif (kw in _RO_TEXT or kw[:1] == b"V") and text(value) is None:
                self.problem(pos, codes.NOT_TEXT, name)
        else:
            if kw == b"RV":
                self.problem(pos, codes.RV_IN_VPD_W, name)
            elif kw in _RO_ONLY_IN_RW:
                self.problem(pos, codes.WRONG_SECTION, name)
            elif kw[:1] == b"Y" and text(value) is None:
                self.problem(pos, codes.NOT_TEXT, name)

    def result(self) -> tuple:
        if not self.verdicts:
            checksum = -1
        else:
            checksum = 1 if all(self.verdicts) else 0
        self.problems.sort(key=lambda p: (p[0], p[1]))
        return (self.name, self.ro, self.rw, checksum, self.problems)


def parse(data: bytes | bytearray | memoryview) -> tuple:
    """Walk a VPD blob; see the module docstring for the result. Raises only TypeError."""
    raw = _as_bytes(data)[:MAX_SIZE]
    if not raw or raw[0] in (0x00, 0xFF):
        return (None, [], [], -1, [(0, codes.NO_VPD, None)])
    walk = _Walk(raw)
    walk.resources()
    return walk.result()


def parse_vpd(data: bytes | bytearray | memoryview, *, strict: bool = False) -> Vpd:
    """The reference for ``fastvpd.parse_vpd``: same Vpd, same strict-mode exception."""
    walked = parse(data)
    vpd = Vpd._from_fields(*walked)
    if strict:
        for index, (offset, code, _detail) in enumerate(walked[4]):
            if PROBLEMS[code][0]:
                raise VpdFormatError(vpd.problems[index], offset)
    return vpd
