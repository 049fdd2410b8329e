"""The committed seed corpus of fuzz/fuzz_vpd_atheris.py: what make_corpus.py writes, small, and
every seed passes the harness's checks (so under AddressSanitizer the suite replays it too)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus" / "vpd"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"_fuzz_{name}", ROOT / "fuzz" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corpus_is_what_make_corpus_writes_and_stays_small():
    committed = {p.name: p.read_bytes() for p in CORPUS.iterdir()}
    assert committed == _module("make_corpus").unique_seeds()
    assert 40 <= len(committed) < 100 and sum(map(len, committed.values())) < 200_000
    names = set(committed)
    assert {n.split("-")[0] for n in names} == {"real", "lspci", "sample", "edge"}
    assert max(map(len, committed.values())) > 32768  # one seed reaches past the cap


@pytest.fixture(scope="module")
def harness():
    h = _module("fuzz_vpd_atheris")
    h.fastvpd, h.walker, h.reference = h._load(instrument=False)
    return h


@pytest.mark.parametrize("seed", sorted(p.name for p in CORPUS.iterdir()))
def test_every_seed_passes_the_harness(harness, seed):
    harness.check((CORPUS / seed).read_bytes())


def test_the_harness_check_fails_on_a_wrong_parse(harness, monkeypatch):
    """The check compares with the reference: a parser that drops the serial is caught."""
    import fastvpd

    real = fastvpd.parse_vpd

    def lossy(data, *, strict=False):
        vpd = real(data, strict=strict)
        return fastvpd.Vpd(name=vpd.name, read_only={}, checksum_ok=vpd.checksum_ok,
                           problems=vpd.problems)

    monkeypatch.setattr(harness.fastvpd, "parse_vpd", lossy)
    with pytest.raises(AssertionError, match="differs from the reference"):
        harness.check((CORPUS / "sample-dpu.bin").read_bytes())
