"""Helpers the test modules share."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator


def fast_temp_base() -> str | None:
    """/dev/shm when it is usable: creating thousands of files on a disk /tmp is slow."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return None


@contextlib.contextmanager
def scratch_dir(tag: str = "scan") -> Iterator[str]:
    """A fresh directory on /dev/shm (else the default temp dir), removed afterwards."""
    d = tempfile.mkdtemp(prefix=f"fastvpd-test-{tag}-", dir=fast_temp_base())
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
