"""`fastvpd.udev.Watcher`: kernel uevents of this machine (a ``change`` written to a real
``uevent`` file), and constructed events from a fake monitor for the debouncing, the address
mapping, removals, the fallback and stopping. No wall-clock time is asserted: every wait is a
deadline with a wide margin."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import fastvpd
from fastvpd import testing, udev
from fastvpd.testing import BuiltHost
from fastvpd.udev import Watcher
from tests.support import missing, require, scratch_dir

#: How long any wait may take before the test fails: far beyond what any step needs.
DEADLINE = 30.0


def wait_for(predicate: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.005)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# -- constructed events ----------------------------------------------------------------------------

@dataclass
class FakeDevice:
    """What the Watcher reads of a pyudev Device."""

    action: str
    subsystem: str
    device_path: str
    properties: dict[str, str] = field(default_factory=dict)


class FakeMonitor:
    """A monitor whose events the test pushes; its fd (a pipe) is readable while any wait, one
    byte per event, as a netlink socket is."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._events: list[FakeDevice | OSError] = []
        self._lock = threading.Lock()
        self.started = False

    def start(self) -> None:
        self.started = True

    def fileno(self) -> int:
        return self._r

    def push(self, *events: FakeDevice | OSError) -> None:
        with self._lock:
            self._events.extend(events)
            os.write(self._w, b"e" * len(events))

    def poll(self, timeout: float | None = None) -> FakeDevice | None:
        assert timeout == 0, "the Watcher never blocks in poll()"
        with self._lock:
            if not self._events:
                return None
            os.read(self._r, 1)
            event = self._events.pop(0)
        if isinstance(event, OSError):
            raise event
        return event

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


class Recorder:
    """A stand-in Scanner that records each ``changed`` it is refreshed with."""

    def __init__(self, sysfs: str = "/sys", fail: Callable[[], bool] = lambda: False) -> None:
        self.sysfs = sysfs
        self.calls: list[frozenset[str] | None] = []
        self._fail = fail

    def refresh(self, changed: Any = None) -> tuple[str, int]:
        self.calls.append(None if changed is None else frozenset(changed))
        if self._fail():
            raise OSError(errno.EIO, "the refresh failed on purpose")
        return ("result", len(self.calls))


@pytest.fixture
def monitor() -> Iterator[FakeMonitor]:
    m = FakeMonitor()
    yield m
    m.close()


@pytest.fixture
def host() -> Iterator[BuiltHost]:
    with scratch_dir("watch") as d:
        yield testing.dpu_host(os.path.join(d, "sys"), cards=1, pfs_per_card=2, vfs_per_pf=2)


def pci(action: str, host: BuiltHost, address: str) -> FakeDevice:
    return FakeDevice(action, "pci", host.device_path(address)[len(host.root):],
                      {"PCI_SLOT_NAME": address})


def vf_paths(count: int) -> list[tuple[str, str]]:
    """(address, device path) of ``count`` VFs of one PF, as the kernel names them."""
    out = []
    for n in range(count):
        address = testing.vf_address("0000:82:00.0", 2, 1, n)
        out.append((address, f"/devices/pci0000:80/0000:80:01.0/{address}"))
    return out


def started(watcher: Watcher, recorder: Recorder) -> Watcher:
    """Start ``watcher`` and wait for its first refresh, which checks everything."""
    watcher.start()
    wait_for(lambda: recorder.calls, "the first refresh")
    assert recorder.calls == [None]
    return watcher


def test_a_burst_of_512_vf_adds_is_one_refresh_with_every_address(monitor: FakeMonitor) -> None:
    recorder = Recorder()
    results: list[Any] = []
    watcher = started(Watcher(recorder, monitor=monitor, on_result=results.append), recorder)
    try:
        vfs = vf_paths(512)
        monitor.push(*(FakeDevice("add", "pci", path) for _, path in vfs))
        wait_for(lambda: len(recorder.calls) == 2, "the refresh after the burst")
        assert recorder.calls[1] == {a for a, _ in vfs} and len(recorder.calls[1]) == 512
        wait_for(lambda: len(results) == 2, "its result handed on")
        assert results == [("result", 1), ("result", 2)]
        assert watcher.events == 512 and watcher.source == "monitor" and monitor.started
    finally:
        assert watcher.stop()
    assert len(recorder.calls) == 2 and watcher.refreshes == 2


