"""`lspci -vv` as an independent oracle for VPD blobs.

Blobs are written as the ``vpd`` files of fake PCI devices in a fake sysfs tree
(``<root>/bus/pci/devices/0000:BB:DD.0/{config,vpd}``), each config space announcing a VPD
capability (capabilities-list bit in the status register, pointer 0x34 = 0x40, ``03 00`` at 0x40),
and one run of ``lspci -b -A linux-sysfs -O sysfs.path=<root>/bus/pci -vv`` decodes them all.

How lspci (pciutils ``ls-vpd.c``, checked against Debian's pciutils 3.9.0) prints VPD, and what
this module makes of it:

- It walks resources from offset 0 and stops at the end tag ("End"), at a resource running past
  32768 bytes or past the file ("No end tag found"), and at the first unknown resource item
  ("Unknown ... resource type XX, will not decode more.").
- Product name and text fields go through ``print_vpd_string``: ``\\`` is printed as ``\\\\``,
  bytes below 0x20 and 0x7F as ``\\xNN``, every other byte (0x80-0xFF included) raw, and a NUL
  that is the *last* byte of the printed piece is dropped ("cards with null-terminated strings").
  The name is printed in pieces of 256 bytes, so a NUL ending any 256-byte piece is dropped.
  That trailing NUL is the one ambiguity: `visible` applies the same rule to a raw value.
- Binary fields (``CP`` and keywords lspci does not know) are printed as space-separated hex.
- ``RV`` (in either section) prints only "checksum good|bad, N byte(s) reserved" and ``RW`` only
  "N byte(s) free": their bytes are not shown. lspci's checksum is the sum of every byte *it read*
  up to the RV byte: it does not read RV reserved bytes, stray bytes, the rest of a resource after a
  bad field, and it reads the byte after an RV of length 0.
- The keyword is printed with ``print_vpd_string`` too; only ``[A-Z0-9]{2}`` keywords are kept.

Output is read as bytes and split on ``\\n`` only (raw bytes such as 0x85 are line breaks to
``str.splitlines``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

LSPCI = shutil.which("lspci") or next(
    (p for p in ("/usr/bin/lspci", "/usr/sbin/lspci", "/sbin/lspci") if os.access(p, os.X_OK)),
    None)

#: Long names lspci prints, and how it prints the value.
_TEXT_NAMES = {"Engineering changes", "Manufacture ID", "Part number", "Serial number",
               "Asset tag", "Vendor specific", "System specific", "CCIN", "Feature code", "FRU",
               "Network address", "Firmware version", "Product specific"}
_BINARY_NAMES = {"Extended capability", "Unknown"}
_TEXT_KEYWORDS = {"EC", "MN", "PN", "SN", "YA", "CC", "FC", "FN", "NA", "RM"}

_DEVICE = re.compile(rb"^([0-9a-f]{2}):([0-9a-f]{2})\.([0-7]) ")
_FIELD = re.compile(r"\t\t\t\[(?P<kw>.*?)\] (?P<name>[A-Za-z -]+?): (?P<value>.*)\Z", re.S)
_RESERVED = re.compile(r"checksum (good|bad), (-?\d+) byte\(s\) reserved\Z")
_FREE = re.compile(r"(\d+) byte\(s\) free\Z")
_HEX = re.compile(r"(?:[0-9a-f]{2}(?: [0-9a-f]{2})*)?\Z")
_KEYWORD = re.compile(r"[A-Z0-9]{2}\Z")


def available() -> bool:
    return LSPCI is not None


def is_text(keyword: str) -> bool:
    """Whether lspci prints this (valid) keyword's value as text rather than hex."""
    return keyword in _TEXT_KEYWORDS or keyword[0] in "VYZ"


def visible(raw: bytes, piece: int = 256) -> bytes:
    """What lspci shows of a text value: a NUL ending any ``piece``-byte piece is dropped."""
    out = bytearray()
    for i in range(0, len(raw), piece):
        chunk = raw[i:i + piece]
        out += chunk[:-1] if chunk.endswith(b"\0") else chunk
    return bytes(out)


def unescape(printed: str) -> bytes:
    """Invert print_vpd_string (``\\\\`` and ``\\xNN`` escapes; other bytes literal)."""
    out = bytearray()
    raw = printed.encode("latin-1")
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C:  # backslash
            if raw[i + 1:i + 2] == b"\\":
                out.append(0x5C)
                i += 2
                continue
            if raw[i + 1:i + 2] == b"x" and re.fullmatch(rb"[0-9a-f]{2}", raw[i + 2:i + 4]):
                out.append(int(raw[i + 2:i + 4], 16))
                i += 4
                continue
            raise ValueError(f"lone backslash in lspci output: {printed!r}")
        out.append(raw[i])
        i += 1
    return bytes(out)


@dataclass
class RvLine:
    section: str  # "R" (VPD-R) or "W" (VPD-W)
    good: bool
    reserved: int  # -1 for an RV of length 0


