"""The Cython VPD parser against the pure-Python reference parser, side by side.

Each case reads what a compute agent needs: parse the blob and take its serial number.
Run: python benchmarks/report.py  (writes benchmarks/RESULTS.md)
"""

from __future__ import annotations

import random

import pytest

import fastvpd
from fastvpd.samples import SAMPLES, dpu_vpd
from tests.reference import vpd as reference


def _worst_case() -> bytes:
    """A 32 KiB blob with the most fields that fit: thousands of short vendor fields."""
    keywords = [f"V{c}" for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    fields = [(keywords[i % len(keywords)], b"x" * (i % 7)) for i in range(5400)]
    blob = fastvpd.build_vpd("worst case", fields)
    assert 30000 < len(blob) <= fastvpd.vpd.MAX_VPD_SIZE
    return blob


def _batch(n: int = 10_000) -> list[bytes]:
    rng = random.Random(1)
    blobs = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            blobs.append(dpu_vpd(f"MT2113X{i:05d}"))
        elif kind == 1:
            blobs.append(SAMPLES["nic-with-vpd-w"])
        elif kind == 2:
            blob = bytearray(SAMPLES["dpu"])
            blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
            blobs.append(bytes(blob))
        else:
            blobs.append(SAMPLES["damaged"][: rng.randrange(1, len(SAMPLES["damaged"]))])
    return blobs


TYPICAL = SAMPLES["dpu"]
WORST = _worst_case()
BATCH = _batch()

PARSERS = {"fastvpd": fastvpd.parse_vpd, "reference": reference.parse_vpd}


# Warmed up, and rounds of at least 20 us: a parse takes well under 1 us, and with the defaults
# (5 us, no warm-up) a cold first call makes pytest-benchmark time one call per round, so that
# the timer's own overhead (about 0.2-0.5 us here) would count as parsing.
@pytest.mark.benchmark(warmup=True, min_time=20e-6)
@pytest.mark.parametrize("parser", PARSERS)
def test_typical_dpu(benchmark, parser):
    if parser == "fastvpd":  # the same results, checked in the benchmark run itself
        for blob in (TYPICAL, WORST, *BATCH[:400]):
            assert fastvpd.parse_vpd(blob) == reference.parse_vpd(blob)
    benchmark.group = f"vpd typical ({len(TYPICAL)} B)"
    parse = PARSERS[parser]
    assert benchmark(lambda: parse(TYPICAL).serial_number) == "MT2113X00042"


@pytest.mark.parametrize("parser", PARSERS)
def test_worst_case_32k(benchmark, parser):
    benchmark.group = f"vpd worst case ({len(WORST)} B)"
    parse = PARSERS[parser]
    assert benchmark(lambda: parse(WORST).serial_number) is None


@pytest.mark.parametrize("parser", PARSERS)
def test_batch_10k(benchmark, parser):
    benchmark.group = f"vpd batch ({len(BATCH)} mixed blobs)"
    parse = PARSERS[parser]
    serials = benchmark.pedantic(lambda: [parse(b).serial_number for b in BATCH], rounds=5)
    assert len(serials) == len(BATCH)
