"""Background VPD reads for the `Scanner`: bounded, one per device identity, never waited on
past a deadline.

A VPD read can take seconds on misbehaving firmware (docs/sysfs.md), so the Scanner never reads
VPD on the calling thread: it submits reads here and waits for them only until its deadline. At
most one read per identity is outstanding, and at most ``workers`` in total: a read that never
returns ties up one worker thread, never more, and the others carry on. Workers are daemon
threads started on demand, so a read stuck in the kernel cannot keep the process from exiting.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

__all__ = ["Outcome", "Reads"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one read gave: the bytes, or the exception it raised."""

    data: bytes | None
    error: BaseException | None
    seconds: float


class Reads:
    """A pool of reader threads: ``submit(key, path)``, then ``outcome(key)`` once it is done."""

    def __init__(self, reader: Callable[[str], bytes], workers: int) -> None:
        self._reader = reader
        self._workers = workers
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[Hashable, str]] = collections.deque()
        self._pending: set[Hashable] = set()  # queued or being read
        self._running: set[Hashable] = set()  # being read (a subset of _pending)
        self._done: dict[Hashable, Outcome] = {}
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def submit(self, key: Hashable, path: str) -> None:
        """Read ``path`` for ``key`` unless a read for it is pending or done."""
        with self._cond:
            if self._closed or key in self._pending or key in self._done:
                return
            self._pending.add(key)
            self._queue.append((key, path))
            if self._idle == 0 and len(self._threads) < self._workers:
                t = threading.Thread(target=self._run, name=f"fastvpd-vpd-{len(self._threads)}",
                                     daemon=True)
                self._threads.append(t)
                t.start()
            else:
                self._cond.notify()

    def wait(self, keys: Iterable[Hashable], deadline: float) -> None:
        """Block until every key is done, or until ``time.monotonic()`` reaches ``deadline``."""
        keys = set(keys)
        with self._cond:
            while keys & self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def outcome(self, key: Hashable) -> Outcome | None:
        """The finished read for ``key``, None while it is pending (or was never submitted)."""
        with self._cond:
            return self._done.get(key)

    def pending(self, key: Hashable) -> bool:
        with self._cond:
            return key in self._pending

    def keep(self, keys: Iterable[Hashable]) -> None:
        """Forget finished reads of every other key (devices that are gone): memory stays bounded
        by the devices present."""
        keep = set(keys)
        with self._cond:
            for key in [k for k in self._done if k not in keep]:
                del self._done[key]
            self._queue = collections.deque(item for item in self._queue if item[0] in keep)
            # a read in progress stays pending: its device gets no second read meanwhile
            self._pending = {k for k in self._pending if k in keep or k in self._running}

    def close(self, timeout: float = 1.0) -> list[threading.Thread]:
        """Stop the workers; returns the threads still stuck in a read after ``timeout``."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        return [t for t in self._threads if t.is_alive()]

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                if self._closed:
                    return
                key, path = self._queue.popleft()
                self._running.add(key)
            start = time.monotonic()
            try:
                outcome = Outcome(self._reader(path), None, time.monotonic() - start)
            except BaseException as e:  # noqa: BLE001 - the read's failure is its outcome
                outcome = Outcome(None, e, time.monotonic() - start)
            with self._cond:
                self._running.discard(key)
                if key in self._pending:
                    self._pending.discard(key)
                    self._done[key] = outcome
                self._cond.notify_all()
