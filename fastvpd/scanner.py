"""`scan()`, one bulk walk of a sysfs tree into an `Inventory`; and the periodic `Scanner`.

A compute agent asks for the host's devices every minute, for months. `Scanner.refresh` keeps
the previous result and makes a rescan cheap enough that caching forever is pointless: a few
probes per PF tell whether anything changed, VPD is read once per device identity in the
background with a deadline, and concurrent callers share walks (docs/scanner.md).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import _background, _walk
from .errors import FastVpdError
from .model import Inventory, PciAddress, problem_text

__all__ = ["scan", "Scanner", "ScanResult", "read_vpd_file"]


def scan(sysfs: _walk.Root = "/sys", *, read_vpd: bool = True, vf_vpd: bool = False,
         strict_vpd: bool = False) -> Inventory:
    """Scan every PCI function under ``sysfs`` in one pass of the C walker (GIL released).

    VPD is read from PFs and plain functions when ``read_vpd`` (it is slow hardware and needs
    root), from VFs too only with ``vf_vpd``; a VF without its own serial reports its PF's.
    VPD is parsed tolerantly: a card with a bad checksum still reports its serial. With
    ``strict_vpd`` a blob that ``parse_vpd(strict=True)`` rejects counts as absent, as in libvirt
    and so in Nova (its problems stay on the device); ``vf_vpd=True, strict_vpd=True`` gives
    exactly Nova's device dicts (docs/nova-contract.md).
    A function that vanished during the walk, or whose entry is a dangling link, is left out and
    named in ``Inventory.problems``; one with unreadable attributes is kept with ``problems``.
    VFs are computed from their PF's SR-IOV layout and only the first is read (docs/sysfs.md): the
    driver and netdevs of the others are read in one bulk call when first asked for, and a VF
    found gone then carries a problem saying so.
    ``sysfs`` is a ``str``, ``bytes`` or path-like; the inventory's paths are ``str`` either way
    (`os.fsdecode`). Raises `SysfsError` only when ``sysfs`` is not a usable sysfs tree, ValueError
    when it holds a NUL byte (which would cut the path short), TypeError when it is no path.
    """
    root = _root(sysfs)
    return _inventory(_walk.walk(root, read_vpd=read_vpd, vf_vpd=vf_vpd, entries=False), root,
                      strict_vpd=strict_vpd)


def _root(sysfs: _walk.Root) -> str:
    return _walk.root_path(sysfs)


def _inventory(walk: _walk.Walk, root: str, *, strict_vpd: bool,
               vpd: dict[int, tuple[bytes | None, list[str]]] | None = None) -> Inventory:
    """The inventory of a walk; ``vpd`` (row -> raw VPD, problem texts) stands in for the VPD
    the walk did not read (the Scanner reads it in the background). Each device's problems are
    in the order of the attributes they concern, however they were found."""
    addresses: Sequence[str] = walk.addresses
    columns, extras = walk.columns, walk.extras
    if vpd:
        extras = dict(extras)
        for row, (data, _) in vpd.items():
            driver, netdevs, _old = extras.get(row, _walk.NO_EXTRA)
            extras[row] = (driver, netdevs, data)
    new_index: list[int] | None = None
    if walk.factless:
        addresses, columns, extras, new_index = _drop_factless(walk, extras)
    per_device: dict[int, list[tuple[int, str]]] = {}
    host: list[str] = []
    for index, attribute, message, path in walk.problems:
        text = problem_text(attribute, message, path)
        new = index if index < 0 or new_index is None else new_index[index]
        if new < 0:
            host.append(f"{walk.addresses[index]}: {text}" if index >= 0 else text)
        else:
            per_device.setdefault(new, []).append((_ORDER[attribute], text))
    for row, (_, texts) in (vpd or {}).items():
        new = row if new_index is None else new_index[row]
        if new >= 0 and texts:
            per_device.setdefault(new, []).extend((_ORDER["vpd"], t) for t in texts)
    problems = {i: tuple(t for _, t in sorted(p, key=_first)) for i, p in per_device.items()}
    return Inventory(addresses, columns, extras, problems, tuple(host), walk.counters, root,
                     details_loader=lambda wanted: _walk.details(root, wanted),
                     strict_vpd=strict_vpd)


_ORDER = {name: i for i, name in enumerate(_walk.ATTRIBUTES)}


def _first(item: tuple[int, str]) -> int:
    return item[0]


def _drop_factless(walk: _walk.Walk, extras: dict[int, _walk.Extra],
                   ) -> tuple[list[str], _walk.Columns, dict[int, _walk.Extra], list[int]]:
    """Leave out the rows that hold no facts; also returns old -> new index (-1: left out)."""
    gone = set(walk.factless)
    new_index: list[int] = []
    keep: list[int] = []
    for i in range(len(walk.addresses)):
        if i in gone:
            new_index.append(-1)
        else:
            new_index.append(len(keep))
            keep.append(i)
    columns = _walk.Columns._make([col[i] for i in keep] for col in walk.columns)
    columns = columns._replace(parent=[-1 if p < 0 else new_index[p] for p in columns.parent])
    extras = {new_index[i]: e for i, e in extras.items() if new_index[i] >= 0}
    return [walk.addresses[i] for i in keep], columns, extras, new_index


# -- the periodic Scanner ------------------------------------------------------------------------

log = logging.getLogger("fastvpd")


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One `Scanner.refresh`: the inventory, and what changed since the refresh before.

    ``added``, ``removed`` and ``changed`` are addresses in address order (the first refresh
    reports every device as added); ``changed`` means any difference in the device's `PciDevice`
    fields (see `Inventory.diff`). ``pending_vpd`` names the devices whose VPD read has not
    finished: their serial comes in a later refresh (reported as changed then). ``syscalls``
    counts what the refresh cost the kernel.
    """

    inventory: Inventory
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    pending_vpd: tuple[str, ...] = ()
    #: the system calls this refresh made (probes and walks; VPD reads are the readers')
    syscalls: int = 0


