#!/usr/bin/env python3
"""Write the seed corpus of fuzz_vpd_atheris.py into fuzz/corpus/vpd/ (committed; rerun after a
change here and commit the result): ``python fuzz/make_corpus.py [DIR]``.

Seeds: the real VPD images of tests/data/vpd; blobs rebuilt from the real ``lspci -vv`` captures
of tests/data/lspci (the layouts real cards carry); fastvpd's samples; and `build_vpd` /
tests/strategies.py `assemble` blobs with one oddity each, so the fuzzer starts next to every
problem the parser knows (spec/vpd.md) and at the 32 KiB cap. Deterministic: the same files
every run. Small on purpose (< 100 files, < 200 KB): libFuzzer grows it while it runs.
"""

from __future__ import annotations

import hashlib
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastvpd import build_vpd  # noqa: E402
from fastvpd.samples import SAMPLES  # noqa: E402
from tests.strategies import Field, Resource, assemble  # noqa: E402
from tests.test_realdata_lspci import load_capture, rebuild  # noqa: E402

OUT = ROOT / "fuzz" / "corpus" / "vpd"


def _name_only(name: bytes) -> bytes:
    return bytes((0x82,)) + len(name).to_bytes(2, "little") + name


def edge_cases() -> dict[str, bytes]:
    sn = [("PN", "MBF2H532C-AECOT"), ("SN", "MT2113X00001")]
    good = build_vpd("Card", sn)
    rv = good.index(b"RV")
    out = {
        "empty": b"",
        "zero": b"\x00",
        "unprogrammed": b"\xff" * 16,
        "end-tag-only": b"\x78",
        "minimal": build_vpd(None, [("SN", "1")]),
        "name-only": _name_only(b"Only a name") + b"\x78",
        "vpd-w": build_vpd("RW card", sn, [("V1", "x"), ("YA", "RACK-1"), ("Y0", "sys")]),
        "no-end-tag": good[:-1],
        "truncated-header": good[:2],
        "truncated-field": good[:rv - 4],
        "bad-checksum": good[:rv + 3] + bytes(((good[rv + 3] + 1) & 0xFF,)) + good[rv + 4:],
        "rv-empty": assemble([Resource(0x82, payload=b"X"),
                              Resource(0x90, fields=[Field(b"SN", b"S1"), Field(b"RV", b"")])]),
        "rv-not-last": assemble([Resource(0x90, fields=[Field(b"RV", b"\0", fix=True),
                                                        Field(b"SN", b"S1")])]),
        "stray-bytes": assemble([Resource(0x90, fields=[Field(b"SN", b"S1"),
                                                        Field(b"RV", b"\0", fix=True)],
                                          stray=b"\x01\x02")]),
        "rw-in-vpd-r": assemble([Resource(0x90, fields=[Field(b"RW", b"\0\0"),
                                                        Field(b"RV", b"\0", fix=True)])]),
        "rw-repeated": assemble([Resource(0x90, fields=[Field(b"RV", b"\0", fix=True)]),
                                 Resource(0x91, fields=[Field(b"RW", bytes(4)), Field(b"RW", bytes(4))])]),
        "unknown-resources": assemble([Resource(0xA5, payload=b"abc"), Resource(0x20, payload=b"x"),
                                       Resource(0x90, fields=[Field(b"SN", b"S1"),
                                                              Field(b"RV", b"\0", fix=True)])]),
        "invalid-keyword": assemble([Resource(0x90, fields=[Field(b"s\x00", b"x"), Field(b"SN", b"S"),
                                                            Field(b"RV", b"\0", fix=True)])]),
        "wrong-section": assemble([Resource(0x90, fields=[Field(b"YA", b"tag"),
                                                          Field(b"RV", b"\0", fix=True)]),
                                   Resource(0x91, fields=[Field(b"SN", b"S1"), Field(b"RW", b"")])]),
        "not-text": assemble([Resource(0x82, payload=b"N\x01ame"),
                              Resource(0x90, fields=[Field(b"SN", b" S\xe91\x00tail"),
                                                     Field(b"RV", b"\0", fix=True)])]),
        "lying-lengths": assemble([Resource(0x90, fields=[Field(b"SN", b"S1", length=200)],
                                            length=0x7F)]),
        "two-vpd-r": assemble([Resource(0x90, fields=[Field(b"SN", b"A"), Field(b"RV", b"\0", fix=True)]),
                               Resource(0x90, fields=[Field(b"SN", b"B"), Field(b"RV", b"\0", fix=True)])]),
        "after-end-tag": good + b"\x90\x05\x00junk",
        # a vendor layout that repeats RW every 256 bytes (libvirt rejects it whole)
        "rw-every-256": build_vpd("Repeat", sn)[:-1] + b"".join(
            b"\x91\xfd\x00RW\xfa" + bytes(250) for _ in range(3)) + b"\x78",
        # around the 32768-byte cap: SN ends right at the cap, then the rest is cut
        "at-the-cap": assemble([Resource(0xA2, payload=bytes(32768 - 17)),
                                Resource(0x90, fields=[Field(b"SN", b"SERIAL-1"),
                                                       Field(b"RV", b"\0", fix=True)])]),
    }
    return out


def seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for path in sorted((ROOT / "tests" / "data" / "vpd").glob("*.bin")):
        out[f"real-{path.stem}"] = path.read_bytes()
    for path in sorted((ROOT / "tests" / "data" / "lspci").glob("*.txt")):
        out[f"lspci-{path.stem}"] = rebuild(load_capture(path))
    for name, blob in SAMPLES.items():
        out[f"sample-{name}"] = blob
    for name, blob in edge_cases().items():
        out[f"edge-{name}"] = blob
    return out


def unique_seeds() -> dict[str, bytes]:
    """`seeds` without repeated blobs (two captures of one card), file name -> bytes."""
    out: dict[str, bytes] = {}
    digests: set[str] = set()
    for name, blob in seeds().items():
        digest = hashlib.sha1(blob).hexdigest()
        if digest not in digests:
            digests.add(digest)
            out[f"{name}.bin"] = blob
    return out


def main(argv: list[str]) -> int:
    out = pathlib.Path(argv[1]) if len(argv) > 1 else OUT
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = unique_seeds()
    for name, blob in files.items():
        (out / name).write_bytes(blob)
    print(f"{len(files)} seeds, {sum(map(len, files.values()))} bytes in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
