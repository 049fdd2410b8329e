"""The ``fastvpd`` command: ``vpd``, ``scan``, ``profile``, ``devspec``, ``doctor``, ``watch`` and
``demo``.

Exit status: 0 ok, 1 runtime error (one line on stderr, no traceback), 2 usage error (with the
usage of the command that was given), 130 interrupted (Ctrl-C, quietly; ``watch``, which runs
until Ctrl-C, exits 0).

Text output shows names and paths read from a sysfs tree with `_walk.shown` (bytes that are not
printable ASCII as ``\\xNN``): a tree may hold any bytes, and the output must print in any locale.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from . import __version__
from ._walk import shown
from .errors import DeviceNotFound, DeviceSpecError, FastVpdError, SysfsError, VpdFormatError
from .model import VPD_DENIED, Inventory, PciDevice
from .vpd import MAX_VPD_SIZE, Vpd, escape_value, keyword_name, parse_vpd

__all__ = ["main", "format_vpd", "format_inventory"]

#: The line end of the PF summary in `fastvpd scan` (the demo has no --all).
_ALL_HINT = "--all lists them"


class _Failure(Exception):
    """A runtime error the command reports in one line."""


# -- vpd -------------------------------------------------------------------------------------------

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


_FILE_TYPES = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
               stat.S_IFDIR: "a directory", stat.S_IFBLK: "a block device",
               stat.S_IFSOCK: "a socket"}


def _read_input(path: str) -> bytes:
    """The blob to decode: a regular file or stdin, at most `MAX_VPD_SIZE` bytes.

    Reads one byte more than the cap to tell a blob of exactly the cap from a larger input, which
    is refused rather than decoded cut. A FIFO or device is refused without blocking: the open is
    non-blocking and the type is checked on the open file.
    """
    cap = MAX_VPD_SIZE
    if path == "-":
        name = "stdin"
        if sys.stdin is None:
            raise _Failure("stdin: not open")
        try:
            data = sys.stdin.buffer.read(cap + 1)
        except OSError as e:
            raise _Failure(f"stdin: {e.strerror or e}") from None
    else:
        name = path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            raise _Failure(f"{path}: {e.strerror or e}") from None
        try:
            kind = stat.S_IFMT(os.fstat(fd).st_mode)
            if kind != stat.S_IFREG:
                what = _FILE_TYPES.get(kind, "not a file")
                raise _Failure(f"{path}: not a regular file ({what}); give a file, or - to read stdin")
            os.set_blocking(fd, True)
            data = _read_fd(fd, cap + 1)
        except OSError as e:
            raise _Failure(f"{path}: {e.strerror or e}") from None
        finally:
            os.close(fd)
    if len(data) > cap:
        raise _Failure(f"{name}: more than {cap} bytes, the largest VPD there is (its addresses "
                       "have 15 bits); not decoded")
    return data


def _read_fd(fd: int, limit: int) -> bytes:
    chunks = []
    left = limit
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def cmd_vpd(args: argparse.Namespace) -> int:
    data = _read_input(args.path)
    source = "stdin" if args.path == "-" else args.path
    try:
        vpd = parse_vpd(data, strict=args.strict)
    except VpdFormatError as e:
        raise _Failure(f"{source}: invalid VPD: {e}") from None
    if args.json:
        json.dump({"source": source, "size": len(data), **vpd.to_dict()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"{shown(source)} ({len(data)} bytes)\n")
        format_vpd(vpd, sys.stdout, "  ")
    return 0


# -- scan ------------------------------------------------------------------------------------------

def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _names(names: Iterable[str]) -> str:
    return ",".join(shown(n) for n in names) or "-"


def _ranges(numbers: list[int]) -> str:
    """``[1, 3, 4, 5]`` -> ``"1, 3-5"``."""
    parts: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:] + [-2]:
        if n != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = n
        prev = n
    return ", ".join(parts)


def format_inventory(inv: Inventory, out: TextIO, *, list_all: bool = False,
                     read_vpd: bool = True, all_hint: str | None = _ALL_HINT) -> None:
    """A table grouped by card: serial, then its PFs with MACs and VF counts.

    ``read_vpd`` False: the scan did not read VPD, so no card has a serial (and the table says
    so rather than "0 cards"). ``all_hint`` ends the one-line VF summary of each PF.
    """
    w = out.write
    pfs = inv.pfs()
    head = (f"{_count(len(inv), 'PCI function')}: {_count(len(pfs), 'PF')}, "
            f"{_count(len(inv.vfs()), 'VF')}, ")
    if read_vpd:
        w(head + f"{_count(len(inv.cards), 'card')} with a serial number\n")
    else:
        w(head + "VPD not read (--no-vpd), so no card serial numbers\n")
    seen: set[str] = set()
    for serial, devices in inv.cards.items():
        card_pfs = [d for d in devices if d.is_pf]
        name = next((d.vpd.name for d in card_pfs if d.vpd is not None and d.vpd.name), None)
        w(f"\ncard {shown(serial)}" + (f"  {name}" if name else "") + "\n")
        for pf in card_pfs:
            seen.add(pf.address)
            _format_pf(inv, pf, w, list_all, seen, all_hint)
        for d in devices:
            if not d.is_pf and not d.is_vf:
                seen.add(d.address)
                w(f"  {d.address}  {d.vendor_id}:{d.product_id}  {shown(d.driver or '-')}  "
                  f"{_names(d.netdevs)}  {d.mac_address or ''}\n")
    rest_pfs = [pf for pf in pfs if pf.address not in seen]
    if rest_pfs:
        w("\nSR-IOV PFs without a card serial number\n" if read_vpd else "\nSR-IOV PFs\n")
        for pf in rest_pfs:
            seen.add(pf.address)
            _format_pf(inv, pf, w, list_all, seen, all_hint)
    others = [d for a, d in inv.items() if a not in seen and not d.is_vf]
    if others:
        w("\nother PCI functions\n")
        for d in others:
            klass = "?" if d.class_code is None else f"{d.class_code:06x}"
            w(f"  {d.address}  {d.vendor_id}:{d.product_id}  class {klass}  "
              f"{shown(d.driver or '-')}  {_names(d.netdevs)}\n")
    problems = [(a, p) for a, d in inv.items() for p in d.problems] + [("host", p) for p in inv.problems]
    if problems:
        w(f"\nproblems ({len(problems)})\n")
        for where, p in problems:
            w(f"  {where}: {p}\n")
    denied = sum(1 for _, p in problems if p.startswith(VPD_DENIED))
    if denied:
        w(f"\nhint: reading VPD needs root: {_count(denied, 'VPD file')} could not be read "
          "(permission denied), so no card serial number came from them\n")


def _format_pf(inv: Inventory, pf: PciDevice, w: Callable[[str], Any], list_all: bool,
               seen: set[str], all_hint: str | None) -> None:
    vfs = inv.vfs(pf.address)
    numbered = [(vf.vf_num, vf) for vf in vfs if vf.vf_num is not None]
    unnumbered = [vf for vf in vfs if vf.vf_num is None]
    present = {n for n, _ in numbered}
    # VF numbers run from 0 up to the count of virtfn links (dangling ones too) or past the
    # highest number found: those without a VF are missing (gone, or their link is)
    expected = max(pf.num_vfs or 0, numbered[-1][0] + 1 if numbered else 0)
    missing = [n for n in range(expected) if n not in present]
    total = pf.total_vfs if pf.total_vfs is not None else "?"
    w(f"  PF {pf.address}  {pf.vendor_id}:{pf.product_id}  {shown(pf.driver or '-')}  "
      f"netdev {_names(pf.netdevs)}  MAC {pf.mac_address or '-'}  "
      f"NUMA {pf.numa_node if pf.numa_node is not None else '-'}  "
      f"VFs {len(vfs)}/{total} ({pf.vf_product_id or '?'})\n")
    seen.update(vf.address for vf in vfs)
    if not vfs and not missing:
        return
    notes = []
    if missing:
        notes.append(f"missing: vf {_ranges(missing)}")
    if unnumbered:
        them = "them" if len(unnumbered) > 1 else "it"
        notes.append(f"{len(unnumbered)} with no VF number (no virtfn link to {them})")
    if list_all:
        rows: list[tuple[int, PciDevice | None]] = [*numbered, *((n, None) for n in missing)]
        rows.sort(key=lambda r: r[0])
        for n, vf in rows:
            if vf is None:
                w(f"    vf {n:<4} missing\n")
            else:
                w(f"    vf {n:<4} {vf.address}  {shown(vf.driver or '-')}  {_names(vf.netdevs)}\n")
        for vf in unnumbered:
            w(f"    vf ?    {vf.address}  {shown(vf.driver or '-')}  {_names(vf.netdevs)}  "
              "(no virtfn link to it)\n")
        return
    parts = []
    if numbered:
        (n0, first), (n1, last) = numbered[0], numbered[-1]
        parts.append(f"VFs {first.address} (vf {n0}) .. {last.address} (vf {n1})"
                     if len(numbered) > 1 else f"VF {first.address} (vf {n0})")
    parts += notes
    line = "; ".join(parts)
    if all_hint:
        line += f"; {all_hint}"
    w(f"    {line}\n")


def _sys_hint(root: str) -> str:
    """For a root that is not a sysfs tree but holds one in ``sys/`` (an extracted capture)."""
    nested = os.path.join(root, "sys")
    if (not os.path.isdir(os.path.join(root, "bus", "pci", "devices"))
            and os.path.isdir(os.path.join(nested, "bus", "pci", "devices"))):
        return f"; the sysfs tree is in its sys folder: --sysfs {nested}"
    return ""


def _scan(root: str, **options: Any) -> Inventory:
    from .scanner import scan

    try:
        return scan(root, **options)
    except SysfsError as e:
        raise _Failure(f"{e}{_sys_hint(root)}") from None


def _scan_json(inv: Inventory, read_vpd: bool) -> dict[str, Any]:
    problems: list[dict[str, str | None]] = [
        {"address": a, "message": p} for a, d in inv.items() for p in d.problems]
    problems += [{"address": None, "message": p} for p in inv.problems]
    return {"sysfs": inv.sysfs, "read_vpd": read_vpd,
            "devices": [d.to_dict() for d in inv.values()], "problems": problems}


def cmd_scan(args: argparse.Namespace) -> int:
    read_vpd = not args.no_vpd
    inv = _scan(args.sysfs, read_vpd=read_vpd)
    if args.nova:
        json.dump(inv.to_nova(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.json:
        json.dump(_scan_json(inv, read_vpd), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        format_inventory(inv, sys.stdout, list_all=args.all, read_vpd=read_vpd)
    return 0


# -- profile and devspec ---------------------------------------------------------------------------

def cmd_profile(args: argparse.Namespace) -> int:
    """The binding:profile Nova would send Neutron for a port on one device."""
    from .profile import binding_profile

    inv = _scan(args.sysfs)
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

    if args.config is not None:
        entries = device_specs_from_nova_conf(_read_config(args.config))
        source = f"{args.config} [pci] device_spec"
    else:
        entries, source = args.spec, "--spec"
    inv = _scan(args.sysfs)
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


# -- doctor ----------------------------------------------------------------------------------------

def cmd_doctor(args: argparse.Namespace) -> int:
    """Whether each VF can back a remote-managed port, and why not; exit 1 when one cannot."""
    from .doctor import check, format_report
    from .profile import device_specs_from_nova_conf

    specs: list[str] | None = None
    source = None
    if args.config is not None:
        try:
            specs = device_specs_from_nova_conf(_read_config(args.config))
        except DeviceSpecError as e:
            raise _Failure(f"{args.config}: {e}") from None
        source = f"{args.config} [pci] device_spec"
    elif args.spec is not None:
        specs, source = args.spec, "--spec"
    report = check(_scan(args.sysfs), specs)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        format_report(report, sys.stdout, source=source)
    return report.exit_status


# -- watch -----------------------------------------------------------------------------------------

def _field_text(value: Any) -> str:
    """A field of `PciDevice.to_dict` in one line of ``fastvpd watch``."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(shown(str(v)) for v in value) or "-"
    if isinstance(value, dict):  # the VPD
        return f"(VPD, serial {shown(value.get('serial_number') or '-')})"
    return shown(str(value))


