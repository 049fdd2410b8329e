"""libudev through pyudev: the PCI functions udev knows, what a udev event concerns, and the
`Watcher` that turns events into Scanner refreshes.

`enumerate_pci` lists the PCI functions as libudev reports them (a cross-check of a scan, and
what an agent that already uses udev has at hand); `event_addresses` maps one kernel or udev
event to the PCI functions whose facts it may have changed, which is what
``Scanner.refresh(changed=...)`` takes; `Watcher` listens for those events, debounces a burst
into one refresh and hands each `ScanResult` on, and refreshes on a period where no event can
arrive. pyudev (and libudev) are needed only to list devices and to listen: the rest of fastvpd,
`event_addresses` included, works without them. See docs/udev.md.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import math
import os
import select
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import FastVpdError
from .model import PciAddress

if TYPE_CHECKING:
    from .scanner import Scanner, ScanResult

__all__ = ["UdevPciFunction", "Watcher", "enumerate_pci", "event_addresses", "event_source"]

log = logging.getLogger("fastvpd")


@dataclass(frozen=True, slots=True)
class UdevPciFunction:
    """One PCI function as libudev lists it: plain values, read from its uevent properties.

    ``vendor_id``/``product_id`` come from ``PCI_ID`` and the subsystem IDs from
    ``PCI_SUBSYS_ID`` (4 lower-case hex digits each, None when udev has none), ``class_code``
    from ``PCI_CLASS``, ``driver`` is libudev's (the bound driver, None when unbound),
    ``device_path`` the kernel's ``DEVPATH`` (``/devices/pci0000:00/.../0000:82:00.3``), and
    ``properties`` every property udev gave.
    """

    address: str
    vendor_id: str | None
    product_id: str | None
    subsystem_vendor_id: str | None
    subsystem_product_id: str | None
    class_code: int | None
    driver: str | None
    device_path: str
    modalias: str | None
    properties: Mapping[str, str] = field(compare=False, hash=False, repr=False)


def _pyudev() -> Any:
    try:
        import pyudev  # type: ignore[import-untyped]  # pyudev ships no types
    except ImportError as e:
        raise ImportError(f"fastvpd.udev needs pyudev (pip install pyudev): {e}") from e
    return pyudev


def _ids(text: str | None) -> tuple[str | None, str | None]:
    """``"15B3:101E"`` -> ``("15b3", "101e")``; Nones for anything else."""
    vendor, sep, product = (text or "").partition(":")
    if not sep or not all(len(x) == 4 and _is_hex(x) for x in (vendor, product)):
        return None, None
    return vendor.lower(), product.lower()


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _canonical(text: str | None) -> str | None:
    """The canonical form of a PCI address (``0000:82:00.3``), or None when it is none."""
    try:
        return str(PciAddress.parse(text)) if text else None
    except ValueError:
        return None


def enumerate_pci(context: Any = None) -> list[UdevPciFunction]:
    """Every PCI function libudev lists (``subsystem="pci"``), in address order.

    ``context`` is a ``pyudev.Context`` (a new one when None). A device that vanishes while it
    is listed is left out. Raises ImportError, naming what is missing, without pyudev or
    libudev.
    """
    pyudev = _pyudev()
    if context is None:
        try:
            context = pyudev.Context()
        except ImportError as e:
            raise ImportError(f"fastvpd.udev: pyudev cannot load libudev (libudev1): {e}") from e
    out = []
    for device in context.list_devices(subsystem="pci"):
        try:
            properties = dict(device.properties)
            driver = device.driver
        except (pyudev.DeviceNotFoundError, OSError):
            continue
        address = _canonical(properties.get("PCI_SLOT_NAME")) or _canonical(device.sys_name)
        if address is None:
            continue
        vendor, product = _ids(properties.get("PCI_ID"))
        sub_vendor, sub_product = _ids(properties.get("PCI_SUBSYS_ID"))
        klass = properties.get("PCI_CLASS")
        out.append(UdevPciFunction(
            address=address, vendor_id=vendor, product_id=product,
            subsystem_vendor_id=sub_vendor, subsystem_product_id=sub_product,
            class_code=int(klass, 16) if klass and _is_hex(klass) else None,
            driver=driver or None, device_path=properties.get("DEVPATH", device.device_path),
            modalias=properties.get("MODALIAS"), properties=MappingProxyType(properties)))
    out.sort(key=lambda f: f.address)
    return out


def _address_of_path(subsystem: str, path: str) -> str | None:
    """The PCI function a device path (``/devices/...`` or ``/sys/devices/...``) names."""
    parts = [p for p in path.split("/") if p]
    if subsystem == "pci":
        return _canonical(parts[-1]) if parts else None
    # a PCI function's own netdev: .../<address>/net/<ifname> (a virtio or USB netdev sits
    # under a device of its own, and the function's net/ does not hold it)
    if len(parts) >= 3 and parts[-2] == "net":
        return _canonical(parts[-3])
    return None


def event_addresses(action: str | None, subsystem: str | None, device_path: str,
                    properties: Mapping[str, str] | None = None) -> frozenset[str]:
    """The PCI functions (canonical addresses) an event of ``subsystem`` on ``device_path``
    concerns: what ``Scanner.refresh(changed=...)`` should look at again.

    - ``pci``: the function itself (``add``, ``remove``, ``bind``, ``unbind``, ``change``, ...);
      ``PCI_SLOT_NAME`` of ``properties`` when the path ends in no address.
    - ``net``: the PCI function that owns the netdev, from its path
      ``/devices/.../<address>/net/<ifname>``; a netdev of no PCI function (``lo``, a bridge,
      a virtio or USB netdev, whose function's ``net/`` does not list it) concerns none. A
      ``move`` (a rename) concerns the owner of the old path (``DEVPATH_OLD``) too.
    - anything else: nothing.

    The path may start with ``/sys`` or not. Pure: it reads nothing, so it works without
    pyudev and on events from any source. A VF's event names the VF only: which PF it belongs
    to is in sysfs, not in the event, and the Scanner re-checks each PF's VF links itself.
    """
    if subsystem not in ("pci", "net"):
        return frozenset()
    properties = properties or {}
    found = set()
    address = _address_of_path(subsystem, device_path)
    if address is None and subsystem == "pci":
        address = _canonical(properties.get("PCI_SLOT_NAME"))
    if address is not None:
        found.add(address)
    old = properties.get("DEVPATH_OLD")
    if action == "move" and old:
        old_address = _address_of_path(subsystem, old)
        if old_address is not None:
            found.add(old_address)
    return frozenset(found)


# -- the Watcher: events into Scanner refreshes --------------------------------------------------

#: The subsystems whose events can change a fact fastvpd reports.
SUBSYSTEMS = ("pci", "net")

#: A batch of events is refreshed at the latest this many debounce periods after its first event,
#: however long the burst goes on (a PF creating 512 VFs takes seconds).
_BATCH_LIMIT = 10

#: The socket buffer asked for (as udevd does): a burst of thousands of events must not overflow.
_RECEIVE_BUFFER = 128 * 1024 * 1024


def event_source() -> str:
    """The event source a `Watcher` listens to by default: ``"udev"`` when udevd runs here
    (``/run/udev/control`` exists), else ``"kernel"``. libudev gives a ``udev`` monitor no
    netlink group at all when udevd is not running (it would receive nothing, silently), while
    the kernel's own uevents still arrive wherever the host's kernel sends them (docs/udev.md)."""
    return "udev" if os.path.exists("/run/udev/control") else "kernel"


def _unescape_mount(text: str) -> str:
    """A path of /proc/self/mountinfo, whose blanks and backslashes are octal escapes."""
    out, i = [], 0
    while i < len(text):
        digits = text[i + 1:i + 4]
        if text[i] == "\\" and len(digits) == 3 and all(c in "01234567" for c in digits):
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _not_sysfs(root: str) -> str | None:
    """Why no kernel event describes the tree at ``root``, None when it is a sysfs mount (or
    /proc/self/mountinfo cannot tell, and it is /sys). Events name ``/devices/...`` paths of
    the kernel's own sysfs: a copied or synthetic tree changes without any."""
    real = os.path.realpath(root)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return None if real == "/sys" else f"{root} is not /sys, and /proc/self/mountinfo " \
                                           "cannot be read to tell whether sysfs is mounted there"
    fstype = None
    for line in lines:  # the last mount on a point is the one on top
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        if len(fields) > sep + 1 and _unescape_mount(fields[4]) == real and fields[3] == "/":
            fstype = fields[sep + 1]
    if fstype == "sysfs":
        return None
    return f"{root} is not a sysfs mount, so no kernel event describes it"


class Watcher:
    """Kernel or udev events of the ``pci`` and ``net`` subsystems, turned into
    ``scanner.refresh(changed=...)`` calls (docs/udev.md).

    Each event is mapped to addresses with `event_addresses`; events are collected until
    ``debounce`` seconds pass without one (at most ``10 * debounce`` after the first of a
    burst), then one refresh gets the union of their addresses, and its `ScanResult` goes to
    ``on_result``. A burst of 512 VF ``add`` events is one refresh. The first refresh, made as
    soon as the Watcher listens, checks everything (``changed=None``), so that nothing that
    happened before it listened is missed.

    ``interval`` (seconds) adds a periodic refresh: ``changed=set()`` while events arrive (the
    PF probes catch what no uevent reports, such as a new MAC address), ``changed=None`` when
    no event can arrive (no pyudev or libudev, the netlink socket refused, a Scanner whose root
    is not a sysfs mount, a failed `self_test`): `fallback` then says why. Without ``interval``
    a Watcher that can receive no event is an error (`start` raises `FastVpdError`).

    ``source`` is ``"udev"`` or ``"kernel"`` (default: `event_source`); ``monitor`` replaces the
    pyudev monitor with one of your own (anything with ``fileno()`` and ``poll(timeout)``
    returning a device with ``action``, ``subsystem``, ``device_path`` and ``properties``, or
    None), which the Watcher does not close. Run it in a daemon thread (`start`/`stop`, or a
    ``with`` block) or on an asyncio loop (``await run()``). Errors of a refresh or of
    ``on_result`` are logged to the ``fastvpd`` logger, never raised into the thread; after a
    failed refresh the next one checks everything.
    """

    def __init__(self, scanner: Scanner, *, debounce: float = 0.2,
                 on_result: Callable[[ScanResult], object] | None = None,
                 interval: float | None = None, source: str | None = None,
                 monitor: Any = None) -> None:
        if not _seconds(debounce):
            raise ValueError(f"debounce must be a number of seconds >= 0, not {debounce!r}")
        if interval is not None and not (_seconds(interval) and interval > 0):
            raise ValueError(f"interval must be a number of seconds > 0 or None, not {interval!r}")
        if source not in (None, "udev", "kernel"):
            raise ValueError(f"source must be 'udev' or 'kernel', not {source!r}")
        if source is not None and monitor is not None:
            raise ValueError("give a source or a monitor, not both")
        if on_result is not None and not callable(on_result):
            raise TypeError("on_result must be a callable taking a ScanResult")
        self.scanner = scanner
        self.debounce = float(debounce)
        self.interval = None if interval is None else float(interval)
        self.on_result = on_result
        self._wanted_source = source
        self._given_monitor = monitor
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._active = False  # a thread or a run() owns the monitor and the wake pipe
        self._stopping = False
        self._wake: tuple[int, int] | None = None
        self._monitor: Any = None
        self._abandon: str | None = None  # why to stop listening (a failed source, self_test)
        self._probes: dict[str, threading.Event] = {}
        #: What the Watcher listens to: "udev", "kernel", "monitor" (one given), None (nothing).
        self.source: str | None = None
        #: Why no event is listened to (the periodic refresh checks everything), None otherwise.
        self.fallback: str | None = None
        #: Events that concerned a PCI function, and refreshes made: for tests and operators.
        self.events = 0
        self.refreshes = 0
        self._reset_batch()

    # -- running it -------------------------------------------------------------------------------
    def start(self) -> Watcher:
        """Listen, and refresh in a daemon thread until `stop`. Raises `FastVpdError` when no
        event can arrive and no ``interval`` was given, RuntimeError when already running."""
        with self._lock:
            self._open()
            thread = self._thread = threading.Thread(
                target=self._thread_main, name="fastvpd-udev-watcher", daemon=True)
        thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """End the thread once the refresh in flight, if any, has returned; the monitor and the
        wake-up pipe are closed by the runner as it ends. Idempotent. Returns False when the
        thread did not end within ``timeout`` seconds (a refresh stuck in the kernel; the daemon
        thread ends with the process). For ``run()`` it only asks, from any thread: ``run()``
        returns at its next step."""
        with self._lock:
            self._stopping = True
            self._poke()
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning("fastvpd: the udev watcher thread did not end within %.1f s", timeout)
            return False
        with self._lock:
            if self._thread is thread:
                self._thread = None
        return True

    @property
    def running(self) -> bool:
        """Whether a thread or ``run()`` is listening and refreshing."""
        return self._active

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<Watcher source={self.source!r} fallback={self.fallback!r} events={self.events} "
                f"refreshes={self.refreshes}>")

    async def run(self) -> None:
        """Listen and refresh on the running asyncio loop until `stop` (from any thread) or
        cancellation: the monitor's fd is watched with ``loop.add_reader``, each refresh runs in
        the loop's default executor, and ``on_result`` is called on the loop (awaited when it
        returns an awaitable). Raises as `start` does."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._open()
        wake = asyncio.Event()
        assert self._wake is not None
        wake_fd, monitor_fd = self._wake[0], self._fileno()

        def readable() -> None:
            self._drain()
            wake.set()

        def woken() -> None:
            _empty_pipe(wake_fd)
            wake.set()

        loop.add_reader(wake_fd, woken)
        if monitor_fd is not None:
            loop.add_reader(monitor_fd, readable)
        try:
            while not self._stopping:
                if self._abandon is not None:
                    if monitor_fd is not None:
                        loop.remove_reader(monitor_fd)
                        monitor_fd = None
                    self._listen_no_more()
                    continue
                wait = self._due(time.monotonic())
                if wait is not None and wait <= 0:
                    hint = self._take()
                    try:
                        result = await loop.run_in_executor(None, self.scanner.refresh, hint)
                    except Exception:
                        self._failed(hint)
                    else:
                        outcome = self._deliver(result)
                        if inspect.isawaitable(outcome):
                            try:
                                await outcome
                            except Exception:
                                log.exception("fastvpd: on_result raised; the watcher goes on")
                    finally:
                        self._last_refresh = time.monotonic()
                    continue
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), wait)
                except TimeoutError:
                    pass
        finally:
            loop.remove_reader(wake_fd)
            if monitor_fd is not None:
                loop.remove_reader(monitor_fd)
            self._close()

    def self_test(self, timeout: float = 5.0) -> bool | None:
        """Check that events arrive: write ``change <uuid>`` to the ``uevent`` file of the first
        PCI function of the Scanner's tree (which makes the kernel emit one ``change`` event;
        needs root) and wait up to ``timeout`` seconds for it. True: it arrived. False: it did not,
        and the Watcher stops listening and falls back to refreshing every ``interval`` with
        ``changed=None`` (`fallback` says why). None: nothing to test (not listening, no PCI
        function, the write refused; logged). The test event itself triggers no refresh."""
        if not self._active or self._monitor is None or self.source == "monitor":
            return None
        devices = os.path.join(self.scanner.sysfs, "bus", "pci", "devices")
        try:
            first = min(os.listdir(devices))
        except (OSError, ValueError) as e:
            log.info("fastvpd: no PCI function to test udev events with under %s (%s)", devices, e)
            return None
        path = os.path.join(devices, first, "uevent")
        tag = str(uuid.uuid4())
        arrived = self._probes[tag] = threading.Event()
        try:
            try:
                with open(path, "w") as f:
                    f.write(f"change {tag}")
            except OSError as e:
                log.info("fastvpd: cannot test udev events: writing %s: %s", path, e.strerror or e)
                return None
            if arrived.wait(timeout):
                return True
        finally:
            del self._probes[tag]
        with self._lock:
            self._abandon = (f"no {self.source} event arrived within {timeout:g} s of a change "
                             f"written to {path}")
            self._poke()
        return False

    # -- the runner's parts (a thread or run(); both use these) ----------------------------------
    def _open(self) -> None:
        """Decide what to listen to and make the wake-up pipe (called under the lock)."""
        if self._active:
            raise RuntimeError("the Watcher is already running")
        self._stopping, self._abandon = False, None
        self.source = self.fallback = None
        self._reset_batch()
        monitor, reason = self._given_monitor, None
        if monitor is not None:
            self.source = "monitor"
            start = getattr(monitor, "start", None)
            if callable(start):
                start()
        else:
            source = self._wanted_source or event_source()
            reason = _not_sysfs(self.scanner.sysfs)
            if reason is None:
                monitor, reason = _listen(source)
            if monitor is not None:
                self.source = source
        if monitor is None:
            if self.interval is None:
                raise FastVpdError(f"no udev event can arrive ({reason}) and no interval was "
                                   "given to refresh on instead")
            self.fallback = reason
            # the caller can read `fallback` now; a change while it runs is logged as a warning
            log.info("fastvpd: no udev events (%s): refreshing %s every %g s, checking every "
                     "device", reason, self.scanner.sysfs, self.interval)
        self._monitor = monitor
        self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._active = True

    def _close(self) -> None:
        with self._lock:
            if self._wake is not None:
                for fd in self._wake:
                    os.close(fd)
                self._wake = None
            self._monitor = None  # a monitor of our own closes its socket as it goes
            self._active = False

    def _poke(self) -> None:
        """Wake the runner (called under the lock, so the pipe is not closed meanwhile)."""
        if self._wake is not None:
            try:
                os.write(self._wake[1], b"!")
            except BlockingIOError:
                pass  # the pipe is full: the runner is woken already

    def _fileno(self) -> int | None:
        return None if self._monitor is None else int(self._monitor.fileno())

    def _listen_no_more(self) -> None:
        """Stop reading events (their fd is unregistered): refresh on the period instead."""
        reason = self._abandon or "the event source failed"
        self._abandon = None
        self._monitor = None
        self.source, self.fallback = None, reason
        self._full = True
        log.warning("fastvpd: udev events are not used any more (%s): %s", reason,
                    f"refreshing every {self.interval:g} s, checking every device"
                    if self.interval is not None else "no interval was given: nothing refreshes")

    def _thread_main(self) -> None:
        try:
            self._thread_loop()
        except BaseException:
            log.exception("fastvpd: the udev watcher failed and stopped")
        finally:
            self._close()

    def _thread_loop(self) -> None:
        assert self._wake is not None
        wake_fd = self._wake[0]
        poller = select.poll()
        poller.register(wake_fd, select.POLLIN)
        monitor_fd = self._fileno()
        if monitor_fd is not None:
            poller.register(monitor_fd, select.POLLIN)
        while not self._stopping:
            if self._abandon is not None:
                if monitor_fd is not None:
                    poller.unregister(monitor_fd)
                    monitor_fd = None
                self._listen_no_more()
                continue
            wait = self._due(time.monotonic())
            if wait is not None and wait <= 0:
                self._refresh()
                continue
            ready = poller.poll(None if wait is None else max(1, math.ceil(wait * 1000)))
            for fd, mask in ready:
                if fd == wake_fd:
                    _empty_pipe(wake_fd)
                elif mask & (select.POLLNVAL | select.POLLHUP):
                    self._abandon = "the monitor's socket was closed"
                else:
                    self._drain()

    # -- events and batches -----------------------------------------------------------------------
    def _reset_batch(self) -> None:
        self._pending: set[str] = set()
        self._first: float | None = None  # when the batch's first and last events came
        self._last = 0.0
        self._full = True  # the next refresh checks everything: the first one, lost events
        self._initial = True
        self._last_refresh = time.monotonic()

    def _due(self, now: float) -> float | None:
        """Seconds until the next refresh is due (<= 0: now), None when none is."""
        if self._initial:
            return 0.0
        due = []
        if self._first is not None:
            due.append(min(self._last + self.debounce, self._first + _BATCH_LIMIT * self.debounce))
        if self.interval is not None:
            due.append(self._last_refresh + self.interval)
        return min(due) - now if due else None

    def _take(self) -> frozenset[str] | None:
        """The ``changed`` of the refresh due now; the batch starts anew."""
        hint = None if self._full or self._monitor is None else frozenset(self._pending)
        self._pending = set()
        self._first, self._full, self._initial = None, False, False
        return hint

    def _mark(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._last = now

    def _drain(self) -> None:
        """Take every event the monitor has ready into the batch."""
        monitor = self._monitor
        if monitor is None or self._abandon is not None:
            return
        now = time.monotonic()
        while True:
            try:
                device = monitor.poll(timeout=0)
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    log.warning("fastvpd: udev events were lost (the socket's buffer overflowed): "
                                "the next refresh checks every device")
                    self._full = True
                    self._mark(now)
                    continue
                self._abandon = f"reading the event source failed: {e}"
                return  # the runner stops listening at its next step
            if device is None:
                return
            self._event(device, now)

    def _event(self, device: Any, now: float) -> None:
        try:
            properties = device.properties
            tag = properties.get("SYNTH_UUID")
            if tag is not None and tag in self._probes:
                self._probes[tag].set()
                return
            addresses = event_addresses(device.action, device.subsystem, device.device_path,
                                        properties)
        except Exception as e:  # a malformed event names no function we could refresh
            log.debug("fastvpd: udev event not understood: %r", e)
            return
        if addresses:
            self.events += 1
            self._pending.update(addresses)
            self._mark(now)

    # -- refreshes --------------------------------------------------------------------------------
    def _refresh(self) -> None:
        hint = self._take()
        try:
            result = self.scanner.refresh(changed=hint)
        except Exception:
            self._failed(hint)
        else:
            self._deliver(result)
        finally:
            self._last_refresh = time.monotonic()

    def _failed(self, hint: frozenset[str] | None) -> None:
        self._full = True
        what = "every device" if hint is None else f"{len(hint)} function(s)"
        log.exception("fastvpd: the refresh of %s (%s) failed; the next one checks every device",
                      self.scanner.sysfs, what)

    def _deliver(self, result: ScanResult) -> object:
        self.refreshes += 1
        if self.on_result is None:
            return None
        try:
            return self.on_result(result)
        except Exception:
            log.exception("fastvpd: on_result raised; the watcher goes on")
            return None


def _seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value >= 0


def _empty_pipe(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _listen(source: str) -> tuple[Any, str | None]:
    """A started pyudev monitor of the ``pci`` and ``net`` events of ``source``, or None and
    why there is none."""
    try:
        pyudev = _pyudev()
        context = pyudev.Context()
    except ImportError as e:
        return None, f"pyudev or libudev is missing: {e}"
    try:
        monitor = pyudev.Monitor.from_netlink(context, source=source)
        for subsystem in SUBSYSTEMS:
            monitor.filter_by(subsystem)
        try:
            monitor.set_receive_buffer_size(_RECEIVE_BUFFER)
        except OSError as e:  # needs CAP_NET_ADMIN; the default buffer may drop a big burst
            log.info("fastvpd: cannot enlarge the udev socket's buffer: %s", e)
        monitor.start()
    except OSError as e:
        return None, f"the netlink socket for {source} events was refused: {e}"
    return monitor, None