def test_events_arriving_within_the_debounce_period_share_one_refresh(monitor: FakeMonitor,
                                                                      ) -> None:
    """The burst arrives in 8 chunks the watcher reads one by one: still one refresh, because
    no pause between them is as long as the debounce period."""
    recorder = Recorder()
    watcher = started(Watcher(recorder, monitor=monitor, debounce=3.0), recorder)
    try:
        vfs = vf_paths(512)
        for chunk in range(8):
            monitor.push(*(FakeDevice("add", "pci", p) for _, p in vfs[chunk * 64:][:64]))
            time.sleep(0.001)
        wait_for(lambda: len(recorder.calls) == 2, "the refresh after the burst")
        assert recorder.calls[1] == {a for a, _ in vfs}
    finally:
        watcher.stop()
    assert len(recorder.calls) == 2


def test_an_endless_stream_of_events_still_refreshes(monitor: FakeMonitor) -> None:
    """A burst is refreshed at the latest ten debounce periods after its first event."""
    recorder = Recorder()
    watcher = started(Watcher(recorder, monitor=monitor, debounce=0.05), recorder)
    try:
        vfs = vf_paths(256)
        end = time.monotonic() + DEADLINE
        n = 0
        # events come every millisecond, never a pause of 0.05 s: refreshes still happen
        while len(recorder.calls) < 3 and time.monotonic() < end:
            monitor.push(FakeDevice("change", "pci", vfs[n % 256][1]))
            n += 1
            time.sleep(0.001)
        assert len(recorder.calls) >= 3
        assert all(c and c <= {a for a, _ in vfs} for c in recorder.calls[1:])
    finally:
        watcher.stop()


def test_net_events_map_to_the_function_that_owns_the_netdev(monitor: FakeMonitor) -> None:
    recorder = Recorder()
    watcher = started(Watcher(recorder, monitor=monitor, debounce=0.01), recorder)
    pf = "/devices/pci0000:80/0000:80:01.0/0000:82:00.0"
    try:
        monitor.push(FakeDevice("add", "net", "/devices/virtual/net/br0"),  # no PCI function's
                     FakeDevice("add", "usb", pf),  # another subsystem
                     FakeDevice("add", "net", pf + "/net/ens1f0"))
        wait_for(lambda: len(recorder.calls) == 2, "the refresh")
        assert recorder.calls[1] == {"0000:82:00.0"}
        monitor.push(FakeDevice("move", "net", pf + "/net/ens1f0np0",
                                {"DEVPATH_OLD": "/devices/pci0000:80/0000:80:01.0/0000:82:00.2"
                                                "/net/eth0"}))
        wait_for(lambda: len(recorder.calls) == 3, "the refresh after a rename")
        assert recorder.calls[2] == {"0000:82:00.0", "0000:82:00.2"}
        # events that concern no PCI function refresh nothing: the next refresh names only
        # the function of the one that does
        monitor.push(FakeDevice("remove", "net", "/devices/virtual/net/lo"),
                     FakeDevice("add", "block", "/devices/virtual/block/loop0"))
        monitor.push(FakeDevice("bind", "pci", pf))
        wait_for(lambda: len(recorder.calls) == 4, "the refresh after a bind")
        assert recorder.calls[3] == {"0000:82:00.0"}
        assert watcher.events == 3
    finally:
        watcher.stop()


def test_a_real_scanner_follows_added_and_removed_vfs(host: BuiltHost, monitor: FakeMonitor,
                                                      ) -> None:
    """The events a kernel sends when VFs come and go, on a synthetic tree changed the same
    way: each ScanResult says what came and went."""
    results: list[fastvpd.ScanResult] = []
    with fastvpd.Scanner(host.root) as scanner:
        calls: list[frozenset[str] | None] = []
        real_refresh = scanner.refresh

        def refresh(changed: Any = None) -> fastvpd.ScanResult:
            calls.append(None if changed is None else frozenset(changed))
            return real_refresh(changed)

        scanner.refresh = refresh  # type: ignore[method-assign]
        with Watcher(scanner, monitor=monitor, debounce=0.01, on_result=results.append):
            wait_for(lambda: results, "the first result")
            assert set(results[0].added) == set(host.addresses)
            pf = host.pfs[0]
            before = set(host.vfs)
            testing.set_vf_count(host, pf, 4)
            new = sorted(set(host.vfs) - before)
            assert len(new) == 2
            events = [pci("add", host, a) for a in new]
            for a in new:  # each new VF's netdev comes with an event of its own
                ifname = host.functions[a].netdevs[0]
                events.append(FakeDevice("add", "net", os.path.realpath(
                    f"{host.root}/class/net/{ifname}")[len(host.root):]))
            monitor.push(*events)
            wait_for(lambda: len(results) == 2, "the result after the adds")
            assert calls[1] == set(new)
            assert results[1].added == tuple(new) and results[1].removed == ()
            assert results[1].changed == (pf,)  # its num_vfs
            assert results[1].inventory[pf].num_vfs == 4

            gone = new[-1]
            removal = pci("remove", host, gone)
            testing.unplug(host, gone)
            monitor.push(removal)
            wait_for(lambda: len(results) == 3, "the result after the removal")
            assert calls[2] == {gone}
            assert results[2].removed == (gone,) and results[2].added == ()
            assert gone not in results[2].inventory
            assert results[2].inventory.to_nova() == fastvpd.scan(host.root).to_nova()