@dataclass
class LspciVpd:
    """What lspci printed for one device."""

    lines: list[str] = field(default_factory=list)
    names: list[bytes] = field(default_factory=list)
    read_only: list[tuple[str, bytes]] = field(default_factory=list)  # repeats included, no RV/RW
    read_write: list[tuple[str, bytes]] = field(default_factory=list)
    rv: list[RvLine] = field(default_factory=list)
    rw: list[tuple[str, int]] = field(default_factory=list)  # (section, free bytes)
    invalid_keywords: int = 0
    end: bool = False
    unknown_resource: bool = False

    def merged(self, section: str) -> list[tuple[str, bytes]]:
        """Last value wins, first position kept, like fastvpd's mappings."""
        out: dict[str, bytes] = {}
        for kw, value in self.read_only if section == "R" else self.read_write:
            out[kw] = value
        return list(out.items())


def _parse_device(lines: list[str]) -> LspciVpd:
    dev = LspciVpd(lines=lines)
    section = None
    in_vpd = False
    for line in lines:
        if line.startswith("\tCapabilities: ["):
            in_vpd = line.endswith("Vital Product Data")
            continue
        if not in_vpd:
            continue
        if line.startswith("\t\tProduct Name: "):
            dev.names.append(unescape(line[len("\t\tProduct Name: "):]))
            section = None
        elif line in ("\t\tRead-only fields:", "\t\tRead/write fields:"):
            section = "R" if "Read-only" in line else "W"
        elif line == "\t\tEnd":
            dev.end = True
        elif line.startswith("\t\tUnknown "):
            dev.unknown_resource = True
        elif line.startswith("\t\t\t["):
            m = _FIELD.match(line)
            if m is None or section is None:
                raise ValueError(f"unexpected lspci line: {line!r}")
            kw = unescape(m["kw"]).decode("latin-1")
            name, value = m["name"], m["value"]
            if not _KEYWORD.match(kw):
                dev.invalid_keywords += 1
                continue
            if kw == "RV":
                r = _RESERVED.match(value)
                if r is None:
                    raise ValueError(f"unexpected RV line: {line!r}")
                dev.rv.append(RvLine(section, r[1] == "good", int(r[2])))
            elif kw == "RW":
                r = _FREE.match(value)
                if r is None:
                    raise ValueError(f"unexpected RW line: {line!r}")
                dev.rw.append((section, int(r[1])))
            elif name in _TEXT_NAMES:
                assert is_text(kw), (kw, name)
                (dev.read_only if section == "R" else dev.read_write).append((kw, unescape(value)))
            elif name in _BINARY_NAMES:
                assert not is_text(kw) and _HEX.match(value), line
                raw = bytes.fromhex(value)
                (dev.read_only if section == "R" else dev.read_write).append((kw, raw))
            else:
                raise ValueError(f"unknown lspci field name: {line!r}")
        elif line.startswith("\t\t") and line.strip() in ("No end tag found", "Not readable"):
            pass
        elif line.startswith("\t\t"):
            raise ValueError(f"unexpected lspci VPD line: {line!r}")
        else:
            in_vpd = False
    return dev


def write_tree(root: Path, blobs: Sequence[bytes]) -> list[str]:
    """Fake sysfs devices, one per blob, at 0000:BB:DD.0; returns their short addresses."""
    config = bytearray(256)
    config[0:4] = bytes.fromhex("b3 15 d6 a2")  # vendor 15b3, device a2d6
    config[6] = 0x10  # status: capabilities list
    config[0x34] = 0x40
    config[0x40:0x42] = b"\x03\x00"  # VPD capability, last in the list
    addresses = []
    devices = root / "bus" / "pci" / "devices"
    for i, blob in enumerate(blobs):
        short = f"{i // 32:02x}:{i % 32:02x}.0"
        d = devices / f"0000:{short}"
        d.mkdir(parents=True)
        (d / "config").write_bytes(config)
        (d / "vpd").write_bytes(blob)
        addresses.append(short)
    return addresses


def _lspci(root: Path) -> bytes:
    if LSPCI is None:
        raise RuntimeError("lspci not found: install pciutils")
    return subprocess.run(
        [LSPCI, "-b", "-A", "linux-sysfs", "-O", f"sysfs.path={root}/bus/pci", "-vv"],
        check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "LC_ALL": "C"}).stdout


def lspci_vv(blob: bytes) -> str:
    """lspci's whole ``-vv`` output for one fake device whose VPD is ``blob``.

    Bytes are decoded as latin-1 (one character per byte: lspci prints bytes >= 0x80 raw).
    Under pytest, skips the calling test when lspci is missing.
    """
    if LSPCI is None:
        import pytest

        pytest.skip("lspci not found: install pciutils (Debian package pciutils)")
    with tempfile.TemporaryDirectory(prefix="fastvpd-lspci-") as root:
        write_tree(Path(root), [blob])
        return _lspci(Path(root)).decode("latin-1")


def run(blobs: Sequence[bytes], root: Path) -> list[LspciVpd]:
    """Decode ``blobs`` with one lspci run over a fake sysfs tree under ``root`` (must be empty)."""
    if len(blobs) > 256 * 32:
        raise ValueError("too many blobs for one bus range")
    addresses = write_tree(root, blobs)
    out = _lspci(root)
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.split(b"\n"):
        m = _DEVICE.match(line)
        if m:
            current = blocks.setdefault(line[:7].decode(), [])
        elif current is not None:
            current.append(line.decode("latin-1"))
    missing = [a for a in addresses if a not in blocks]
    if missing:
        raise RuntimeError(f"lspci did not list {missing[:5]}")
    return [_parse_device(blocks[a]) for a in addresses]
