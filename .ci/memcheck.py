#!/usr/bin/env python3
"""Memory checks of fastvpd's two extensions on real work: AddressSanitizer's leak check and
valgrind memcheck. Run from the repository root (see README "Reliability"):

    python .ci/memcheck.py trees DIR            # build the trees (a DPU host, every hostile tree)
    python .ci/memcheck.py workload DIR         # scan each, parse the fuzz corpus
    python .ci/memcheck.py workload DIR --lsan  # ... then LeakSanitizer (under the ASan build)
    python .ci/memcheck.py valgrind DIR         # the workload under valgrind memcheck

The workload scans every tree (walk, Inventory, to_nova, every device with its lazily read VF
details, strict and tolerant VPD) and parses every seed of fuzz/corpus/vpd in both modes.

``--lsan`` (in a process with the ASan runtime preloaded and ``detect_leaks=1``) then asks
LeakSanitizer for the blocks nothing points to any more, in the middle of the process where
everything CPython holds is still reachable, and fails when any of them was allocated with a
frame of fastvpd's extensions on the stack (CPython's own few unreachable blocks, e.g. frame
objects it keeps through tagged pointers, are listed but not counted).

``valgrind`` runs the workload under memcheck (``PYTHONMALLOC=malloc`` so that every Python
object is its own block) and fails when any error, or any definitely or indirectly lost block,
has a frame in fastvpd's extensions. The workload ends with ``os._exit`` so that CPython's
finalisation does not blur what was lost.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "fuzz" / "corpus" / "vpd"
OURS = re.compile(r"fastvpd/_(sysfs|vpd)")  # fastvpd/_sysfs.c, _sysfs_cffi.c, _vpd.pyx.c, the .so's


# -- the trees -------------------------------------------------------------------------------------

def trees(base: pathlib.Path) -> int:
    """A synthetic DPU host (VFs computed and read link by link) and every hostile tree of
    tests/test_scan.py: each attribute mutator on each role, missing IDs, dangling entries and
    virtfn links, stray entries, the link liars, driver links that name no driver, files past
    the read caps."""
    from fastvpd import testing
    from tests import test_scan as t

    base.mkdir(parents=True, exist_ok=True)
    testing.dpu_host(base / "dpu-host", cards=2, pfs_per_card=2, vfs_per_pf=64,
                     nics=[testing.NicSpec(vpd=True)], others=[testing.OtherSpec()], bridges=True)
    testing.dpu_host(base / "dpu-host-links", cards=1, pfs_per_card=2, vfs_per_pf=32,
                     sriov_files=False, vf_vpd=True)
    testing.dpu_host(base / "vmd-host", cards=1, pfs_per_card=1, vfs_per_pf=8, domain=0x10000)
    cases: list[tuple[str, object]] = []
    for role, attrs in t.ROLE_ATTRS.items():
        for attr in attrs:
            for mutator in t.ATTR_MUTATORS:
                if mutator != "unreadable_attribute":  # as root the file reads anyway
                    cases.append((f"{mutator}-{role}-{attr}", (mutator, t.ROLES[role], attr)))
    for role in ("PF", "VF0", "FVF", "NIC", "NVME"):
        for attr in ("vendor", "device", "class", "driver", "net", "numa_node"):
            cases.append((f"remove-{role}-{attr}", ("remove_attribute", t.ROLES[role], attr)))
    for role in ("PF", "VF0", "VF1", "FPF", "FVF", "NIC"):
        address = {**t.ROLES, "VF1": t.VF1}[role]
        cases.append((f"dangling-{role}", ("dangling_device_link", address)))
    for pf, n in ((t.PF, 0), (t.PF, 2), (t.FPF, 1)):
        cases.append((f"dangling-virtfn-{pf}-{n}", ("dangling_virtfn_link", pf, n)))
    cases += [("non-pci-entry", ("non_pci_entry",)), ("long-name-entry", ("long_name_entry",)),
              ("fifo-numvfs", ("fifo_attribute", t.PF, "sriov_numvfs")),
              ("driver-loop", ("set_link", t.NIC, "driver", "driver")),
              ("driver-to-device", ("set_link", t.VF0, "driver", "../" + t.VF0)),
              ("total-below-links", ("set_attribute", t.PF, "sriov_totalvfs", "1\n")),
              ("vpd-too-long", ("set_attribute", t.NIC, "vpd", b"\x82" * 40000)),
              ("attribute-too-long", ("set_attribute", t.PF, "class", b"0x" + b"1" * 5000))]
    for mutator, pf, n, arg in t.LINK_LIES:
        cases.append((f"{mutator}-{pf}-{n}", (mutator, pf, n, *(() if arg is None else (arg,)))))
    for name, (mutator, *args) in cases:
        host = t._build_hostile(str(base / name))
        getattr(testing, mutator)(host, *args)
    print(f"memcheck: {len(cases) + 3} trees in {base}")
    return 0


# -- the workload ----------------------------------------------------------------------------------

def workload(base: pathlib.Path) -> tuple[int, int]:
    import fastvpd
    from fastvpd import _walk

    roots = sorted(p / "sys" if (p / "sys").is_dir() else p for p in base.iterdir() if p.is_dir())
    scans = 0
    for root in roots:
        for read_vpd, vf_vpd in ((True, False), (True, True), (False, False)):
            inv = fastvpd.scan(root, read_vpd=read_vpd, vf_vpd=vf_vpd)
            inv.to_nova()
            for dev in inv.values():  # every device, the lazily read VF details included
                (dev.driver, dev.netdevs, dev.problems, dev.vpd and dev.vpd.to_dict())
            inv.to_nova()
            dict(inv.cards)
            scans += 1
        _walk.details(root, _walk.walk(root).addresses + ["0000:ff:1f.7", "bogus-name-x"])
    for bad in (base / "missing", base / "missing\0"):
        try:
            fastvpd.scan(bad)
        except (fastvpd.SysfsError, ValueError):
            pass
    blobs = [p.read_bytes() for p in sorted(CORPUS.iterdir())]
    for blob in blobs:
        for strict in (False, True):
            try:
                vpd = fastvpd.parse_vpd(blob, strict=strict)
            except fastvpd.VpdFormatError:
                continue
            vpd.to_dict()
            (vpd.serial_number, vpd.vendor_fields, vpd.system_fields, vpd.fatal_problems)
    return scans, len(blobs)


def lsan_check() -> int:
    """LeakSanitizer now; fail on any unreachable block allocated under fastvpd's frames."""
    import gc

    gc.collect()
    try:
        check = ctypes.CDLL(None).__lsan_do_recoverable_leak_check
    except AttributeError:
        print("memcheck: no LeakSanitizer in this process (preload the ASan runtime)", file=sys.stderr)
        return 2
    with tempfile.TemporaryFile() as log:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            check()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        report = log.read().decode("utf-8", "replace")
    leaks = re.split(r"\n(?=(?:Direct|Indirect) leak of )", report)
    leaks = [leak for leak in leaks if re.match(r"(Direct|Indirect) leak of ", leak)]
    ours = [leak for leak in leaks if OURS.search(leak)]
    for leak in ours:
        print(leak, file=sys.stderr)
    print(f"memcheck: LeakSanitizer found {len(leaks)} unreachable allocations, "
          f"{len(ours)} of them under fastvpd's frames")
    return 1 if ours else 0


