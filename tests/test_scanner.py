"""The periodic Scanner: incremental refresh equal to a cold scan, VPD in the background with a
deadline, threads and asyncio, and an operable lifetime (close, bounded memory, logging)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import shutil
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastvpd
from fastvpd import FastVpdError, ScanResult, Scanner, testing
from fastvpd.testing import DpuSpec, HostSpec, NicSpec
from tests.host_strategies import host_specs
from tests.support import fast_temp_base, scratch_dir


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    if fast_temp_base() is None:
        yield tmp_path
        return
    with scratch_dir("scanner") as d:
        yield Path(d)


def same_as_cold_scan(result: ScanResult, root: str, **options: Any) -> None:
    """The refreshed inventory is what a cold scan of the tree gives: every device, every
    problem, and Nova's dicts (as JSON text: key order included)."""
    cold = fastvpd.scan(root, **options)
    assert list(result.inventory) == list(cold)
    assert list(result.inventory.values()) == list(cold.values())
    assert json.dumps(result.inventory.to_nova()) == json.dumps(cold.to_nova())
    assert result.inventory.problems == cold.problems


def counting_reader(calls: list[str], delay: float = 0.0) -> Callable[[str], bytes]:
    def read(path: str) -> bytes:
        calls.append(path)
        if delay:
            time.sleep(delay)
        return fastvpd.scanner.read_vpd_file(path)
    return read


def vpd_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fastvpd-vpd")]


# -- the first refresh and a quiet host ------------------------------------------------------------

def test_first_refresh_reports_everything_added_and_equals_a_cold_scan(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=2, pfs_per_card=2, vfs_per_pf=4,
                            nics=[NicSpec(vpd=True)])
    with Scanner(host) as scanner:
        assert scanner.last is None
        result = scanner.refresh()
        assert result.added == tuple(host.addresses) and result.removed == result.changed == ()
        assert result.pending_vpd == ()
        same_as_cold_scan(result, host.root)
        assert scanner.last is result


def test_a_quiet_host_costs_no_walk_and_gives_the_same_inventory(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=2, pfs_per_card=2, vfs_per_pf=4)
    calls: list[str] = []
    with Scanner(host, vpd_reader=counting_reader(calls)) as scanner:
        first = scanner.refresh()
        assert sorted(calls) == sorted(f"{host.root}/bus/pci/devices/{a}/vpd" for a in host.pfs)
        for changed in (None, set(), frozenset(), []):
            again = scanner.refresh(changed)
            assert again.inventory is first.inventory
            assert (again.added, again.removed, again.changed) == ((), (), ())
        assert scanner.walks == 1 and len(calls) == len(host.pfs)  # VPD read once per card


def test_refresh_rejects_what_is_not_a_set_of_addresses(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=1, pfs_per_card=1, vfs_per_pf=1)
    with Scanner(host) as scanner:
        with pytest.raises(TypeError, match="not one address"):
            scanner.refresh(host.pfs[0])
        with pytest.raises(TypeError, match="not a PCI address"):
            scanner.refresh([5])
    with pytest.raises(ValueError, match="vpd_deadline"):
        Scanner(host, vpd_deadline=-1)
    with pytest.raises(TypeError, match="vpd_reader"):
        Scanner(host, vpd_reader="no")
    with pytest.raises(fastvpd.SysfsError):
        Scanner(scratch / "nope").refresh()


# -- changes between refreshes -------------------------------------------------------------------

def test_vf_count_changes_are_seen_with_and_without_listing(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=1, pfs_per_card=2, vfs_per_pf=4, total_vfs=8)
    pf = host.pfs[0]
    with Scanner(host) as scanner:
        scanner.refresh()
        testing.set_vf_count(host, pf, 6)
        grown = scanner.refresh(set())  # no PCI event claimed: the PF probe sees it anyway
        assert set(grown.added) == {a for a in host.vfs if host.functions[a].parent_addr == pf
                                    and host.functions[a].vf_num >= 4}
        assert pf in grown.changed  # num_vfs
        same_as_cold_scan(grown, host.root)
        testing.set_vf_count(host, pf, 1)
        shrunk = scanner.refresh()
        assert len(shrunk.removed) == 5 and pf in shrunk.changed
        same_as_cold_scan(shrunk, host.root)


