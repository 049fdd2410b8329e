"""Benchmarks import the reference implementations that live with the tests; the floor
(benchmarks/floor) is compiled once per session for the suites that set fastvpd against it."""

import os
import pathlib
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))


@pytest.fixture(scope="session")
def floor():
    from benchmarks.floor import Floor

    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("the floor needs a C compiler (cc)")
    with tempfile.TemporaryDirectory(prefix="fastvpd-floor-") as work:
        yield Floor(work)
