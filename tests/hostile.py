"""Hostile sysfs trees drawn by Hypothesis: a sound synthetic host, then mutations of it.

Shared by tests/test_hostile_generated.py (a few examples in every run) and fuzz/fuzz_scan.py (the
long run). `host_specs` draws a host (DPUs on the fast path and read link by link, NICs, a drive,
root ports, a domain above ffff); `mutations(host)` draws what to break in the built tree:

- contents: empty, garbage, huge or odd numbers in any attribute file (IDs, class, numa_node,
  the sriov_* files, vpd, a netdev's address), ``sriov_totalvfs`` below the number of links;
- types: a FIFO, a directory or a symlink where a file belongs, a file or a directory where a link
  (driver, physfn, virtfn<N>) or net/ belongs, a file as a ``bus/pci/devices`` entry;
- links: dangling device entries and virtfn links, driver/physfn/virtfn re-pointed anywhere
  (itself, nowhere, /dev/zero, another function, a name without slash), the link liars of
  `fastvpd.testing` (virtfn to another PF, to another PF's VF, two links to one VF, to a look-alike
  outside the tree), a second ``bus/pci/devices`` entry for a function's directory;
- names: entries that are no PCI address as the kernel names one (upper case, a 5-digit domain
  with a leading zero, white space, 255 bytes), virtfn links with non-canonical names.

`apply` makes a mutation and returns the functions whose facts it may change ("touched": the
function itself; a PF's VFs too, which inherit from it; a VF's PF, whose layout check reads the
first VF). `check` scans the tree and asserts what must hold whatever was broken: the scan
completes (a FIFO must never block it), raises nothing, leaks no fd, its problems are text, Nova's
dicts can be made, and every function not touched is exact: its facts and Nova dict equal
`BuiltHost.expected()` and it carries no problem beyond the note of a PF read link by link.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from fastvpd import testing
from fastvpd.scanner import scan
from fastvpd.testing import BuiltHost, DpuSpec, HostSpec, NicSpec, OtherSpec
from tests.reference import scan as reference

__all__ = ["host_specs", "mutations", "Mutation", "apply", "check", "SCAN_TIMEOUT"]

#: Seconds a scan of one of these small trees may take before it counts as blocked.
SCAN_TIMEOUT = 30.0

host_specs = st.builds(
    HostSpec,
    dpus=st.lists(st.builds(
        DpuSpec, pfs=st.integers(1, 2), vfs_per_pf=st.integers(0, 4),
        total_vfs=st.sampled_from([None, 6]), sriov_files=st.booleans(),
        vf_stride=st.integers(1, 2), vf_vpd=st.booleans(),
        pf_driver=st.sampled_from(["mlx5_core", None])), min_size=1, max_size=3),
    nics=st.lists(st.builds(NicSpec, vpd=st.booleans()), max_size=1),
    others=st.lists(st.builds(OtherSpec), max_size=1),
    domain=st.sampled_from([0, 0x10000]),
    bridges=st.booleans(),
)

FILES = ("vendor", "device", "class", "numa_node", "vpd", "sriov_totalvfs", "sriov_offset",
         "sriov_stride", "sriov_vf_device", "subsystem_vendor", "config", "sriov_numvfs")
LINKS = ("driver", "physfn", "virtfn0")
CONTENTS = (b"", b"\n", b"0x", b"0xzz\n", b"-1\n", b"-2\n", b"0x10000\n", b"99999999999\n",
            b"0\n", b"1\n", b"7\n", b"65536\n", b"0x15b3 \n", b" 0x15b3\n", b"0x15B3\n",
            b"0x15b3\n\n", b"\xff\xfe\x00\n", b"1" * 5000, b"\x82\x05\x00hello\x78",
            b"aa:bb:cc:dd:ee:ff\n", b"AA:BB:CC:DD:EE:FF\n", b"not-a-mac\n")
TARGETS = ("driver", ".", "..", "../nowhere", "/dev/zero", "/", "x" * 300, "../../../bus/pci/drivers/",
           "drivers/x", "../../../bus/pci/drivers/fake_drv")
BAD_NAMES = ("0000:0A:00.0", "00000:03:00.0", "0000:03:00.0 ", " 0000:03:00.0", "0000:03:20.0",
             "0000:03:00.8", "0000:3:00.0", "10000:03:00.0x", "0000:03:00.0\n", "virtfn0",
             "0" * 255, "platform")


@dataclass(frozen=True)
class Mutation:
    """One thing broken in a tree: `kind` says what, `address` where, `arg` with what."""

    kind: str
    address: str
    arg: Any = None


@st.composite
def mutations(draw: st.DrawFn, host: BuiltHost) -> list[Mutation]:
    """1 to 4 mutations of the built `host` (see the module docstring)."""
    fs = host.functions
    addresses = host.addresses
    pfs = [a for a in host.pfs if fs[a].vfs]
    vfs = host.vfs
    kinds = ["content", "fifo", "directory", "remove", "symlink_file", "file_link", "relink",
             "dangling_device", "alias", "bad_name", "file_entry"]
    if pfs:
        kinds += ["dangling_virtfn", "liar", "liar", "liar", "virtfn_name", "below_links"]
    out = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(kinds))
        address = draw(st.sampled_from(addresses))
        if kind == "content":
            f = fs[address]
            name = draw(st.sampled_from(FILES + tuple(f"net/{n}/address" for n in f.netdevs)))
            out.append(Mutation(kind, address, (name, draw(st.sampled_from(CONTENTS)))))
        elif kind in ("fifo", "directory", "remove", "symlink_file"):
            name = draw(st.sampled_from(FILES + ("net", "driver")))
            out.append(Mutation(kind, address, name))
        elif kind == "file_link":  # a regular file or a directory where a link belongs
            out.append(Mutation(kind, address, (draw(st.sampled_from(LINKS)), draw(st.booleans()))))
        elif kind == "relink":
            name = draw(st.sampled_from(LINKS))
            target = draw(st.one_of(st.sampled_from(TARGETS),
                                    st.sampled_from(addresses).map(lambda a: "../" + a)))
            out.append(Mutation(kind, address, (name, target)))
        elif kind == "dangling_device":
            out.append(Mutation(kind, address))
        elif kind == "alias":  # a second, valid name for the directory of `address`
            out.append(Mutation(kind, address, "%04x:ff:1f.7" % host.spec.domain))
        elif kind == "bad_name":
            out.append(Mutation(kind, address, draw(st.sampled_from(BAD_NAMES))))
        elif kind == "file_entry":
            out.append(Mutation(kind, address))
        else:
            pf = draw(st.sampled_from(pfs))
            n = draw(st.integers(0, len(fs[pf].vfs) - 1))
            if kind == "liar":
                other_pfs = [a for a in host.pfs if a != pf]
                foreign = [v for v in vfs if fs[v].parent_addr != pf]
                liar = draw(st.sampled_from(["duplicate_virtfn", "virtfn_outside_tree"]
                                            + ["virtfn_to_pf"] * bool(other_pfs)
                                            + ["virtfn_to_foreign_vf"] * bool(foreign)))
                arg: Any = None
                if liar == "virtfn_to_pf":
                    arg = draw(st.sampled_from(other_pfs))
                elif liar == "virtfn_to_foreign_vf":
                    arg = draw(st.sampled_from(foreign))
                elif liar == "duplicate_virtfn":
                    arg = draw(st.integers(0, len(fs[pf].vfs) - 1))
                out.append(Mutation(liar, pf, (n, arg)))
            elif kind == "virtfn_name":
                out.append(Mutation(kind, pf, (n, draw(st.sampled_from(
                    [f"virtfn0{n}", f"virtfn{n}x", f"virtfn{n + 100}", "virtfn", "virtfn-1"])))))
            elif kind == "below_links":
                out.append(Mutation(kind, pf, len(fs[pf].vfs) - 1))
            else:
                out.append(Mutation(kind, pf, n))
    return out


def _family(host: BuiltHost, address: str) -> set[str]:
    """A function with what inherits from it or checks it: a PF and its VFs; a VF and its PF."""
    f = host.functions[address]
    out = {address, *f.vfs}
    if f.parent_addr:
        out.add(f.parent_addr)
    return out


def _below(host: BuiltHost, address: str) -> set[str]:
    """The family of `address` and of every function whose directory is inside its directory
    (a root port's holds its devices')."""
    fs = host.functions
    inside = fs[address].path + "/"
    out = _family(host, address)
    for a, f in fs.items():
        if f.path.startswith(inside):
            out |= _family(host, a)
    return out


def apply(host: BuiltHost, m: Mutation) -> set[str]:
    """Make mutation `m` in the tree; returns the functions it touched (see the module doc).

    A mutation that cannot be made (its target was removed by an earlier one) is skipped, its
    functions still counted as touched."""
    fs = host.functions
    touched = _family(host, m.address)
    base = f"{host.root}/bus/pci/devices"
    if m.kind in ("virtfn_to_pf", "virtfn_to_foreign_vf", "duplicate_virtfn", "virtfn_outside_tree"):
        n, arg = m.arg
        lost = fs[m.address].vfs[n]
        touched = {m.address, lost}  # the liars are the point: everything else stays exact
        if m.kind == "duplicate_virtfn":
            touched.add(fs[m.address].vfs[arg])
    with contextlib.suppress(OSError, KeyError, ValueError):
        if m.kind == "content":
            name, data = m.arg
            testing.set_attribute(host, m.address, name, data)
        elif m.kind == "fifo":
            testing.fifo_attribute(host, m.address, m.arg)
        elif m.kind == "directory":
            testing.directory_attribute(host, m.address, m.arg)
        elif m.kind == "remove":
            testing.remove_attribute(host, m.address, m.arg)
        elif m.kind == "symlink_file":  # a symlink where a file belongs: never followed
            testing.set_link(host, m.address, m.arg, "/dev/zero")
        elif m.kind == "file_link":
            name, as_dir = m.arg
            (testing.directory_attribute if as_dir else testing.set_attribute)(
                host, m.address, name, *(() if as_dir else (b"../0000:00:00.0\n",)))
        elif m.kind == "relink":
            name, target = m.arg
            testing.set_link(host, m.address, name, target)
        elif m.kind == "dangling_device":
            touched |= _below(host, m.address)
            testing.dangling_device_link(host, m.address)
        elif m.kind == "alias":
            os.symlink(os.path.relpath(os.path.realpath(f"{base}/{m.address}"), base),
                       f"{base}/{m.arg}")
        elif m.kind == "bad_name":
            os.symlink(os.path.relpath(os.path.realpath(f"{base}/{m.address}"), base),
                       f"{base}/{m.arg}")
            touched = set()  # not a PCI address: skipped, nothing changes
        elif m.kind == "file_entry":  # the entry itself a regular file
            os.unlink(f"{base}/{m.address}")
            with open(f"{base}/{m.address}", "wb") as f:
                f.write(b"0x15b3\n")
        elif m.kind == "dangling_virtfn":  # removes whatever the link names by now
            named = os.path.basename(os.readlink(f"{base}/{m.address}/virtfn{m.arg}"))
            touched |= _below(host, named)  # KeyError (skipped) when it names no function
            testing.dangling_virtfn_link(host, m.address, m.arg)
        elif m.kind == "virtfn_name":
            n, new = m.arg
            pf_dir = os.path.realpath(f"{base}/{m.address}")
            os.rename(f"{pf_dir}/virtfn{n}", f"{pf_dir}/{new}")
        elif m.kind == "below_links":
            testing.set_attribute(host, m.address, "sriov_totalvfs", b"%d\n" % m.arg)
        elif m.kind in ("virtfn_to_pf", "virtfn_to_foreign_vf"):
            n, arg = m.arg
            getattr(testing, m.kind)(host, m.address, n, arg)
        elif m.kind == "duplicate_virtfn":
            n, arg = m.arg
            testing.duplicate_virtfn(host, m.address, n, arg)
        elif m.kind == "virtfn_outside_tree":
            testing.virtfn_outside_tree(host, m.address, m.arg[0])
        else:
            raise AssertionError(f"unknown mutation {m.kind}")
    return touched


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging) when the block takes longer than `seconds`."""

    def expired(signum: int, frame: Any) -> None:
        raise AssertionError(f"the scan did not finish within {seconds} s (blocked?)")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _fallback_note(problem: str) -> bool:
    return problem.startswith("virtfn: VFs not computed from the SR-IOV layout") and "sriov_offset" in problem