def test_a_refresh_after_a_change_reads_only_what_changed(scratch: Path) -> None:
    """One PF's VF count changes: the refresh re-reads that PF and computes its VFs; the other
    PFs and functions are not read again (their records are the last walk's)."""
    host = testing.dpu_host(scratch, cards=4, pfs_per_card=2, vfs_per_pf=32, total_vfs=64,
                            nics=[NicSpec(functions=2)], vf_driver="vfio-pci", vf_netdevs=False)
    with Scanner(host) as scanner:
        first = scanner.refresh()
        cold = first.inventory.counters["total"]
        quiet = scanner.refresh(set())
        assert quiet.syscalls < 12 * len(host.pfs)  # a handful per PF, nothing per VF
        testing.set_vf_count(host, host.pfs[3], 40)
        result = scanner.refresh(set())
        assert len(result.added) == 8 and result.changed == (host.pfs[3],)
        same_as_cold_scan(result, host.root)
        walked = result.inventory.counters
        assert walked["read"] < 20 and walked["total"] < cold / 3, (walked, cold)
        assert result.syscalls > walked["total"]  # the probes are counted too


def test_a_pf_mac_change_changes_the_pf_and_every_vf_of_it(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=1, pfs_per_card=2, vfs_per_pf=3)
    pf = host.pfs[1]
    with Scanner(host) as scanner:
        scanner.refresh()
        testing.set_mac(host, pf, "b8:ce:f6:12:34:56")
        result = scanner.refresh(set())
        assert set(result.changed) == {pf} | {a for a in host.vfs
                                               if host.functions[a].parent_addr == pf}
        assert result.inventory[pf].mac_address == "b8:ce:f6:12:34:56"
        same_as_cold_scan(result, host.root)


# The prober keeps each PF's net/ open and lists it again only when its fstat moved or a name it
# listed lost its address file: each way a PF's netdevs change without a PCI event.
def _rename_netdev(host: testing.BuiltHost, pf: str, new: str) -> None:
    f = host.functions[pf]
    old = f.netdevs[0]
    os.rename(f"{f.path}/net/{old}", f"{f.path}/net/{new}")
    os.remove(f"{host.root}/class/net/{old}")
    os.symlink(os.path.relpath(f"{f.path}/net/{new}", f"{host.root}/class/net"),
               f"{host.root}/class/net/{new}")


@pytest.mark.parametrize("change", ["rename", "add", "remove", "replace_by_link", "mac"])
def test_netdev_changes_without_a_pci_event_are_seen(scratch: Path, change: str) -> None:
    host = testing.dpu_host(scratch, cards=1, pfs_per_card=2, vfs_per_pf=2)
    pf = host.pfs[0]
    f = host.functions[pf]
    with Scanner(host) as scanner:
        scanner.refresh()
        assert scanner.refresh(set()).changed == ()  # the held net/ answers from its names
        if change == "rename":
            _rename_netdev(host, pf, "enp3s0f0v2")
        elif change == "add":
            testing.add_netdev(host, pf, "aaa0", "02:00:00:00:00:01")
        elif change == "remove":
            shutil.rmtree(f"{f.path}/net/{f.netdevs[0]}")
        elif change == "replace_by_link":  # same name, same count of directories: a link now
            os.rename(f"{f.path}/net/{f.netdevs[0]}", f"{f.path}/moved")
            os.symlink("../moved", f"{f.path}/net/{f.netdevs[0]}")
            os.chmod(f"{f.path}/moved/address", 0o644)
            Path(f"{f.path}/moved/address").write_text("02:00:00:00:00:03\n")
        else:
            testing.set_mac(host, pf, "02:00:00:00:00:02")
        result = scanner.refresh(set())
        assert pf in result.changed
        same_as_cold_scan(result, host.root)
        again = scanner.refresh(set())
        assert again.changed == () and again.inventory is result.inventory


