#!/usr/bin/env python3
"""Long differential fuzz run: fastvpd.parse_vpd (Cython) against the pure-Python reference.

Not part of the test suite; run it by hand (see fuzz/README.md):

    python fuzz/fuzz_vpd.py --examples 200000
    python fuzz/fuzz_vpd.py --minutes 10 --lspci

Each round draws blobs from the strategies in tests/strategies.py (valid, assembled, damaged,
random, around the 32 KiB cap) and checks that both parsers give the same walk, the same `Vpd` and
the same strict-mode exception. With ``--lspci`` a round also checks batches against lspci.
A failure is shrunk by hypothesis and printed with a reproducer; it is saved in the example
database (``.hypothesis/`` or ``--database``) so that a rerun tries it first.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

from tests import strategies as s  # noqa: E402
from tests.test_vpd_oracles import _run_lspci, same_as_reference  # noqa: E402

BLOBS = st.one_of(s.valid_blobs, s.structured_blobs(), s.mutated(s.valid_blobs),
                  s.mutated(s.structured_blobs()), s.mutated(s.mutated(s.structured_blobs())),
                  s.random_blobs, st.binary(max_size=2048), s.capped_blobs())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=50_000, help="examples per round")
    ap.add_argument("--minutes", type=float, default=0,
                    help="keep running rounds until this much time has passed")
    ap.add_argument("--lspci", action="store_true", help="also compare batches with lspci")
    ap.add_argument("--database", default=str(ROOT / ".hypothesis" / "fuzz"),
                    help="hypothesis example database directory")
    args = ap.parse_args(argv)

    config = settings(max_examples=args.examples, deadline=None, derandomize=False,
                      database=DirectoryBasedExampleDatabase(args.database),
                      suppress_health_check=list(HealthCheck),
                      phases=[Phase.reuse, Phase.generate, Phase.shrink], report_multiple_bugs=True)

    @config
    @given(BLOBS)
    def against_reference(blob: bytes) -> None:
        same_as_reference(blob)

    @settings(config, max_examples=max(1, args.examples // 200))
    @given(st.lists(BLOBS.filter(lambda b: len(b) <= 32768), min_size=50, max_size=200))
    def against_lspci(blobs: list[bytes]) -> None:
        _run_lspci(blobs)

    deadline = time.monotonic() + args.minutes * 60
    rounds = 0
    while True:
        started = time.monotonic()
        against_reference()
        if args.lspci:
            against_lspci()
        rounds += 1
        print(f"round {rounds}: {args.examples} examples in {time.monotonic() - started:.1f} s, "
              "no difference", flush=True)
        if time.monotonic() >= deadline:
            return 0


if __name__ == "__main__":
    sys.exit(main())