def _device_text(d: PciDevice) -> str:
    parts = [d.address, d.dev_type, f"{d.vendor_id or '?'}:{d.product_id or '?'}"]
    if d.is_vf:
        parts.append(f"vf {'?' if d.vf_num is None else d.vf_num} of {d.parent_addr or '?'}")
    if d.is_pf:
        parts.append(f"{d.num_vfs if d.num_vfs is not None else '?'}/{d.total_vfs} VFs")
    parts += [f"driver {shown(d.driver or '-')}", f"netdev {_names(d.netdevs)}"]
    if d.mac_address:
        parts.append(d.mac_address)
    if d.card_serial_number:
        parts.append(f"serial {shown(d.card_serial_number)}")
    return "  ".join(parts)


def _watch_lines(before: Inventory, result: Any, as_json: bool) -> list[str]:
    """The lines of one `ScanResult`: one per device added, removed or changed."""
    now = datetime.datetime.now().astimezone()
    stamp = now.isoformat(timespec="milliseconds") if as_json else now.strftime("%H:%M:%S")
    inv = result.inventory
    lines = []
    for address in result.added:
        device = inv[address]
        lines.append(json.dumps({"time": stamp, "event": "added", "address": address,
                                 "device": device.to_dict()}) if as_json
                     else f"{stamp} added   {_device_text(device)}")
    for address in result.removed:
        nova = before.nova_dict(address)  # read from the scan alone: the device is gone
        dev_type = None if nova is None else nova["dev_type"]
        lines.append(json.dumps({"time": stamp, "event": "removed", "address": address,
                                 "dev_type": dev_type}) if as_json
                     else f"{stamp} removed {address}  {dev_type or '-'}")
    for address in result.changed:
        old, new = before[address].to_dict(), inv[address].to_dict()
        fields = {k: [old[k], v] for k, v in new.items() if old.get(k) != v}
        if as_json:
            lines.append(json.dumps({"time": stamp, "event": "changed", "address": address,
                                     "changed": fields}))
        else:
            what = "; ".join(f"{k}: {_field_text(a)} -> {_field_text(b)}"
                             for k, (a, b) in fields.items())
            lines.append(f"{stamp} changed {address}  {what}")
    return [line + "\n" for line in lines]


