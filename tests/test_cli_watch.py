"""`fastvpd watch` as an operator runs it: the real console script in a subprocess, watching a
synthetic tree that the test changes the way a host changes (`fastvpd.testing`'s mutators),
then Ctrl-C. Each wait is a deadline with a wide margin; no time is asserted.

The tree is changed while the command polls it, so a refresh may see a change half made (one
VF of two): the tests look for the final state among the lines, not for an exact sequence.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, IO

import pytest

from fastvpd import testing
from fastvpd.scanner import scan
from fastvpd.testing import BuiltHost
from tests.support import CLI_TIMEOUT, cli, console_script, scratch_dir


@pytest.fixture
def host() -> Iterator[BuiltHost]:
    with scratch_dir("cli-watch") as d:
        yield testing.dpu_host(os.path.join(d, "sys"), cards=1, pfs_per_card=2, vfs_per_pf=2)


class Watching:
    """A running ``fastvpd watch``: its output lines as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [console_script(), "watch", *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # as from a shell: SIGINT is not ignored whatever the test runner does
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[tuple[list[str], str | None]] = queue.Queue()
        self._readers = [threading.Thread(target=self._read, args=(f, into), daemon=True)
                         for f, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._readers:
            t.start()

    def _read(self, f: IO[str] | None, into: list[str]) -> None:
        assert f is not None
        for line in f:
            self._lines.put((into, line))
        self._lines.put((into, None))

    def wait(self, done: Callable[[], bool], what: str) -> None:
        """Take lines until ``done()``; fail after the deadline, showing what came."""
        end = time.monotonic() + CLI_TIMEOUT
        while not done():
            left = end - time.monotonic()
            try:
                into, line = self._lines.get(timeout=max(left, 0))
            except queue.Empty:
                raise AssertionError(f"not within {CLI_TIMEOUT} s: {what}; stdout {self.out}, "
                                     f"stderr {self.err}") from None
            if line is not None:
                into.append(line)
            elif self.proc.poll() is not None and all(not t.is_alive() for t in self._readers):
                raise AssertionError(f"fastvpd watch ended ({self.proc.returncode}) before "
                                     f"{what}; stdout {self.out}, stderr {self.err}")

    def started(self) -> str:
        self.wait(lambda: bool(self.err), "the line saying what it watches")
        assert self.err[0].startswith("fastvpd: watching "), self.err
        return self.err[0]

    def interrupt(self) -> int:
        """Ctrl-C; the exit status, once every line is in."""
        self.proc.send_signal(signal.SIGINT)
        try:
            status = self.proc.wait(timeout=CLI_TIMEOUT)
        finally:
            self.proc.kill()
        for t in self._readers:
            t.join(CLI_TIMEOUT)
        while not self._lines.empty():
            into, line = self._lines.get()
            if line is not None:
                into.append(line)
        return status

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


@pytest.fixture
def watching() -> Iterator[Callable[..., Watching]]:
    started: list[Watching] = []

    def start(*args: str) -> Watching:
        started.append(Watching(*args))
        return started[-1]

    yield start
    for w in started:
        w.close()


def of(events: list[dict[str, Any]], kind: str) -> dict[str, list[dict[str, Any]]]:
    """address -> its events of ``kind``, in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e["event"] == kind:
            out.setdefault(e["address"], []).append(e)
    return out


def test_json_lines_for_new_vfs_a_new_mac_and_an_unplugged_vf(
        host: BuiltHost, watching: Callable[..., Watching]) -> None:
    w = watching("--sysfs", host.root, "--interval", "0.05", "--json")
    header = w.started()
    assert f"watching {host.root} (6 PCI functions): a rescan every 0.05 s" in header
    assert "is not a sysfs mount" in header and header.endswith("Ctrl-C stops\n")
    first, second = host.pfs

    before = set(host.vfs)
    testing.set_vf_count(host, first, 4)
    new = sorted(set(host.vfs) - before)
    w.wait(lambda: set(of(w.events(), "added")) >= set(new)
           and of(w.events(), "changed").get(first, [{}])[-1].get("changed", {}).get(
               "num_vfs", [0, 0])[1] == 4, "the new VFs and their PF's new VF count")
    expected = scan(host.root)
    for address in new:
        (added,) = of(w.events(), "added")[address]
        device = added["device"]
        assert device["address"] == address and device["parent_addr"] == first
        assert device["vf_num"] == host.functions[address].vf_num
        assert device == expected[address].to_dict()
    assert not of(w.events(), "removed")

    mark = len(w.out)
    old_mac = host.functions[second].macs[0]
    testing.set_mac(host, second, "0c:42:a1:ff:00:01")
    w.wait(lambda: second in of(w.events()[mark:], "changed"), "the new MAC")
    (change,) = of(w.events()[mark:], "changed")[second]
    assert change["changed"] == {"mac_address": [old_mac, "0c:42:a1:ff:00:01"]}
    assert set(change) == {"time", "event", "address", "changed"}
    second_vfs = [a for a in host.vfs if host.functions[a].parent_addr == second]
    w.wait(lambda: set(of(w.events()[mark:], "changed")) >= {second, *second_vfs},
           "the VFs' PF MAC")
    for vf in second_vfs:  # a VF reports its PF's MAC as its pf_mac_address
        assert of(w.events()[mark:], "changed")[vf][-1]["changed"] == {
            "pf_mac_address": [old_mac, "0c:42:a1:ff:00:01"]}

    mark = len(w.out)
    gone = new[-1]
    testing.unplug(host, gone)
    w.wait(lambda: gone in of(w.events()[mark:], "removed"), "the unplugged VF")
    (removal,) = of(w.events()[mark:], "removed")[gone]
    assert removal == {"time": removal["time"], "event": "removed", "address": gone,
                       "dev_type": "type-VF"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", removal["time"])

    assert w.interrupt() == 0
    assert len(w.err) == 1, w.err  # the header only: no warning, no traceback
    assert all(e["event"] in ("added", "removed", "changed") for e in w.events())


def test_text_lines_name_the_device_or_what_changed(host: BuiltHost,
                                                    watching: Callable[..., Watching]) -> None:
    w = watching("--sysfs", host.root, "--interval", "0.05")
    w.started()
    first, second = host.pfs
    before = set(host.vfs)
    testing.set_vf_count(host, first, 3)
    (new,) = set(host.vfs) - before
    f = host.functions[new]
    w.wait(lambda: any(f" added   {new}  " in line for line in w.out), "the new VF")
    (line,) = [line for line in w.out if f" added   {new}  " in line]
    assert re.match(r"\d\d:\d\d:\d\d added   ", line)
    assert line.rstrip("\n").split(f" added   {new}  ")[1].split("  ") == [
        "type-VF", f"15b3:{f.product_id}", f"vf {f.vf_num} of {first}", f"driver {f.driver}",
        f"netdev {f.netdevs[0]}", f.macs[0], f"serial {host.cards[0].serial}"]

    old_mac = host.functions[second].macs[0]
    testing.set_mac(host, second, "0c:42:a1:ff:00:02")
    changed = f" changed {second}  mac_address: {old_mac} -> 0c:42:a1:ff:00:02\n"
    w.wait(lambda: any(line.endswith(changed) for line in w.out), "the new MAC")
    testing.unplug(host, new)
    w.wait(lambda: any(line.endswith(f" removed {new}  type-VF\n") for line in w.out),
           "the removal")
    assert w.interrupt() == 0
    assert len(w.err) == 1 and "Traceback" not in "".join(w.out + w.err)


def test_ctrl_c_before_any_change_exits_0_quietly(host: BuiltHost,
                                                  watching: Callable[..., Watching]) -> None:
    w = watching("--sysfs", host.root, "--interval", "0.05", "--json")
    w.started()
    assert w.interrupt() == 0
    assert w.out == [] and len(w.err) == 1


def test_a_closed_stdout_ends_it_quietly(host: BuiltHost) -> None:
    """``fastvpd watch | head -n 1``: a line after the first finds the pipe closed, and the
    command exits 0 without a word."""
    script = (f"{console_script()} watch --sysfs {host.root} --interval 0.05 --json | head -n 1; "
              "echo \"status ${PIPESTATUS[0]}\" >&2")
    proc = subprocess.Popen(["bash", "-c", script], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        end = time.monotonic() + CLI_TIMEOUT
        while not err and time.monotonic() < end:
            time.sleep(0.01)
        assert err and err[0].startswith("fastvpd: watching "), err
        testing.set_vf_count(host, host.pfs[0], 4)
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["event"] in ("added", "changed")
        n = 0
        while proc.poll() is None and time.monotonic() < end:  # head is gone: more lines
            n += 1
            testing.set_mac(host, host.pfs[1], f"0c:42:a1:ff:00:{n % 256:02x}")
            time.sleep(0.1)
        assert proc.poll() is not None, "fastvpd watch went on writing to a closed pipe"
        reader.join(CLI_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
    assert err[1:] == ["status 0\n"], err


def test_a_root_that_is_no_sysfs_tree_is_one_error_line(host: BuiltHost) -> None:
    proc = cli("watch", "--sysfs", os.path.dirname(host.root))
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("fastvpd: error: ") and f"--sysfs {host.root}" in line


def test_on_the_real_sys_it_listens_for_events(watching: Callable[..., Watching]) -> None:
    """On this machine's /sys the command uses the Watcher's events (pyudev is installed by the
    test command), and a ``change`` uevent that changes no fact prints nothing."""
    from tests.support import require

    require("pyudev", "pyudev")
    w = watching("--json", "--interval", "60")
    header = w.started()
    assert " events, and a probe of every PF every 60 s; Ctrl-C stops" in header, header
    devices = sorted(os.listdir("/sys/bus/pci/devices"))
    if devices and os.access(f"/sys/bus/pci/devices/{devices[0]}/uevent", os.W_OK):
        try:
            with open(f"/sys/bus/pci/devices/{devices[0]}/uevent", "w") as f:
                f.write("change")
        except OSError:
            pass  # a read-only sysfs: the rest of the test stands
    assert w.interrupt() == 0
    assert len(w.err) == 1, w.err
    # a VPD read that outlasted the first refresh may come as a change: nothing else can
    assert all(e["event"] == "changed" for e in w.events()), w.out