@pytest.mark.parametrize("breakage", ["net_is_a_file", "address_missing", "address_fifo",
                                      "address_garbage", "stray_file_in_net"])
def test_a_hostile_net_dir_is_probed_as_a_walk_reads_it(scratch: Path, breakage: str) -> None:
    """Whatever a PF's net/ holds, each refresh(set()) equals a cold scan, when it appears
    between two refreshes and on the refreshes after (the held net/ must not hide it)."""
    host = testing.dpu_host(scratch, cards=1, pfs_per_card=2, vfs_per_pf=2)
    f = host.functions[host.pfs[1]]
    net, address = f"{f.path}/net", f"{f.path}/net/{f.netdevs[0]}/address"
    with Scanner(host) as scanner:
        scanner.refresh()
        if breakage == "net_is_a_file":
            shutil.rmtree(net)
            Path(net).write_text("eth0\n")
        elif breakage == "address_missing":
            os.remove(address)
        elif breakage == "address_fifo":
            os.remove(address)
            os.mkfifo(address)
        elif breakage == "address_garbage":
            os.chmod(address, 0o644)
            Path(address).write_text("not a mac\n")
        else:
            Path(f"{net}/stray").write_text("x")
        for _ in range(3):
            same_as_cold_scan(scanner.refresh(set()), host.root)


def test_an_unchanged_refresh_costs_a_few_syscalls_per_pf_and_holds_two_fds_per_pf(
        scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=4, pfs_per_card=2, vfs_per_pf=16,
                            vf_driver="vfio-pci", vf_netdevs=False)
    fds = len(os.listdir("/proc/self/fd"))
    with Scanner(host) as scanner:
        scanner.refresh()
        assert len(os.listdir("/proc/self/fd")) == fds + 2 + 2 * len(host.pfs)
        quiet = scanner.refresh(set())
        # per PF: 3 virtfn links and the driver (readlinkat), net/ (fstat), its netdev's
        # address (openat, fstat, read, close); no listing, no path opened twice
        assert quiet.changed == () and quiet.syscalls == 9 * len(host.pfs)
    assert len(os.listdir("/proc/self/fd")) == fds


def test_a_replaced_card_is_read_again(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=2, pfs_per_card=2, vfs_per_pf=2)
    calls: list[str] = []
    with Scanner(host, vpd_reader=counting_reader(calls)) as scanner:
        scanner.refresh()
        assert len(calls) == 4
        testing.replace_card(host, 1, "MT9999X12345")
        result = scanner.refresh()  # the listing shows new inode numbers
        card = {a for a, f in host.functions.items() if f.card == 1}
        assert set(result.changed) == card and len(calls) == 6
        assert {result.inventory[a].card_serial_number for a in card} == {"MT9999X12345"}
        same_as_cold_scan(result, host.root)


def test_unplug_and_named_addresses(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=2, pfs_per_card=1, vfs_per_pf=2,
                            nics=[NicSpec(functions=2)])
    nic = next(a for a, f in host.functions.items() if f.dev_type == "type-PCI" and f.netdevs)
    pf = host.pfs[1]
    gone = {pf} | {a for a in host.vfs if host.functions[a].parent_addr == pf}
    with Scanner(host) as scanner:
        scanner.refresh()
        testing.unplug(host, pf)
        testing.unplug(host, nic)
        result = scanner.refresh({pf, nic})  # what udev names
        assert set(result.removed) == gone | {nic} and result.added == ()
        same_as_cold_scan(result, host.root)


# A sequence of changes, each followed by a refresh that must equal a cold scan.
_CHANGES = st.lists(st.tuples(st.sampled_from(["vfs", "mac", "replace", "unplug", "nothing"]),
                              st.integers(0, 1000)), min_size=1, max_size=6)