def check(host: BuiltHost, touched: set[str], expected: list[dict[str, Any]]) -> None:
    """Scan the mutated `host` and assert what must hold (module docstring). `expected` is
    `BuiltHost.expected()` of the tree before it was broken."""
    fds = len(os.listdir("/proc/self/fd"))
    with _deadline(SCAN_TIMEOUT):
        inv = scan(host)
        nova = inv.to_nova()  # before the VF details are loaded ...
        got = {d.address: {k: getattr(d, k) for k in testing.FACT_KEYS} for d in inv.values()}
        assert inv.to_nova() == nova  # ... and after: loading them changes nothing Nova sees
    assert len(os.listdir("/proc/self/fd")) == fds, "the scan leaked a file descriptor"
    assert all(isinstance(p, str) for p in inv.problems)
    want = {d["address"]: d for d in expected}
    want_nova = {d["address"]: d for d in reference.to_nova(expected)}
    nova_by = {d["address"]: d for d in nova}
    for address, facts in want.items():
        if address in touched:
            continue
        assert got.get(address) == facts, (address, got.get(address), facts)
        problems = inv[address].problems
        assert all(isinstance(p, str) for p in problems)
        assert [p for p in problems if not _fallback_note(p)] == [], (address, problems)
        assert nova_by.get(address) == want_nova.get(address), address
