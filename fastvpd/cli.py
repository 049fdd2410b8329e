"""The ``fastvpd`` command: ``vpd``, ``scan``, ``profile``, ``devspec`` and ``demo``.

Exit status: 0 ok, 1 runtime error (one line on stderr, no traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, TextIO

from .errors import DeviceNotFound, DeviceSpecError, FastVpdError, VpdFormatError
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


def cmd_profile(args: argparse.Namespace) -> int:
    """The binding:profile Nova would send Neutron for a port on one device."""
    from .profile import binding_profile
    from .scanner import scan

    inv = scan(args.sysfs)
    try:
        profile = binding_profile(inv, args.address, physical_network=args.physnet,
                                  remote_managed=args.remote_managed)
    except DeviceNotFound:
        raise _Failure(f"no PCI function {args.address} under {args.sysfs}") from None
    json.dump(profile, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


_CONFIG_CAP = 1 << 20


def _read_config(path: str) -> str:
    """A nova.conf: a regular file (never a FIFO that would block), at most 1 MiB, UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise _Failure(f"{path}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Failure(f"{path}: not a regular file")
        data = f.read(_CONFIG_CAP + 1)
    if len(data) > _CONFIG_CAP:
        raise _Failure(f"{path}: larger than {_CONFIG_CAP} bytes; not a nova.conf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Failure(f"{path}: not UTF-8 text (byte {e.start})") from None


def _trait_trap(spec: Any) -> str:
    return (f"device_spec entry {json.dumps(spec.entry)}: remote_managed is "
            f"{spec.tags.get('remote_managed')!r}: Nova 34 takes its devices out of the normal "
            f"pools but reports COMPUTE_REMOTE_MANAGED_PORTS only for the text \"true\", so "
            f"they serve no port at all; write \"remote_managed\": \"true\"")


def cmd_devspec(args: argparse.Namespace) -> int:
    """Validate [pci] device_spec entries against this host and list what they make assignable."""
    from .profile import (TRAIT_REMOTE_MANAGED_PORTS, assignable_devices,
                          device_specs_from_nova_conf, exposes_remote_managed_trait,
                          load_device_specs)
    from .scanner import scan

    if args.config is not None:
        entries = device_specs_from_nova_conf(_read_config(args.config))
        source = f"{args.config} [pci] device_spec"
    else:
        entries, source = args.spec, "--spec"
    inv = scan(args.sysfs)
    try:
        specs = load_device_specs(entries, inv)
    except DeviceSpecError as e:
        raise _Failure(f"invalid device_spec ({source}): {e}") from None
    assigned = assignable_devices(inv, specs)
    warnings = [_trait_trap(s) for s in specs if s.remote_managed and not s.nova_trait_value]
    counts = [sum(1 for _, s in assigned if s is spec) for spec in specs]
    warnings += [f"device_spec entry {json.dumps(spec.entry)} matches no device on this host"
                 for spec, n in zip(specs, counts) if n == 0]
    trait = exposes_remote_managed_trait(inv, specs)
    nova_trait = any(s.nova_trait_value for _, s in assigned)
    if args.json:
        json.dump({
            "sysfs": args.sysfs,
            "specs": [{"entry": dict(s.entry), "tags": dict(s.tags),
                       "remote_managed": s.remote_managed, "nova_trait_value": s.nova_trait_value,
                       "devices": n} for s, n in zip(specs, counts)],
            "assignable": [{"address": d.address, "dev_type": d.dev_type,
                            "vendor_id": d.vendor_id, "product_id": d.product_id,
                            "card_serial_number": d.card_serial_number,
                            "spec": specs.index(s), "tags": dict(s.tags)} for d, s in assigned],
            "remote_managed_trait": trait, "nova_34_reports_trait": nova_trait,
            "warnings": warnings}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        out = sys.stdout
        out.write(f"{len(specs)} device_spec entries from {source}, "
                  f"{len(assigned)} assignable devices under {args.sysfs}\n")
        for i, (spec, n) in enumerate(zip(specs, counts)):
            out.write(f"\n[{i}] {json.dumps(spec.entry)}: {n} devices, tags {json.dumps(dict(spec.tags))}\n")
            for d, s in assigned:
                if s is spec:
                    out.write(f"    {d.address}  {d.dev_type:<8}  {d.vendor_id}:{d.product_id}  "
                              f"serial {d.card_serial_number or '-'}\n")
        out.write(f"\n{TRAIT_REMOTE_MANAGED_PORTS}: {'reported' if trait else 'not reported'}"
                  + ("" if trait == nova_trait else
                     f" (Nova 34: {'reported' if nova_trait else 'NOT reported'})") + "\n")
    for w in warnings:
        print(f"fastvpd: warning: {w}", file=sys.stderr)
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
            # the DPU case: VFs bound to vfio-pci for instances, no netdevs on the host
            testing.dpu_host(tmp, cards=2, pfs_per_card=2, vfs_per_pf=args.vfs,
                             vf_driver="vfio-pci", vf_netdevs=False)
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
        _demo_profiles(inv, out)
    out.write("\nbundled sample VPD blobs (`fastvpd vpd FILE` decodes your own):\n")
    for label, blob in SAMPLES.items():
        out.write(f"\n{label} ({len(blob)} bytes)\n")
        format_vpd(parse_vpd(blob), out, "  ")
    out.write("\nReal captures: the source tree's tests/data/sysfs/ghw-i350-sriov.tar.gz is the sysfs of a"
              " real host (two Intel I350 PFs, eight VFs); extract it and run\n"
              "`fastvpd scan --sysfs DIR/sys` (README: \"Command line\"). Any copied sysfs tree works.\n")
    return 0


def _demo_profiles(inv: Any, out: TextIO) -> None:
    """The remote-managed binding profiles of a few VFs: VF 0 and 1 of the first PF, and the last
    VF of the last PF (`fastvpd profile ADDRESS --remote-managed` prints one)."""
    from .errors import ProfileError
    from .profile import binding_profile

    pfs = [pf for pf in inv.pfs() if inv.vfs(pf.address)]
    if not pfs:
        return
    first, last = inv.vfs(pfs[0].address), inv.vfs(pfs[-1].address)
    chosen = list(dict.fromkeys([v.address for v in first[:2]] + [last[-1].address]))
    out.write("\nthe binding:profile Nova sends Neutron for a remote-managed port on:\n")
    for address in chosen:
        try:
            profile = binding_profile(inv, address, remote_managed=True)
        except ProfileError as e:
            out.write(f"  {address}: not usable: {e}\n")
        else:
            out.write(f"  {address}: {json.dumps(profile)}\n")


def _pci_address(text: str) -> str:
    from .model import PciAddress

    try:
        return str(PciAddress.parse(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a PCI address DDDD:BB:SS.F: {text!r}") from None


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

    p = sub.add_parser("profile", help="print the Neutron binding:profile of a port on a device")
    p.add_argument("address", type=_pci_address, help="PCI address of the VF (or PF), DDDD:BB:SS.F")
    p.add_argument("--physnet", metavar="NAME", help="physical_network of the port (default none)")
    p.add_argument("--remote-managed", action="store_true",
                   help="a remote-managed (DPU) port: fail unless the card serial, the PF MAC "
                        "and the VF number are all known")
    p.add_argument("--sysfs", default="/sys", help="sysfs root (default /sys)")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("devspec", help="validate [pci] device_spec entries against this host and "
                                       "list the devices they make assignable")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--spec", action="append", metavar="JSON",
                       help="one device_spec value (repeat for more)")
    given.add_argument("--config", metavar="FILE",
                       help="read every device_spec of the [pci] section of a nova.conf")
    p.add_argument("--sysfs", default="/sys", help="sysfs root (default /sys)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_devspec)

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