def test_stop_ends_the_thread_and_closes_what_it_opened(monitor: FakeMonitor) -> None:
    fds, threads = open_fds(), set(threading.enumerate())
    recorder = Recorder()
    watcher = started(Watcher(recorder, monitor=monitor), recorder)
    assert watcher.running
    (thread,) = set(threading.enumerate()) - threads
    assert thread.daemon and thread.name == "fastvpd-udev-watcher"
    assert open_fds() > fds  # its wake-up pipe
    assert watcher.stop() and watcher.stop()  # idempotent
    assert not thread.is_alive() and not watcher.running
    assert open_fds() == fds and set(threading.enumerate()) == threads
    assert os.fstat(monitor.fileno())  # a monitor given is the caller's: left open
    # it can start again, and a with block stops it
    with Watcher(recorder, monitor=monitor) as again:
        wait_for(lambda: len(recorder.calls) == 2, "the first refresh of the second run")
        with pytest.raises(RuntimeError, match="already running"):
            again.start()
    assert open_fds() == fds and set(threading.enumerate()) == threads


def test_errors_of_on_result_and_refresh_are_logged_and_the_thread_goes_on(
        monitor: FakeMonitor, caplog: pytest.LogCaptureFixture) -> None:
    failing = {"refresh": False}
    recorder = Recorder(fail=lambda: failing["refresh"])
    seen: list[Any] = []

    def on_result(result: Any) -> None:
        seen.append(result)
        raise ValueError("the agent's handler broke")

    caplog.set_level(logging.DEBUG, logger="fastvpd")
    watcher = started(Watcher(recorder, monitor=monitor, debounce=0.01, on_result=on_result),
                      recorder)
    try:
        wait_for(lambda: any("on_result raised" in r.message for r in caplog.records),
                 "the on_result error logged")
        record = next(r for r in caplog.records if "on_result raised" in r.message)
        assert record.levelno == logging.ERROR and record.exc_info is not None
        assert "the agent's handler broke" in str(record.exc_info[1])

        failing["refresh"] = True
        monitor.push(FakeDevice("change", "pci", vf_paths(1)[0][1]))
        wait_for(lambda: any("failed" in r.message and r.exc_info for r in caplog.records),
                 "the refresh error logged")
        assert watcher.running
        failing["refresh"] = False
        monitor.push(FakeDevice("change", "pci", vf_paths(2)[1][1]))
        wait_for(lambda: len(recorder.calls) == 3, "the refresh after the failed one")
        # what the failed refresh did not take in is not lost: this one checks everything
        assert recorder.calls[1:] == [{vf_paths(1)[0][0]}, None]
        assert len(seen) == 2 and watcher.running
    finally:
        watcher.stop()


def test_lost_events_make_the_next_refresh_check_everything(monitor: FakeMonitor,
                                                            caplog: pytest.LogCaptureFixture,
                                                            ) -> None:
    recorder = Recorder()
    watcher = started(Watcher(recorder, monitor=monitor, debounce=0.01), recorder)
    try:
        monitor.push(FakeDevice("add", "pci", vf_paths(1)[0][1]),
                     OSError(errno.ENOBUFS, "No buffer space available"))
        wait_for(lambda: len(recorder.calls) == 2, "the refresh")
        assert recorder.calls[1] is None
        assert any("lost" in r.message for r in caplog.records)
        monitor.push(FakeDevice("add", "pci", vf_paths(2)[1][1]))
        wait_for(lambda: len(recorder.calls) == 3, "the next refresh")
        assert recorder.calls[2] == {vf_paths(2)[1][0]}
    finally:
        watcher.stop()