def _apply(host: testing.BuiltHost, change: str, n: int) -> set[str] | None:
    """Make the change; returns the addresses udev would name (None: not known)."""
    pfs = host.pfs
    if change == "vfs" and pfs:
        pf = pfs[n % len(pfs)]
        total = host.functions[pf].total_vfs or 0
        if host.spec.dpus[host.functions[pf].card].sriov_files:
            before = set(host.functions)
            testing.set_vf_count(host, pf, n % (total + 1))
            return (before ^ set(host.functions)) | {pf}
    if change == "mac":
        with_mac = [a for a in pfs if host.functions[a].netdevs]
        if with_mac:
            pf = with_mac[n % len(with_mac)]
            testing.set_mac(host, pf, "02:ee:%02x:%02x:%02x:%02x" % (n >> 8 & 255, n & 255, 1, 2))
            return set()  # no PCI event: the PF probe must see it
    if change == "replace":
        cards = [c.index for c in host.cards
                 if c.serial and any(a in host.functions for a in c.pfs)]
        if cards:
            card = cards[n % len(cards)]
            testing.replace_card(host, card, f"MT{n:04d}X{card:05d}")
            return {a for a, f in host.functions.items() if f.card == card}
    if change == "unplug" and host.addresses:
        candidates = [a for a, f in host.functions.items() if f.dev_type != "type-VF"]
        if candidates:
            address = candidates[n % len(candidates)]
            before = set(host.functions)
            testing.unplug(host, address)
            return before - set(host.functions)
    return None


@settings(max_examples=max(10, settings().max_examples // 3), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(spec=host_specs, changes=_CHANGES, named=st.booleans())
def test_refresh_equals_a_cold_scan_after_any_changes(spec: HostSpec, changes: list[tuple[str, int]],
                                                      named: bool) -> None:
    with scratch_dir("scanner-gen") as d:
        host = testing.build_host(os.path.join(d, "sys"), spec)
        with Scanner(host) as scanner:
            previous = scanner.refresh().inventory
            for change, n in changes:
                udev = _apply(host, change, n)
                result = scanner.refresh(udev if named and udev is not None else None)
                same_as_cold_scan(result, host.root)
                cold_before = {a: previous[a] for a in previous}
                cold_now = {a: result.inventory[a] for a in result.inventory}
                assert set(result.added) == set(cold_now) - set(cold_before)
                assert set(result.removed) == set(cold_before) - set(cold_now)
                differ = {a for a in cold_now if a in cold_before
                          and _shown(cold_now[a]) != _shown(cold_before[a])}
                assert set(result.changed) == differ, (change, n)
                previous = result.inventory


def _shown(device: fastvpd.PciDevice) -> tuple[Any, ...]:
    """What a scan says of a device, without the details of an inferred VF (`Inventory.diff`)."""
    d = device.to_dict()
    if device.is_vf:
        for key in ("driver", "netdevs", "mac_address"):
            d.pop(key)
        d["problems"] = [p for p in d["problems"] if not p.startswith(("driver:", "net:"))]
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in d.items()))


# -- VPD in the background -------------------------------------------------------------------------

def test_a_slow_vpd_read_leaves_the_serial_pending_and_a_later_refresh_picks_it_up(
        scratch: Path, caplog: pytest.LogCaptureFixture) -> None:
    host = testing.dpu_host(scratch, cards=1, pfs_per_card=2, vfs_per_pf=2)
    calls: list[str] = []
    deadline = 0.3
    with Scanner(host, vpd_deadline=deadline, vpd_reader=counting_reader(calls, delay=2.0)) as s:
        caplog.set_level(logging.INFO, logger="fastvpd")
        t0 = time.monotonic()
        first = s.refresh()
        took = time.monotonic() - t0
        assert took < deadline + 1.0  # the deadline, with a generous margin; never the 2 s read
        assert set(first.pending_vpd) == set(host.pfs)
        assert all(first.inventory[a].card_serial_number is None for a in host.addresses)
        assert sum("takes longer than" in r.message for r in caplog.records) == 2
        again = s.refresh(set())
        assert again.pending_vpd == first.pending_vpd and again.changed == ()
        time.sleep(2.2)
        later = s.refresh(set())
        assert later.pending_vpd == () and set(later.changed) == set(host.addresses)
        assert all(later.inventory[a].card_serial_number == testing.dpu_serial(0)
                   for a in host.addresses)
        same_as_cold_scan(later, host.root)
        assert len(calls) == 2  # once per device identity
        assert sum("finished after" in r.message for r in caplog.records) == 2