class _LogLine(logging.Formatter):
    """A warning of the library as one line on stderr, ``fastvpd: warning: ...``: the exception
    named, never its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().removeprefix("fastvpd: ")
        if record.exc_info and record.exc_info[1] is not None:
            e = record.exc_info[1]
            message += f": {type(e).__name__}: {e}"
        return shown(f"fastvpd: {record.levelname.lower()}: {message}")


def cmd_watch(args: argparse.Namespace) -> int:
    """Print every device added, removed or changed until Ctrl-C, which exits 0."""
    from .scanner import Scanner
    from .udev import Watcher

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogLine())
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("fastvpd")
    logger.addHandler(handler)
    done = threading.Event()
    broken: list[OSError] = []
    try:
        with Scanner(args.sysfs) as scanner:
            try:
                first = scanner.refresh()
            except SysfsError as e:
                raise _Failure(f"{e}{_sys_hint(args.sysfs)}") from None
            shown_before = [first.inventory]

            def on_result(result: Any) -> None:
                lines = _watch_lines(shown_before[0], result, args.json)
                shown_before[0] = result.inventory
                try:
                    sys.stdout.writelines(lines)
                    sys.stdout.flush()
                except OSError as e:  # `fastvpd watch | head`, a full disk: stop
                    broken.append(e)
                    done.set()

            watcher = Watcher(scanner, on_result=on_result, interval=args.interval)
            try:
                watcher.start()
                if watcher.fallback is None:
                    how = (f"{watcher.source} events, and a probe of every PF every "
                           f"{args.interval:g} s")
                else:
                    how = f"a rescan every {args.interval:g} s ({watcher.fallback})"
                functions = _count(len(first.inventory), "PCI function")
                print(f"fastvpd: watching {shown(args.sysfs)} ({functions}): {shown(how)}; "
                      "Ctrl-C stops", file=sys.stderr, flush=True)
                done.wait()
            finally:
                watcher.stop()
    except KeyboardInterrupt:  # the way to stop it
        return 0
    finally:
        logger.removeHandler(handler)
    if not broken:
        return 0
    if isinstance(broken[0], BrokenPipeError):
        raise broken[0]  # main() treats it as `fastvpd scan | head`: not an error
    raise _Failure(f"stdout: {broken[0].strerror or broken[0]}")


# -- demo ------------------------------------------------------------------------------------------

_CAPTURE = ("mkdir -p /tmp/ghw && tar xzf tests/data/sysfs/ghw-i350-sriov.tar.gz -C /tmp/ghw && "
            "fastvpd scan --sysfs /tmp/ghw/sys")


def cmd_demo(args: argparse.Namespace) -> int:
    """This host's SR-IOV hardware, a tree given with --sysfs, or a synthetic host with two DPUs.

    Without --sysfs the demo tries /sys and uses the synthetic host when /sys has no SR-IOV PF
    (or no PCI tree); a tree given with --sysfs is shown as it is, and an unusable one is an error.
    """
    from . import testing
    from .samples import SAMPLES
    from .scanner import scan

    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="fastvpd-demo-") as tmp:
        inv = None
        why = "as asked"
        start = time.perf_counter()
        if args.sysfs is not None:
            inv = _scan(args.sysfs)
        elif not args.synthetic:
            try:
                inv = scan("/sys")
            except SysfsError:
                why = "no PCI tree under /sys"
            else:
                if not inv.pfs():
                    why, inv = "no SR-IOV hardware under /sys", None
        if inv is None:
            # the DPU case: VFs bound to vfio-pci for instances, no netdevs on the host
            testing.dpu_host(tmp, cards=2, pfs_per_card=2,
                             vfs_per_pf=8 if args.vfs is None else args.vfs,
                             vf_driver="vfio-pci", vf_netdevs=False)
            start = time.perf_counter()
            inv = scan(tmp)
            title = f"a synthetic host with two DPU cards ({why}; `fastvpd scan` scans this machine)"
            source = "synthetic"
            all_hint = None
        else:
            source = inv.sysfs or ""
            if os.path.realpath(source) == "/sys":
                title = f"this host's SR-IOV hardware, scanned from {shown(source)}"
            else:
                title = f"the sysfs tree at {shown(source)}"
            if not inv.pfs():
                title += " (no SR-IOV PFs in it)"
            all_hint = f"`fastvpd scan --sysfs {shown(source)} --all` lists them"
        nova = inv.to_nova()
        elapsed = time.perf_counter() - start
        if args.json:
            json.dump({"source": source, "scan_seconds": elapsed, "devices": nova,
                       "samples": {k: parse_vpd(v).to_dict() for k, v in SAMPLES.items()}},
                      out, indent=2)
            out.write("\n")
            return 0
        out.write(f"fastvpd demo: {title}\n\n")
        format_inventory(inv, out, all_hint=all_hint)
        out.write(f"\nscanned {len(inv)} functions in {elapsed * 1e3:.2f} ms "
                  f"({inv.counters.get('total', 0)} syscalls)\n")
        shown_dev = next(iter(inv.vfs() or inv.pfs() or inv.values()), None)
        if shown_dev is not None:
            out.write(f"\nwhat a compute agent reports for {shown_dev.dev_type[5:]} "
                      f"{shown_dev.address}:\n")
            out.write(json.dumps(shown_dev.nova_dict(), indent=2) + "\n")
        _demo_profiles(inv, out)
    out.write("\nbundled sample VPD blobs (`fastvpd vpd FILE` decodes your own):\n")
    for label, blob in SAMPLES.items():
        out.write(f"\n{label} ({len(blob)} bytes)\n")
        format_vpd(parse_vpd(blob), out, "  ")
    out.write("\nReal captures: the source tree's tests/data/sysfs/ghw-i350-sriov.tar.gz is the "
              "sysfs of a real host (two Intel I350 PFs, eight VFs). From the source tree:\n"
              f"  {_CAPTURE}\n"
              "Any copied sysfs tree works (`fastvpd demo --sysfs DIR` shows it here).\n")
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


# -- the parser ------------------------------------------------------------------------------------

def _pci_address(text: str) -> str:
    from .model import PciAddress

    try:
        return str(PciAddress.parse(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a PCI address DDDD:BB:SS.F: {text!r}") from None



def _interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text} seconds: give a number of seconds above 0")
    return seconds


def _vf_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= n <= 256:
        raise argparse.ArgumentTypeError(f"{n} VFs per PF: use 0 to 256")
    return n


_DESCRIPTION = """\
Facts about the PCI functions of a host with SmartNIC DPUs, as OpenStack Nova and Neutron need
them: card serial numbers (PCI Vital Product Data), PF MAC addresses and VF numbers."""

_EPILOG = """\
exit status: 0 ok, 1 runtime error (one line on stderr), 2 usage error, 130 interrupted.
Each command has its own --help. The VPD format and the sysfs layout are described in docs/
of the source tree."""

_VPD_EPILOG = f"""\
Only a regular file or stdin is read (a FIFO or device is refused without blocking); input larger
than {MAX_VPD_SIZE} bytes, the largest VPD, is an error.