class _NotRegular(OSError):
    """The vpd path is not a regular file (``dtype`` as in a directory listing)."""

    def __init__(self, path: str, dtype: int) -> None:
        super().__init__(errno.EINVAL, "not a regular file", path)
        self.dtype = dtype


_S_TO_DT = {stat.S_IFIFO: 1, stat.S_IFCHR: 2, stat.S_IFDIR: 4, stat.S_IFBLK: 6,
            stat.S_IFLNK: 10, stat.S_IFSOCK: 12}


def read_vpd_file(path: str) -> bytes:
    """The default VPD reader of a `Scanner`: a regular file only (opened without blocking or
    following a link), at most one byte more than the largest VPD (32768 bytes), so that a
    larger file can be told. Raises OSError as the read fails."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _NotRegular(path, 10) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _NotRegular(path, _S_TO_DT.get(stat.S_IFMT(mode), 0))
        chunks, left = [], _walk.VPD_CAP + 1
        while left > 0:  # sysfs hands out binary attributes a page per read
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _vpd_result(outcome: Any, path: str) -> tuple[bytes | None, list[str]]:
    """(raw VPD, problem texts) of a finished read, as the walker would have reported them."""
    if outcome.error is None:
        data = outcome.data
        if not isinstance(data, (bytes, bytearray, memoryview)):
            return None, [problem_text("vpd", f"the VPD reader returned "
                                       f"{type(data).__name__}, not bytes", path)]
        data = bytes(data)
        if len(data) > _walk.VPD_CAP:
            return data[:_walk.VPD_CAP], [problem_text(
                "vpd", _walk.read_problem("too_long", _walk.VPD_CAP), path)]
        return data, []
    e = outcome.error
    if isinstance(e, _NotRegular):
        return None, [problem_text("vpd", _walk.read_problem("not_regular", e.dtype), path)]
    if isinstance(e, OSError) and e.errno == errno.ENOENT:
        return None, []  # no VPD capability, or the device went away: as the walker
    if isinstance(e, OSError) and e.errno is not None:
        return None, [problem_text("vpd", _walk.read_problem("unreadable", e.errno), path)]
    return None, [problem_text("vpd", f"unreadable: {type(e).__name__}: {e}", path)]


# The identity of a device: what tells a replaced card from the same one. The kernel creates the
# bus/pci/devices link of a device together with its directory and removes both with it, and
# kernfs numbers its nodes cyclically, so a re-created device has a new inode number there
# (docs/scanner.md).
_Identity = tuple[str, int, int, int]


@dataclass(slots=True)
class _State:
    walk: _walk.Walk
    baseline: _walk.Probe
    prober: _walk.Prober  # the PFs of the walk (address, VF count), their directories held
    reusable: list[str]  # the PFs and functions a later walk may copy (see _what_to_read)
    vpd_keys: dict[int, _Identity]  # row -> identity, for the rows whose VPD is wanted
    pending: frozenset[_Identity]
    result: ScanResult


class _Run:
    """One refresh in flight (or queued), shared by every caller it serves."""

    def __init__(self, hint: frozenset[str] | None) -> None:
        self.hint = hint
        self.done = False
        self.result: ScanResult | None = None
        self.error: BaseException | None = None

    def merge(self, hint: frozenset[str] | None) -> None:
        self.hint = None if hint is None or self.hint is None else self.hint | hint


def _hint(changed: Iterable[str | PciAddress] | None) -> frozenset[str] | None:
    if changed is None:
        return None
    if isinstance(changed, (str, bytes, PciAddress)):
        raise TypeError("changed is a set of addresses (or None), not one address")
    out = []
    for a in changed:
        if not isinstance(a, (str, PciAddress)):
            raise TypeError(f"changed holds {type(a).__name__}, not a PCI address")
        out.append(str(a))
    return frozenset(out)


class Scanner:
    """The periodic face of fastvpd: `refresh` as often as you like (docs/scanner.md).

    Each refresh reuses the previous result: a few probes per PF (its first and last ``virtfn``
    links, one past the last, its driver and netdev MACs), plus the ``bus/pci/devices`` and
    ``class/net`` listings unless ``changed`` says what happened, tell whether anything changed;
    only then is the tree walked again. VPD is read in the background, once per device
    identity, with at most ``max_vpd_reads`` reads at a time: a refresh waits for it only until
    ``vpd_deadline`` seconds have passed, and a read that takes longer leaves the device's VPD
    pending (`ScanResult.pending_vpd`) until a later refresh picks it up. ``vpd_reader`` (a
    callable ``path -> bytes``) replaces the default `read_vpd_file`; ``read_vpd``, ``vf_vpd``
    and ``strict_vpd`` mean what they mean for `scan`.

    Thread-safe: calls that arrive while a refresh runs share the next one (one walk for all of
    them); `refresh_async` runs it off the event loop. `close` (or a ``with`` block) stops the
    background readers.
    """

    def __init__(self, sysfs: _walk.Root = "/sys", *, vpd_deadline: float = 0.5,
                 vpd_reader: Callable[[str], bytes] | None = None, read_vpd: bool = True,
                 vf_vpd: bool = False, strict_vpd: bool = False, max_vpd_reads: int = 4) -> None:
        if not isinstance(vpd_deadline, (int, float)) or isinstance(vpd_deadline, bool) \
                or not vpd_deadline >= 0:
            raise ValueError(f"vpd_deadline must be a number of seconds >= 0, not {vpd_deadline!r}")
        if vpd_reader is not None and not callable(vpd_reader):
            raise TypeError("vpd_reader must be a callable path -> bytes")
        if not isinstance(max_vpd_reads, int) or max_vpd_reads < 1:
            raise ValueError(f"max_vpd_reads must be an int >= 1, not {max_vpd_reads!r}")
        self.sysfs = _root(sysfs)
        self.vpd_deadline = float(vpd_deadline)
        self.read_vpd, self.vf_vpd, self.strict_vpd = read_vpd, vf_vpd and read_vpd, strict_vpd
        self._reads = _background.Reads(vpd_reader or read_vpd_file, max_vpd_reads)
        self._cond = threading.Condition()
        self._running: _Run | None = None
        self._queued: _Run | None = None
        self._state: _State | None = None
        self._closed = False
        self._slow_logged: set[_Identity] = set()
        self._fallback_logged: set[str] = set()
        #: How many times the tree was walked (probes not counted): for tests and operators.
        self.walks = 0
        self._syscalls = 0

    # -- the public calls -------------------------------------------------------------------------
    def refresh(self, changed: Iterable[str | PciAddress] | None = None) -> ScanResult:
        """Bring the inventory up to date and say what changed since the last refresh.

        ``changed`` is what a udev monitor saw: None (unknown: check everything), an empty set
        (no PCI event since the last refresh: only the PFs are probed), or the addresses of the
        functions the events were about. A call made while another refresh runs waits for the
        next one, which serves every such call at once (with ``changed`` empty it takes the
        running one's result). Raises `SysfsError` when the root is no sysfs tree.
        """
        hint = _hint(changed)
        with self._cond:
            if self._closed:
                raise FastVpdError("the Scanner is closed")
            mine = self._running is None
            if mine:
                run = self._running = _Run(hint)
            elif hint == frozenset() and self._running is not None:
                run = self._running  # nothing happened: the refresh in flight answers
            else:
                run = self._queued = self._queued or _Run(frozenset())
                run.merge(hint)
                while not run.done and not (self._running is None and self._queued is run):
                    self._cond.wait()
                if not run.done:  # the first waiter runs it for all
                    self._queued, self._running, mine = None, run, True
            while not mine and not run.done:
                self._cond.wait()
        if mine:
            try:
                if self._closed:  # queued before close(), run after it
                    raise FastVpdError("the Scanner is closed")
                run.result = self._refresh(run.hint)
            except BaseException as e:
                run.error = e
            finally:
                with self._cond:
                    run.done = True
                    self._running = None
                    self._cond.notify_all()
        if run.error is not None:
            raise run.error
        assert run.result is not None
        return run.result

    async def refresh_async(self, changed: Iterable[str | PciAddress] | None = None) -> ScanResult:
        """`refresh` in a worker thread: the event loop keeps running while the tree is walked
        (the C walk releases the GIL) and VPD reads are awaited."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.refresh, changed)

    @property
    def last(self) -> ScanResult | None:
        """The result of the last refresh, None before the first."""
        state = self._state
        return None if state is None else state.result

    def close(self) -> None:
        """Stop the background VPD readers and close the directories the probes hold
        (idempotent); a refresh in flight finishes first (within its VPD deadline). A reader
        stuck in the kernel cannot be stopped; it is a daemon thread and ends with the process
        (logged)."""
        with self._cond:
            self._closed = True
            while self._running is not None:
                self._cond.wait()
            state = self._state
        if state is not None:
            state.prober.close()
        stuck = self._reads.close()
        if stuck:
            log.warning("fastvpd: %d VPD read(s) still blocked at close", len(stuck))

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Scanner sysfs={self.sysfs!r} walks={self.walks}>"

    # -- one refresh ------------------------------------------------------------------------------
    def _refresh(self, hint: frozenset[str] | None) -> ScanResult:
        start = time.monotonic()
        state = self._state
        self._syscalls = 0
        if state is None:
            return self._rebuild_walked(None, self._walk_tree(), start)
        probe = None if hint else self._probe(state.prober, listing=hint is None)
        if probe is not None and _walk.same(probe, state.baseline):
            if not any(self._reads.outcome(k) is not None for k in state.pending):
                return ScanResult(state.result.inventory, pending_vpd=state.result.pending_vpd,
                                  syscalls=self._syscalls)
            return self._rebuild(state, state.walk, state.baseline, state.prober, start)
        walked = self._walk_tree(*self._what_to_read(state, hint, probe))
        return self._rebuild_walked(state, walked, start)

    def _rebuild_walked(self, state: _State | None,
                        walked: tuple[_walk.Walk, _walk.Probe, _walk.Prober],
                        start: float) -> ScanResult:
        try:
            return self._rebuild(state, *walked, start)
        except BaseException:
            walked[2].close()
            raise

    def _probe(self, prober: _walk.Prober, *, listing: bool) -> _walk.Probe:
        counters: dict[str, int] = {}
        probe = prober.probe(listing=listing, counters=counters)
        self._syscalls += counters["total"]
        return probe

    def _what_to_read(self, state: _State, hint: frozenset[str] | None,
                      probe: _walk.Probe | None,
                      ) -> tuple[tuple[list[str], list[int]] | None, list[str]]:
        """(the listing to walk with, None to read it; the PFs and functions not to read).

        Re-read: the PFs whose probe changed, the functions ``hint`` names (and a named VF's
        PF), PFs whose VFs had to be read link by link; the walk itself reads whatever is new
        in the listing or has another inode number. The listing is the probe's when it read one,
        the last one and the named addresses when ``hint`` names some, and read anew when a PF
        changed while no PCI event was claimed (its VFs may be new)."""
        prev = state.walk
        dirty = set(hint or ())
        if hint:
            c = prev.columns
            rows = (prev.addresses.find(a) for a in hint)
            dirty.update(prev.addresses[c.parent[i]] for i in rows
                         if i is not None and c.parent[i] >= 0)
        if probe is not None:
            now, before = _walk.pf_probes(probe), _walk.pf_probes(state.baseline)
            dirty.update(a for (a, _), x, y in zip(state.prober.pfs, now, before) if x != y)
        reuse = [a for a in state.reusable if a not in dirty]
        listing: tuple[list[str], list[int]] | None = None
        if probe is not None and probe.listing is not None:
            listing = _walk.listing_of(probe.listing)
        elif hint:
            names, inodes = _walk.listing_of(prev.listing)
            new = sorted(hint - set(names))
            # a named entry's inode number is looked up again: the device may be a new one
            inodes = [0 if a in hint else ino for a, ino in zip(names, inodes)]
            listing = (names + new, inodes + [0] * len(new))
        return listing, reuse

    def _walk_tree(self, listing: tuple[list[str], list[int]] | None = None,
                   reuse: list[str] | None = None,
                   ) -> tuple[_walk.Walk, _walk.Probe, _walk.Prober]:
        """A walk (reading only what ``reuse`` does not vouch for), the baseline that agrees
        with it and the prober of its PFs: a PF that changed during the walk makes it walk
        again, reading everything."""
        state = self._state
        for attempt in range(3):
            known = (state.walk, reuse) if state is not None and reuse and attempt == 0 else None
            walk = _walk.walk(self.sysfs, read_vpd=False, listing=listing if attempt == 0 else None,
                              reuse=known)
            self.walks += 1
            self._syscalls += walk.counters["total"]
            prober = _walk.Prober(self.sysfs, _pf_rows(walk))
            try:
                after = self._probe(prober, listing=False)
            except BaseException:
                prober.close()
                raise
            if _walk.agrees(walk, after) or attempt == 2:
                return walk, _walk.baseline(walk, after), prober
            prober.close()
            log.debug("fastvpd: %s changed during the walk; walking again", self.sysfs)
        raise AssertionError("unreachable")

    def _rebuild(self, state: _State | None, walk: _walk.Walk, baseline: _walk.Probe,
                 prober: _walk.Prober, start: float) -> ScanResult:
        keys = self._vpd_keys(walk) if self.read_vpd else {}
        base = os.path.join(self.sysfs, "bus", "pci", "devices")
        for row, key in keys.items():
            self._reads.submit(key, os.path.join(base, walk.addresses[row], "vpd"))
        self._reads.wait(keys.values(), start + self.vpd_deadline)
        self._reads.keep(keys.values())
        vpd: dict[int, tuple[bytes | None, list[str]]] = {}
        pending = []
        for row, key in keys.items():
            outcome = self._reads.outcome(key)
            if outcome is None:
                pending.append(row)
                if key not in self._slow_logged:
                    self._slow_logged.add(key)
                    log.warning("fastvpd: the VPD read of %s takes longer than %.2f s; its "
                                "serial number comes in a later refresh", walk.addresses[row],
                                self.vpd_deadline)
                continue
            vpd[row] = _vpd_result(outcome, os.path.join(base, walk.addresses[row], "vpd"))
            if key in self._slow_logged:
                self._slow_logged.discard(key)
                log.info("fastvpd: the VPD read of %s finished after %.2f s",
                         walk.addresses[row], outcome.seconds)
        inventory = _inventory(walk, self.sysfs, strict_vpd=self.strict_vpd, vpd=vpd)
        added: tuple[str, ...]
        removed: tuple[str, ...]
        changed: tuple[str, ...]
        if state is None:
            added, removed, changed = tuple(inventory), (), ()
        else:
            added, removed, changed = inventory.diff(state.result.inventory)
        self._log(inventory, added, removed, changed)
        result = ScanResult(inventory, added, removed, changed,
                            tuple(walk.addresses[row] for row in pending), self._syscalls)
        reusable = state.reusable if state is not None and state.walk is walk else _reusable(walk)
        self._state = _State(walk, baseline, prober, reusable, keys,
                             frozenset(keys[r] for r in pending), result)
        if state is not None and state.prober is not prober:
            state.prober.close()
        return result

    def _vpd_keys(self, walk: _walk.Walk) -> dict[int, _Identity]:
        """Row -> identity of every device whose VPD is wanted: those with a vpd file, and with
        ``vf_vpd`` every VF (the fast path lists no inferred VF's directory: try them all)."""
        c = walk.columns
        bad = _walk.F_GONE | _walk.F_BROKEN
        if self.vf_vpd:  # the fast path lists no inferred VF's directory: try them all
            want = _walk.F_HAS_VPD | _walk.F_INFERRED
            rows = [i for i, f in enumerate(c.flags) if f & want and not f & bad]
        else:
            rows = [i for i, f in enumerate(c.flags) if f & _walk.F_HAS_VPD and not f & bad
                    and c.kind[i] != _walk.KIND_VF]
        return {i: (walk.addresses[i], walk.inodes[i], c.vendor[i], c.device[i]) for i in rows}

    def _log(self, inventory: Inventory, added: tuple[str, ...], removed: tuple[str, ...],
             changed: tuple[str, ...]) -> None:
        if removed:
            log.info("fastvpd: %d device(s) gone: %s", len(removed), _few(removed))
        if added and self._state is not None:
            log.info("fastvpd: %d device(s) new: %s", len(added), _few(added))
        for pf in inventory.pfs():
            if pf.address in self._fallback_logged:
                continue
            for p in pf.problems:
                if "fell back to reading every virtfn link" in p:
                    self._fallback_logged.add(pf.address)
                    log.warning("fastvpd: %s: %s", pf.address, p)


def _reusable(walk: _walk.Walk) -> list[str]:
    """The PFs and plain functions of a walk that a later walk may copy: not those whose VFs had
    to be read link by link (each VF read is needed to know them), nor rows without facts."""
    c = walk.columns
    linked = {p for p, f in zip(c.parent, c.flags) if f & _walk.F_LINKED} if any(
        f & _walk.F_LINKED for f in set(c.flags)) else set()
    bad = _walk.F_GONE | _walk.F_BROKEN
    return [walk.addresses[i] for i, k in enumerate(c.kind)
            if k != _walk.KIND_VF and not c.flags[i] & bad and i not in linked]


def _pf_rows(walk: _walk.Walk) -> list[tuple[str, int]]:
    c = walk.columns
    return [(walk.addresses[i], n) for i, (k, n) in enumerate(zip(c.kind, c.num_vfs))
            if k == _walk.KIND_PF]


def _few(addresses: tuple[str, ...]) -> str:
    return ", ".join(addresses) if len(addresses) <= 4 else f"{addresses[0]} .. {addresses[-1]}"