def test_a_broken_event_source_falls_back_to_the_interval(monitor: FakeMonitor) -> None:
    recorder = Recorder()
    watcher = started(Watcher(recorder, monitor=monitor, interval=0.02), recorder)
    try:
        monitor.push(OSError(errno.EBADF, "Bad file descriptor"))
        wait_for(lambda: watcher.fallback is not None, "the fallback")
        assert watcher.source is None and "reading the event source failed" in watcher.fallback
        count = len(recorder.calls)
        wait_for(lambda: len(recorder.calls) >= count + 2, "periodic refreshes")
        assert recorder.calls[-1] is None and recorder.calls[-2] is None
    finally:
        watcher.stop()


def test_the_interval_probes_while_events_arrive(monitor: FakeMonitor) -> None:
    """No event for a while: the periodic refresh only probes (``changed=set()``)."""
    recorder = Recorder()
    watcher = started(Watcher(recorder, monitor=monitor, interval=0.02), recorder)
    try:
        wait_for(lambda: len(recorder.calls) >= 3, "periodic refreshes")
        assert set(recorder.calls[1:]) == {frozenset()}
    finally:
        watcher.stop()


def test_run_on_an_asyncio_loop(monitor: FakeMonitor) -> None:
    recorder = Recorder()
    results: list[Any] = []
    fds = open_fds()

    async def main() -> None:
        async def on_result(result: Any) -> None:  # awaited on the loop
            await asyncio.sleep(0)
            results.append(result)

        watcher = Watcher(recorder, monitor=monitor, debounce=0.01, on_result=on_result)
        task = asyncio.create_task(watcher.run())
        while not results:
            await asyncio.sleep(0.005)
        assert recorder.calls == [None] and watcher.running
        monitor.push(*(FakeDevice("add", "pci", p) for _, p in vf_paths(512)))
        while len(results) < 2:
            await asyncio.sleep(0.005)
        assert recorder.calls[1] == {a for a, _ in vf_paths(512)}
        threading.Thread(target=watcher.stop).start()  # from another thread
        await asyncio.wait_for(task, DEADLINE)
        assert not watcher.running
        # cancelling it ends it too
        task = asyncio.create_task(watcher.run())
        while len(results) < 3:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not watcher.running

    asyncio.run(asyncio.wait_for(main(), DEADLINE))
    assert results == [("result", 1), ("result", 2), ("result", 3)]
    assert open_fds() == fds


def test_a_tree_no_event_describes_is_refreshed_on_the_interval(host: BuiltHost) -> None:
    with fastvpd.Scanner(host.root) as scanner:
        with pytest.raises(fastvpd.FastVpdError, match="not a sysfs mount.*no interval"):
            Watcher(scanner).start()
        results: list[fastvpd.ScanResult] = []
        with Watcher(scanner, interval=0.02, on_result=results.append) as watcher:
            assert watcher.source is None and "is not a sysfs mount" in (watcher.fallback or "")
            assert watcher.self_test() is None  # nothing listens: nothing to test
            wait_for(lambda: results, "the first result")
            unplugged, kept = host.pfs
            testing.set_mac(host, kept, "0c:42:a1:ff:00:01")
            testing.unplug(host, unplugged)  # and its VFs
            gone = set(results[0].inventory) - set(host.functions)
            assert len(gone) == 3

            def seen(kind: str) -> set[str]:
                return {a for r in list(results[1:]) for a in getattr(r, kind)}

            wait_for(lambda: seen("removed") >= gone and kept in seen("changed"),
                     "the removal and the new MAC seen by the polling")
            assert seen("removed") == gone


