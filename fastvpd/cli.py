"""The ``fastvpd`` command: ``vpd``, ``scan`` and ``demo``.

Exit status: 0 ok, 1 runtime error (one line on stderr, no traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, TextIO

from .errors import FastVpdError, VpdFormatError
from .vpd import Vpd, escape_value, keyword_name, parse_vpd

__all__ = ["main"]


class _Failure(Exception):
    """A runtime error the command reports in one line."""


def format_vpd(vpd: Vpd, out: TextIO, indent: str = "") -> None:
    """Print a decoded blob the way an operator reads it (lspci's layout, long keyword names)."""
    w = out.write
    w(f"{indent}Product Name: {vpd.name if vpd.name is not None else '(none)'}\n")
    for title, section in (("Read-only fields", vpd.read_only), ("Read/write fields", vpd.read_write)):
        if section:
            w(f"{indent}{title}:\n")
            for kw, raw in section.items():
                w(f"{indent}    [{kw}] {keyword_name(kw)}: {escape_value(raw)}\n")
    verdict = {True: "good", False: "BAD", None: "absent (no RV field)"}[vpd.checksum_ok]
    w(f"{indent}Checksum: {verdict}\n")
    w(f"{indent}Card serial number: {vpd.serial_number or '(none)'}\n")
    if vpd.problems:
        w(f"{indent}Problems:\n")
        for p in vpd.problems:
            w(f"{indent}    {p}\n")
    else:
        w(f"{indent}Problems: none\n")


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError as e:
        raise _Failure(f"{path}: {e.strerror or e}") from None


def cmd_vpd(args: argparse.Namespace) -> int:
    data = _read_input(args.path)
    try:
        vpd = parse_vpd(data, strict=args.strict)
    except VpdFormatError as e:
        raise _Failure(f"{args.path}: invalid VPD: {e}") from None
    if args.json:
        json.dump({"source": args.path, **vpd.to_dict()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"{args.path} ({len(data)} bytes)\n")
        format_vpd(vpd, sys.stdout, "  ")
    return 0


def format_inventory(inv: Any, out: TextIO, *, list_all: bool = False) -> None:
    """A table grouped by card: serial, then its PFs with MACs and VF counts."""
    w = out.write
    pfs = inv.pfs()
    w(f"{len(inv)} PCI functions: {len(pfs)} PFs, {len(inv.vfs())} VFs, "
      f"{len(inv.cards)} cards with a serial number\n")
    seen: set[str] = set()
    for serial, devices in inv.cards.items():
        card_pfs = [d for d in devices if d.is_pf]
        name = next((d.vpd.name for d in card_pfs if d.vpd is not None and d.vpd.name), None)
        w(f"\ncard {serial}" + (f"  {name}" if name else "") + "\n")
        for pf in card_pfs:
            seen.add(pf.address)
            _format_pf(inv, pf, w, list_all, seen)
        for d in devices:
            if not d.is_pf and not d.is_vf:
                seen.add(d.address)
                w(f"  {d.address}  {d.vendor_id}:{d.product_id}  {d.driver or '-'}  "
                  f"{','.join(d.netdevs) or '-'}  {d.mac_address or ''}\n")
    rest_pfs = [pf for pf in pfs if pf.address not in seen]
    if rest_pfs:
        w("\nSR-IOV PFs without a card serial number\n")
        for pf in rest_pfs:
            seen.add(pf.address)
            _format_pf(inv, pf, w, list_all, seen)
    others = [d for a, d in inv.items() if a not in seen and not d.is_vf]
    if others:
        w("\nother PCI functions\n")
        for d in others:
            w(f"  {d.address}  {d.vendor_id}:{d.product_id}  class {d.class_code or 0:06x}  "
              f"{d.driver or '-'}  {','.join(d.netdevs) or '-'}\n")
    problems = [(a, p) for a, d in inv.items() for p in d.problems] + [("host", p) for p in inv.problems]
    if problems:
        w(f"\nproblems ({len(problems)})\n")
        for where, p in problems:
            w(f"  {where}: {p}\n")


def _format_pf(inv: Any, pf: Any, w: Any, list_all: bool, seen: set[str]) -> None:
    vfs = inv.vfs(pf.address)
    w(f"  PF {pf.address}  {pf.vendor_id}:{pf.product_id}  {pf.driver or '-'}  "
      f"netdev {','.join(pf.netdevs) or '-'}  MAC {pf.mac_address or '-'}  "
      f"NUMA {pf.numa_node if pf.numa_node is not None else '-'}  "
      f"VFs {pf.num_vfs}/{pf.total_vfs} ({pf.vf_product_id or '?'})\n")
    for vf in vfs:
        seen.add(vf.address)
    if not vfs:
        return
    if list_all:
        for vf in vfs:
            w(f"    vf {vf.vf_num:<4} {vf.address}  {vf.driver or '-'}  "
              f"{','.join(vf.netdevs) or '-'}\n")
    else:
        w(f"    VFs {vfs[0].address} (vf 0) .. {vfs[-1].address} (vf {vfs[-1].vf_num}); "
          f"--all lists them\n")


def cmd_scan(args: argparse.Namespace) -> int:
    from .scanner import scan

    inv = scan(args.sysfs, read_vpd=not args.no_vpd)
    if args.json:
        json.dump(inv.to_nova(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        format_inventory(inv, sys.stdout, list_all=args.all)
    return 0


def _sriov_host(sysfs: str) -> Any:
    """A scan of ``sysfs`` when it has SR-IOV hardware, else None (no PF, or no PCI tree)."""
    from .scanner import scan

    try:
        inv = scan(sysfs)
    except FastVpdError:
        return None
    return inv if inv.pfs() else None


def cmd_demo(args: argparse.Namespace) -> int:
    """Scan this host when it has SR-IOV hardware; otherwise a synthetic host with two DPUs."""
    from . import testing
    from .samples import SAMPLES
    from .scanner import scan

    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="fastvpd-demo-") as tmp:
        root = None if args.synthetic else args.sysfs
        if root is None or _sriov_host(root) is None:
            testing.dpu_host(tmp, cards=2, pfs_per_card=2, vfs_per_pf=args.vfs)
            why = "as asked" if root is None else f"no SR-IOV hardware under {root}"
            title = f"a synthetic host with two DPU cards ({why}; `fastvpd scan` scans this machine)"
            root = tmp
        else:
            title = f"this host's SR-IOV hardware, scanned from {root}"
        start = time.perf_counter()
        inv = scan(root)
        nova = inv.to_nova()
        elapsed = time.perf_counter() - start
        if args.json:
            json.dump({"source": "synthetic" if root == tmp else root, "scan_seconds": elapsed,
                       "devices": nova,
                       "samples": {k: parse_vpd(v).to_dict() for k, v in SAMPLES.items()}},
                      out, indent=2)
            out.write("\n")
            return 0
        out.write(f"fastvpd demo: {title}\n\n")
        format_inventory(inv, out)
        out.write(f"\nscanned {len(inv)} functions in {elapsed * 1e3:.2f} ms "
                  f"({inv.counters.get('total', 0)} syscalls)\n")
        shown = (inv.vfs() or inv.pfs())[0]
        out.write(f"\nwhat a compute agent reports for {shown.dev_type[5:]} {shown.address}:\n")
        out.write(json.dumps(shown.nova_dict(), indent=2) + "\n")
    out.write("\nbundled sample VPD blobs (`fastvpd vpd FILE` decodes your own):\n")
    for label, blob in SAMPLES.items():
        out.write(f"\n{label} ({len(blob)} bytes)\n")
        format_vpd(parse_vpd(blob), out, "  ")
    out.write("\nReal captures: the source tree's tests/data/sysfs/ghw-i350-sriov.tar.gz is the sysfs of a"
              " real host (two Intel I350 PFs, eight VFs); extract it and run\n"
              "`fastvpd scan --sysfs DIR/sys` (README: \"Command line\"). Any copied sysfs tree works.\n")
    return 0


def _vf_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= n <= 256:
        raise argparse.ArgumentTypeError(f"{n} VFs per PF: use 0 to 256")
    return n


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastvpd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("vpd", help="decode a VPD blob (a sysfs vpd file, a dump, or - for stdin)")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--strict", action="store_true", help="fail on any fatal format problem")
    p.set_defaults(func=cmd_vpd)

    p = sub.add_parser("scan", help="scan the PCI functions of a host")
    p.add_argument("--sysfs", default="/sys", help="sysfs root (default /sys)")
    p.add_argument("--json", action="store_true", help="print Nova's device dicts")
    p.add_argument("--no-vpd", action="store_true", help="do not read VPD (no root needed)")
    p.add_argument("--all", action="store_true", help="list every VF")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("demo", help="scan this host (or, without SR-IOV hardware, a synthetic one "
                                    "with two DPUs) and decode sample VPD")
    p.add_argument("--json", action="store_true")
    p.add_argument("--sysfs", default="/sys", help="the host to try first (default /sys)")
    p.add_argument("--synthetic", action="store_true", help="always use the synthetic host")
    p.add_argument("--vfs", type=_vf_count, default=8, help="VFs per PF, 0-256 (default 8)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `fastvpd scan | head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (_Failure, FastVpdError, OSError) as e:
        print(f"fastvpd: error: {e}", file=sys.stderr)
        return 1