def test_reads_that_never_return_do_not_pile_up_threads(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=4, pfs_per_card=2, vfs_per_pf=1)
    release = threading.Event()
    started: list[str] = []

    def stuck(path: str) -> bytes:
        started.append(path)
        release.wait(30)
        return b""

    before = len(vpd_threads())
    scanner = Scanner(host, vpd_deadline=0.05, vpd_reader=stuck, max_vpd_reads=2)
    try:
        for _ in range(5):
            result = scanner.refresh()
            assert set(result.pending_vpd) == set(host.pfs)
        assert len(vpd_threads()) - before <= 2 and len(started) == 2
    finally:
        release.set()
        scanner.close()
    assert len(vpd_threads()) == before


def test_vpd_problems_read_as_a_cold_scan_words_them(scratch: Path) -> None:
    """The Scanner reads VPD itself; what goes wrong reads as scan() says it."""
    host = testing.dpu_host(scratch, cards=3, pfs_per_card=1, vfs_per_pf=1)
    testing.fifo_attribute(host, host.pfs[0], "vpd")
    testing.set_attribute(host, host.pfs[1], "vpd", b"\x82" * 40000, mode=0o600)
    testing.directory_attribute(host, host.pfs[2], "vpd")
    with Scanner(host) as scanner:
        result = scanner.refresh()
    same_as_cold_scan(result, host.root)
    assert any("not a regular file (a FIFO)" in p for p in result.inventory[host.pfs[0]].problems)
    assert any("longer than 32768 bytes" in p for p in result.inventory[host.pfs[1]].problems)


def test_a_failing_reader_is_a_problem_on_the_device(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=1, pfs_per_card=1, vfs_per_pf=1)

    def broken(path: str) -> bytes:
        raise PermissionError(13, "Permission denied", path)

    with Scanner(host, vpd_reader=broken) as scanner:
        pf = scanner.refresh().inventory[host.pfs[0]]
    assert pf.card_serial_number is None
    assert pf.problems == (f"vpd: unreadable: Permission denied (EACCES) "
                           f"({host.root}/bus/pci/devices/{host.pfs[0]}/vpd)",)


def test_vf_vpd_and_strict_vpd_as_scan(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=1, pfs_per_card=2, vfs_per_pf=2, vf_vpd=True)
    with Scanner(host, vf_vpd=True, strict_vpd=True) as scanner:
        same_as_cold_scan(scanner.refresh(), host.root, vf_vpd=True, strict_vpd=True)
    with Scanner(host, read_vpd=False) as scanner:
        same_as_cold_scan(scanner.refresh(), host.root, read_vpd=False)


# -- threads and asyncio ---------------------------------------------------------------------------

def test_concurrent_refreshes_share_walks(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=2, pfs_per_card=2, vfs_per_pf=8)
    with Scanner(host, vpd_deadline=5, vpd_reader=counting_reader([], delay=0.5)) as scanner:
        results: list[ScanResult] = []
        first = threading.Thread(target=lambda: results.append(scanner.refresh()))
        first.start()
        time.sleep(0.1)  # the first refresh waits for its VPD reads (0.5 s)
        barrier = threading.Barrier(15)

        def call() -> None:
            barrier.wait()
            results.append(scanner.refresh())

        threads = [threading.Thread(target=call) for _ in range(15)]
        for t in threads:
            t.start()
        for t in threads + [first]:
            t.join()
        assert len(results) == 16
        late = [r for r in results if r.added == ()]  # the first refresh added everything
        assert len(late) == 15 and len({id(r) for r in late}) == 1  # one refresh for fifteen
        assert late[0].inventory is results[0].inventory or results[0].added == ()
        assert scanner.walks == 1  # and it found nothing changed: no second walk


