"""Helpers the test modules share."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator


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


@contextlib.contextmanager
def gil_spinner() -> Iterator[Callable[[], int]]:
    """A thread that counts while it has the GIL; yields a function that reads the count.

    The switch interval is set to 0.5 s, so while the main thread holds the GIL the spinner waits:
    it counts during a call only if that call released the GIL.
    """
    count = 0
    stop = False

    def spin() -> None:
        nonlocal count
        while not stop:
            count += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    t = threading.Thread(target=spin, daemon=True)
    t.start()
    try:
        while count == 0:  # the spinner has started
            time.sleep(0.001)
        yield lambda: count
    finally:
        stop = True
        t.join()
        sys.setswitchinterval(old)