def test_a_self_test_without_an_event_falls_back(host: BuiltHost, monkeypatch: pytest.MonkeyPatch,
                                                 monitor: FakeMonitor,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A source that binds but hears nothing (a container the host's kernel sends no uevents
    to): the self-test's event never comes, and the Watcher falls back to the interval."""
    monkeypatch.setattr(udev, "_not_sysfs", lambda root: None)
    monkeypatch.setattr(udev, "_listen", lambda source: (monitor, None))
    recorder = Recorder(host.root)
    watcher = started(Watcher(recorder, interval=0.02, source="kernel"), recorder)
    try:
        assert watcher.source == "kernel"
        assert watcher.self_test(timeout=0.2) is False
        wait_for(lambda: watcher.fallback is not None, "the fallback")
        assert "no kernel event arrived within 0.2 s of a change written to" in watcher.fallback
        assert watcher.source is None
        count = len(recorder.calls)
        wait_for(lambda: len(recorder.calls) >= count + 2, "periodic refreshes")
        assert recorder.calls[-1] is None
        assert any("not used any more" in r.message for r in caplog.records)
    finally:
        watcher.stop()


@pytest.mark.parametrize("kwargs, error", [
    ({"debounce": -1}, ValueError), ({"debounce": float("nan")}, ValueError),
    ({"debounce": True}, ValueError), ({"interval": 0}, ValueError),
    ({"source": "both"}, ValueError), ({"source": "udev", "monitor": object()}, ValueError),
    ({"on_result": 3}, TypeError),
])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Watcher(Recorder(), **kwargs)


def test_the_mountinfo_check_names_sysfs_mounts_only(host: BuiltHost) -> None:
    assert udev._not_sysfs("/sys") is None
    assert "not a sysfs mount" in (udev._not_sysfs(host.root) or "")
    assert "not a sysfs mount" in (udev._not_sysfs("/sys/bus") or "")
    assert udev._unescape_mount(r"/mnt/a\040b\134c") == "/mnt/a b\\c"


# -- real kernel uevents ---------------------------------------------------------------------------

def _real_pyudev() -> None:
    pyudev = require("pyudev", "pyudev")
    try:
        pyudev.Context()
    except ImportError as e:
        missing(f"libudev (Debian's libudev1) cannot be loaded by pyudev ({e})")


def _real_function() -> str:
    try:
        addresses = sorted(os.listdir("/sys/bus/pci/devices"))
    except OSError as e:
        pytest.skip(f"this machine has no /sys/bus/pci/devices ({e})")
    if not addresses:
        pytest.skip("this machine has no PCI device to write a uevent for")
    return addresses[0]


def _trigger(address: str) -> None:
    path = f"/sys/bus/pci/devices/{address}/uevent"
    try:
        with open(path, "w") as f:
            f.write("change")
    except OSError as e:
        pytest.skip(f"writing 'change' to {path} is refused here ({e.strerror or e}; it needs "
                    "root and a writable sysfs)")


def test_a_change_written_to_a_real_uevent_file_refreshes_that_function() -> None:
    """The kernel emits a ``change`` uevent when one is written to a device's ``uevent``: the
    Watcher hears it and refreshes a real Scanner of /sys with that address."""
    _real_pyudev()
    address = _real_function()
    fds, threads = open_fds(), set(threading.enumerate())
    calls: list[frozenset[str] | None] = []
    results: list[fastvpd.ScanResult] = []
    with fastvpd.Scanner("/sys", read_vpd=False) as scanner:
        real_refresh = scanner.refresh

        def refresh(changed: Any = None) -> fastvpd.ScanResult:
            calls.append(None if changed is None else frozenset(changed))
            return real_refresh(changed)

        scanner.refresh = refresh  # type: ignore[method-assign]
        with Watcher(scanner, debounce=0.05, on_result=results.append) as watcher:
            assert watcher.fallback is None, watcher.fallback
            assert watcher.source == udev.event_source()
            wait_for(lambda: results, "the first refresh")
            assert calls[0] is None and address in results[0].added
            _trigger(address)
            wait_for(lambda: any(c and address in c for c in calls),
                     f"a refresh naming {address} after a change written to its uevent "
                     f"({watcher.source} events; calls so far {calls})")
            assert watcher.events >= 1
            # the call is recorded when the refresh starts, its result when on_result gets it
            wait_for(lambda: len(results) == len(calls), "the refresh naming it to end")
            assert address in results[-1].inventory
    assert open_fds() == fds and set(threading.enumerate()) == threads


def test_the_self_test_hears_its_own_event_here() -> None:
    _real_pyudev()
    address = _real_function()
    _trigger(address)  # skips where the write is refused
    recorder = Recorder()
    watcher = started(Watcher(recorder, debounce=0.01), recorder)
    try:
        assert watcher.self_test(timeout=DEADLINE) is True
        assert watcher.fallback is None and watcher.source in ("udev", "kernel")
    finally:
        watcher.stop()