--json prints one object:
  {{"source", "size", "name", "serial_number", "checksum_ok",
   "read_only": {{KEYWORD: {{"raw_hex": HEX, "text": TEXT or null}}}}, "read_write": {{...}},
   "problems": [{{"offset": N, "message": TEXT, "fatal": BOOL}}]}}
"text" is the value as libvirt and Nova read it, null when it is not printable ASCII; "fatal"
problems make --strict (and libvirt) reject the blob."""

_SCAN_EPILOG = """\
--json prints one object: {"sysfs": ROOT, "read_vpd": BOOL, "devices": [DEVICE, ...],
"problems": [{"address": ADDRESS or null, "message": TEXT}, ...]}, where each DEVICE has every
field of a PciDevice (its "vpd" as "fastvpd vpd --json" prints it, and its own "problems") and
"problems" lists every problem, null for those of the tree rather than one device.
--nova prints the list of device dicts Nova's libvirt driver reports (Inventory.to_nova()).

Reading VPD needs root; without it, or with --no-vpd, no card has a serial number. A copied or
captured tree works: point --sysfs at the folder that holds bus/pci/devices."""


_WATCH_EPILOG = """\
One line per device added, removed or changed, as it happens (a time, the event, the address,
then the device or the fields that changed, "FIELD: OLD -> NEW"). What it listens to is said
on stderr when it starts.