def test_a_refresh_with_nothing_changed_shares_the_one_in_flight(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=1, pfs_per_card=1, vfs_per_pf=2)
    with Scanner(host, vpd_deadline=5, vpd_reader=counting_reader([], delay=0.4)) as scanner:
        out: list[ScanResult] = []
        t = threading.Thread(target=lambda: out.append(scanner.refresh()))
        t.start()
        time.sleep(0.1)
        quiet = scanner.refresh(set())
        t.join()
        assert quiet is out[0] and scanner.walks == 1


def test_refresh_async_keeps_the_event_loop_ticking(scratch: Path) -> None:
    """A loop ticking every millisecond keeps ticking while a 16x1024 host is scanned."""
    host = testing.dpu_host(scratch, cards=8, pfs_per_card=2, vfs_per_pf=1024,
                            vf_driver="vfio-pci", vf_netdevs=False)

    async def main() -> tuple[int, float, ScanResult]:
        ticks = 0
        gaps: list[float] = []
        done = False

        async def tick() -> None:
            nonlocal ticks
            last = time.monotonic()
            while not done:
                await asyncio.sleep(0.001)
                now = time.monotonic()
                gaps.append(now - last)
                last = now
                ticks += 1

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.01)
        before = ticks
        with Scanner(host) as scanner:
            result = await scanner.refresh_async()
        done = True
        await ticker
        return ticks - before, max(gaps), result

    ticks, worst_gap, result = asyncio.run(main())
    assert len(result.added) == len(host.addresses)
    assert ticks >= 5  # the loop ran during the refresh
    assert worst_gap < 0.5  # generous: a blocked loop would miss the whole refresh


# -- lifetime --------------------------------------------------------------------------------------

def test_close_leaves_no_thread_and_no_fd(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=2, pfs_per_card=2, vfs_per_pf=2)
    fds = len(os.listdir("/proc/self/fd"))
    threads = len(vpd_threads())
    scanner = Scanner(host)
    scanner.refresh()
    assert len(vpd_threads()) > threads
    scanner.close()
    scanner.close()  # idempotent
    assert len(vpd_threads()) == threads and len(os.listdir("/proc/self/fd")) == fds
    with pytest.raises(FastVpdError, match="closed"):
        scanner.refresh()


def test_memory_stays_bounded_over_many_refreshes(scratch: Path) -> None:
    host = testing.dpu_host(scratch, cards=2, pfs_per_card=2, vfs_per_pf=16, total_vfs=32)
    with Scanner(host) as scanner:
        scanner.refresh()
        for _ in range(200):
            scanner.refresh()
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for i in range(10_000):
                scanner.refresh(set())
                if i % 2500 == 0:  # now and then a change, and a walk
                    testing.set_vf_count(host, host.pfs[0], 16 + (i // 2500) % 2)
                    scanner.refresh()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
    assert grown < 256 * 1024, grown  # stated bound: a quarter MiB over 10,000 refreshes


def test_a_pf_read_link_by_link_is_logged_once(scratch: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    host = testing.dpu_host(scratch, cards=1, pfs_per_card=1, vfs_per_pf=2, sriov_files=False)
    caplog.set_level(logging.INFO, logger="fastvpd")
    with Scanner(host) as scanner:
        for _ in range(3):
            scanner.refresh()
    fell = [r for r in caplog.records if "fell back" in r.message]
    assert len(fell) == 1 and fell[0].levelno == logging.WARNING
