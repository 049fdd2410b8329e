"""`Vpd.to_dict()`: the JSON form of a blob (``fastvpd vpd --json``, `PciDevice.to_dict`).

Raw values are hex (lossless, binary bytes included) next to their normalised text; problems are
objects with their byte offset, message and whether strict mode rejects the blob for them.
"""

from __future__ import annotations

import json

from hypothesis import given

import fastvpd
from fastvpd.samples import SAMPLES
from fastvpd.vpd import PROBLEMS, Vpd, text
from tests.strategies import any_blobs


def _check(vpd: Vpd) -> None:
    d = vpd.to_dict()
    assert list(d) == ["name", "serial_number", "read_only", "read_write", "checksum_ok",
                       "problems"]
    assert json.loads(json.dumps(d)) == d
    assert (d["name"], d["serial_number"], d["checksum_ok"]) == (
        vpd.name, vpd.serial_number, vpd.checksum_ok)
    for section, raw in (("read_only", vpd.read_only), ("read_write", vpd.read_write)):
        assert list(d[section]) == list(raw)  # blob order
        for kw, value in raw.items():
            assert d[section][kw] == {"raw_hex": value.hex(), "text": text(value)}
            assert bytes.fromhex(d[section][kw]["raw_hex"]) == value
    assert [f"offset {p['offset']}: {p['message']}" for p in d["problems"]] == list(vpd.problems)
    fatal = [p for p in d["problems"] if p["fatal"]]
    assert [f"offset {p['offset']}: {p['message']}" for p in fatal] == list(vpd.fatal_problems)
    assert [p["offset"] for p in d["problems"]] == [o for o, _, _ in vpd.raw_problems]
    assert all(p["fatal"] is PROBLEMS[c][0] for p, (_, c, _) in zip(d["problems"], vpd.raw_problems))


def test_samples() -> None:
    for blob in SAMPLES.values():
        _check(fastvpd.parse_vpd(blob))
    d = fastvpd.parse_vpd(SAMPLES["nic-with-vpd-w"]).to_dict()
    assert d["read_only"]["V0"] == {"raw_hex": b"FFV20.5.13\0".hex(), "text": "FFV20.5.13"}
    assert d["read_write"]["YA"] == {"raw_hex": b"RACK12-U07".hex(), "text": "RACK12-U07"}
    damaged = fastvpd.parse_vpd(SAMPLES["damaged"]).to_dict()["problems"]
    assert damaged == [{"offset": 112, "message": "checksum wrong", "fatal": True},
                       {"offset": 113, "message": "no end tag before the data ends", "fatal": True}]


def test_binary_and_non_fatal_problems() -> None:
    blob = fastvpd.build_vpd("Card", [("SN", "S1"), ("V1", b"\xff\x00")], [("SN", "wrong")])
    d = fastvpd.parse_vpd(blob).to_dict()
    assert d["read_only"]["V1"] == {"raw_hex": "ff00", "text": None}
    assert d["read_write"]["SN"] == {"raw_hex": b"wrong".hex(), "text": "wrong"}
    assert {"message": "keyword SN in the wrong section", "fatal": False}.items() <= \
        next(p for p in d["problems"] if "wrong section" in p["message"]).items()
    assert any(p["message"] == "field V1 is not printable ASCII" and p["fatal"] is False
               for p in d["problems"])


def test_a_vpd_built_by_hand_has_problems_without_offsets() -> None:
    vpd = Vpd(name="x", read_only={"SN": b"S1"}, problems=["made up"])
    assert vpd.to_dict()["problems"] == [{"offset": None, "message": "made up", "fatal": None}]


@given(any_blobs)
def test_any_blob(blob: bytes) -> None:
    _check(fastvpd.parse_vpd(blob))
