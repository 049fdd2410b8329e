#!/usr/bin/env python3
"""Long run of the hostile sysfs generator (tests/hostile.py) against fastvpd.scan.

Not part of the test suite; run it by hand or from CI with a time box (see fuzz/README.md):

    python fuzz/fuzz_scan.py --minutes 10
    python fuzz/fuzz_scan.py --seconds 60          # what .ci/run does

Each example builds a sound synthetic host on /dev/shm (else the temp dir), breaks it with 1 to
4 drawn mutations (links, types, contents, names) and scans it: the scan must complete, raise
nothing, leak no fd, and report every function the mutations did not touch exactly. A failure is
shrunk by hypothesis and printed with its host and mutations; it is kept in the example database
(``.hypothesis/fuzz-scan`` or ``--database``) so that the next run replays it first.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

from fastvpd import testing  # noqa: E402
from tests import hostile  # noqa: E402
from tests.support import scratch_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=2000, help="examples per round")
    ap.add_argument("--minutes", type=float, default=0, help="keep running rounds this long")
    ap.add_argument("--seconds", type=float, default=0, help="the same, in seconds")
    ap.add_argument("--database", default=str(ROOT / ".hypothesis" / "fuzz-scan"),
                    help="hypothesis example database directory")
    args = ap.parse_args(argv)
    budget = args.minutes * 60 + args.seconds
    deadline = time.monotonic() + budget

    config = settings(max_examples=args.examples, deadline=None,
                      database=DirectoryBasedExampleDatabase(args.database),
                      suppress_health_check=list(HealthCheck),
                      phases=[Phase.reuse, Phase.generate, Phase.shrink])
    seen = {"examples": 0}

    @config
    @given(spec=hostile.host_specs, data=st.data())
    def scan_of_a_mutated_host(spec: testing.HostSpec, data: st.DataObject) -> None:
        seen["examples"] += 1
        with scratch_dir("fuzz-scan") as d:
            host = testing.build_host(os.path.join(d, "sys"), spec)
            expected = host.expected()
            touched: set[str] = set()
            for mutation in data.draw(hostile.mutations(host), label="mutations"):
                touched |= hostile.apply(host, mutation)
            hostile.check(host, touched, expected)

    rounds = 0
    started = time.monotonic()
    while True:
        t0 = time.monotonic()
        scan_of_a_mutated_host()
        rounds += 1
        print(f"round {rounds}: {args.examples} examples in {time.monotonic() - t0:.1f} s, "
              "every untouched function exact", flush=True)
        if time.monotonic() >= deadline:
            break
    print(f"fuzz_scan: {seen['examples']} hostile trees in {time.monotonic() - started:.0f} s, "
          "no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
