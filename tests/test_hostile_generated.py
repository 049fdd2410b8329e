"""Generated hostile trees (tests/hostile.py): a sound host, 1 to 4 mutations, one scan.

Whatever was broken, the scan completes and raises nothing, and every function the mutations did
not touch is exact. fuzz/fuzz_scan.py runs the same property for as long as it is given.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastvpd import testing
from tests import hostile
from tests.support import scratch_dir


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=hostile.host_specs, data=st.data())
def test_scan_of_a_mutated_host_keeps_every_untouched_function_exact(spec, data) -> None:
    with scratch_dir("generated") as d:
        host = testing.build_host(os.path.join(d, "sys"), spec)
        expected = host.expected()
        touched: set[str] = set()
        for mutation in data.draw(hostile.mutations(host), label="mutations"):
            touched |= hostile.apply(host, mutation)
        hostile.check(host, touched, expected)