On the real /sys it listens for kernel or udev events and refreshes the functions they name at
once, and probes every PF every --interval seconds (a new MAC address sends no event). On a
copied or synthetic tree, or where no event can arrive (no pyudev, a container that gets no
uevents), it rescans the tree every --interval seconds instead. docs/udev.md of the source tree
has the details.

--json prints one object per line:
  {"time": ISO 8601, "event": "added", "address": ADDRESS, "device": DEVICE}
  {"time", "event": "removed", "address", "dev_type": TYPE or null}
  {"time", "event": "changed", "address", "changed": {FIELD: [OLD, NEW], ...}}
where DEVICE is a device as "fastvpd scan --json" prints it, and FIELD one of its fields.

Ctrl-C stops it, with exit status 0."""


_DOCTOR_EPILOG = """\
Every reason has a stable code, named with the component that would fail (Nova, libvirt,
Neutron's OVN driver, ovn-vif on the DPU); docs/doctor.md of the source tree lists them.

exit status: 0 when every VF a device_spec entry tags remote_managed is ready (without
--spec or --config: every VF), 1 when one is not, or none is, or an entry is invalid (and
on a runtime error, with one line on stderr), 2 usage error.

--json prints one object: {"sysfs", "ready", "exit_status", "counted_vfs", "ready_vfs",
"specs": [{"index", "entry", "valid", "remote_managed", "nova_trait_value", "vfs",
"reasons"}] or null, "reasons": [REASON], "notes": [REASON], "cards": [{"card", "serials",
"name", "ready", "vfs", "ready_vfs", "pfs", "reasons"}], "devices": [DEVICE]}, where each
DEVICE (a PF or a VF, in address order) has "address", "dev_type", "card", "ready" and
"reasons", and each REASON is {"code", "component", "message", "subject"}."""


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="fastvpd", description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"fastvpd {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                required=True)
    commands = {}

    p = commands["vpd"] = sub.add_parser(
        "vpd", help="decode a VPD blob (a sysfs vpd file, a dump, or - for stdin)",
        description="Decode a PCI VPD blob and print its fields, checksum, card serial number and\n"
                    "problems.", epilog=_VPD_EPILOG, formatter_class=raw)
    p.add_argument("path", metavar="PATH",
                   help="the blob: a file (e.g. /sys/bus/pci/devices/ADDRESS/vpd, which needs "
                        "root) or - for stdin")
    p.add_argument("--json", action="store_true", help="print JSON (the format is below)")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 1) on the first fatal format problem, as libvirt does")
    p.set_defaults(func=cmd_vpd)

    p = commands["scan"] = sub.add_parser(
        "scan", help="scan the PCI functions of a host",
        description="Scan every PCI function of a host in one pass and print them by card: serial\n"
                    "number, PFs with netdev, MAC and VFs; then the other functions and every\n"
                    "problem found.", epilog=_SCAN_EPILOG, formatter_class=raw)
    p.add_argument("--sysfs", default="/sys", metavar="ROOT",
                   help="the sysfs root to scan (default /sys)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print the devices and the problems as JSON (the format is below)")
    out.add_argument("--nova", action="store_true",
                     help="print the device dicts Nova reports, as a JSON list")
    p.add_argument("--no-vpd", action="store_true",
                   help="do not read VPD: no card serial numbers, but no root needed")
    p.add_argument("--all", action="store_true",
                   help="list every VF (by default one line per PF gives the first and last)")
    p.set_defaults(func=cmd_scan)

    p = commands["profile"] = sub.add_parser(
        "profile", help="print the Neutron binding:profile of a port on one device",
        description="Print, as JSON, the binding:profile Nova sends Neutron for a port on the PCI\n"
                    "device at ADDRESS (docs/nova-contract.md of the source tree).",
        formatter_class=raw)
    p.add_argument("address", type=_pci_address, metavar="ADDRESS",
                   help="PCI address of the VF (or PF), DDDD:BB:SS.F")
    p.add_argument("--physnet", metavar="NAME", help="physical_network of the port (default none)")
    p.add_argument("--remote-managed", action="store_true",
                   help="a remote-managed (DPU) port: fail unless the card serial, the PF MAC "
                        "and the VF number are all known")
    p.add_argument("--sysfs", default="/sys", metavar="ROOT",
                   help="the sysfs root to scan (default /sys)")
    p.set_defaults(func=cmd_profile)

    p = commands["devspec"] = sub.add_parser(
        "devspec", help="check [pci] device_spec entries against this host",
        description="Validate [pci] device_spec entries as Nova 34 does, against this host, and\n"
                    "list the devices each makes assignable. Exit 1 on an invalid entry; a\n"
                    "warning (exit 0) for remote_managed values Nova 34 does not report the\n"
                    "COMPUTE_REMOTE_MANAGED_PORTS trait for, and for entries matching nothing.",
        formatter_class=raw)
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--spec", action="append", metavar="JSON",
                       help="one device_spec value, as in nova.conf (repeat for more)")
    given.add_argument("--config", metavar="FILE",
                       help="read every device_spec of the [pci] section of a nova.conf")
    p.add_argument("--sysfs", default="/sys", metavar="ROOT",
                   help="the sysfs root to scan (default /sys)")
    p.add_argument("--json", action="store_true", help="print the specs and devices as JSON")
    p.set_defaults(func=cmd_devspec)

    p = commands["doctor"] = sub.add_parser(
        "doctor", help="tell whether each VF can back a remote-managed port, and why not",
        description="Check, per card, PF and VF, whether a VF can back a remote-managed (DPU)\n"
                    "port, and name every reason it cannot in the words of the component that\n"
                    "would fail. With --spec or --config, also what Nova makes of the\n"
                    "[pci] device_spec entries.", epilog=_DOCTOR_EPILOG, formatter_class=raw)
    p.add_argument("--sysfs", default="/sys", metavar="ROOT",
                   help="the sysfs root to scan (default /sys)")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--spec", action="append", metavar="JSON",
                       help="one device_spec value, as in nova.conf (repeat for more)")
    given.add_argument("--config", metavar="FILE",
                       help="read every device_spec of the [pci] section of a nova.conf")
    p.add_argument("--json", action="store_true", help="print the report as JSON (the format "
                                                       "is below)")
    p.set_defaults(func=cmd_doctor)

    p = commands["watch"] = sub.add_parser(
        "watch", help="print each PCI device added, removed or changed, as it happens",
        description="Watch the PCI functions of a host and print one line per device added,\n"
                    "removed or changed, driven by kernel or udev events where they arrive and\n"
                    "by a periodic rescan elsewhere, until Ctrl-C.", epilog=_WATCH_EPILOG,
        formatter_class=raw)
    p.add_argument("--sysfs", default="/sys", metavar="ROOT",
                   help="the sysfs root to watch (default /sys)")
    p.add_argument("--interval", type=_interval, default=1.0, metavar="S",
                   help="seconds between the periodic probes or rescans (default 1)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per line (the format is below)")
    p.set_defaults(func=cmd_watch)

    p = commands["demo"] = sub.add_parser(
        "demo", help="scan this host (or, without SR-IOV hardware, a synthetic one with two DPUs) "
                     "and decode sample VPD",
        description="Show what fastvpd reports: this host's SR-IOV hardware, or a synthetic host\n"
                    "with two DPU cards when /sys has none; then bundled sample VPD blobs.",
        formatter_class=raw)
    p.add_argument("--json", action="store_true",
                   help="print JSON: the source, the scan time, Nova's device dicts and the "
                        "decoded samples")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--sysfs", metavar="ROOT",
                       help="show this sysfs tree instead of /sys (an error if it is none)")
    where.add_argument("--synthetic", action="store_true",
                       help="show the synthetic host even when /sys has SR-IOV hardware")
    p.add_argument("--vfs", type=_vf_count, metavar="N",
                   help="VFs per PF of the synthetic host, 0-256 (default 8)")
    p.set_defaults(func=cmd_demo)
    return parser, commands


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; a usage error is reported with the usage of the command given.

    argparse hands arguments a subcommand does not know back to the top-level parser, which would
    print the top-level usage for them.
    """
    parser, commands = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "demo" and args.sysfs is not None and args.vfs is not None:
        commands["demo"].error("--vfs sets the synthetic host, not one given with --sysfs")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parse(argv)
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:  # whatever the locale, output never fails to encode
            reconfigure(errors="backslashreplace")
        return int(args.func(args))
    except KeyboardInterrupt:  # Ctrl-C: the operator knows; no traceback
        return 130
    except BrokenPipeError:  # `fastvpd scan | head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (_Failure, FastVpdError, OSError) as e:
        print(f"fastvpd: error: {shown(str(e))}", file=sys.stderr)
        return 1
    except MemoryError:
        print("fastvpd: error: out of memory", file=sys.stderr)
        return 1