def valgrind(base: pathlib.Path) -> int:
    if shutil.which("valgrind") is None:
        print("memcheck: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    xml = pathlib.Path(tempfile.mkdtemp(prefix="fastvpd-valgrind-")) / "memcheck.xml"
    env = {**os.environ, "PYTHONMALLOC": "malloc"}
    env.pop("LD_PRELOAD", None)
    cmd = ["valgrind", "--tool=memcheck", "--xml=yes", f"--xml-file={xml}", "--num-callers=50",
           "--leak-check=full", "--show-leak-kinds=definite,indirect", "--track-origins=yes",
           sys.executable, __file__, "workload", str(base), "--exit"]
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        print(f"memcheck: the workload under valgrind exited with {proc.returncode}", file=sys.stderr)
        return 1
    errors = ET.parse(xml).getroot().findall("error")
    ours = []
    for error in errors:
        frames = [" ".join(filter(None, (f.findtext("fn"), f.findtext("obj"), f.findtext("dir"),
                                        f.findtext("file")))) for f in error.iter("frame")]
        if any(OURS.search(frame) for frame in frames):
            ours.append((error.findtext("kind"), error.findtext("what") or
                         error.findtext("xwhat/text"), frames))
    kinds: dict[str, int] = {}
    for error in errors:
        kinds[error.findtext("kind") or "?"] = kinds.get(error.findtext("kind") or "?", 0) + 1
    for kind, what, frames in ours:
        print(f"{kind}: {what}", *("    " + f for f in frames[:20]), sep="\n", file=sys.stderr)
    print(f"memcheck: valgrind reported {len(errors)} errors and leaks {kinds or ''}, "
          f"{len(ours)} with a frame in fastvpd's extensions")
    shutil.rmtree(xml.parent, ignore_errors=True)
    return 1 if ours else 0


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] not in ("trees", "workload", "valgrind"):
        print(__doc__, file=sys.stderr)
        return 2
    base = pathlib.Path(argv[2]).resolve()
    if argv[1] == "trees":
        return trees(base)
    if argv[1] == "valgrind":
        return valgrind(base)
    scans, parses = workload(base)
    print(f"memcheck: {scans} scans of {len(list(base.iterdir()))} trees, "
          f"{parses} corpus blobs in both modes", flush=True)
    rc = lsan_check() if "--lsan" in argv else 0
    if "--exit" in argv:  # skip CPython's finalisation: what is lost then is lost by the work
        sys.stdout.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
