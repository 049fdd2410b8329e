"""The floor of `fastvpd.scan(root).to_nova()`: what no implementation can do without.

Two parts, compiled when a benchmark asks for them (`Floor(workdir)`), into a temporary
directory: nothing generated is kept in the repository.

- `floor.c`: the system calls Nova's dicts need and nothing else (its header says which), with the
  PFs' ``virtfn`` links counted by listing the PF directory (``probe=False``) or by probing
  ``readlinkat`` (``probe=True``). Called through ctypes, in the benchmark's own process.
- `nova_floor.pyx`: the dicts built from precomputed strings (`Floor.runs` makes them, untimed,
  from what the C part found), the cheapest way this code knows.

The floor of a scan is the cheaper C variant plus the builder (benchmarks/NOTES.md).
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import os
import pathlib
import subprocess
import sys
import sysconfig
from types import ModuleType
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
COUNTERS = ("openat", "read", "getdents64", "readlinkat", "close")
# The same optimisation level as fastvpd's own extensions (meson buildtype=release: -O3).
CFLAGS = ["-O3", "-fPIC", "-shared", "-D_GNU_SOURCE", "-Wall", "-Wno-format-truncation"]


def _cc(sources: list[str], output: pathlib.Path, extra: list[str] = ()) -> None:
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, *CFLAGS, *extra, *sources, "-o", str(output)], check=True)


def _cython_module(pyx: pathlib.Path, workdir: pathlib.Path) -> ModuleType:
    c_file = workdir / (pyx.stem + ".c")
    subprocess.run([sys.executable, "-m", "cython", "-3", str(pyx), "-o", str(c_file)],
                   check=True)
    so = workdir / (pyx.stem + sysconfig.get_config_var("EXT_SUFFIX"))
    _cc([str(c_file)], so, ["-I" + sysconfig.get_paths()["include"], "-Wno-unused-function"])
    loader = importlib.machinery.ExtensionFileLoader(pyx.stem, str(so))
    spec = importlib.util.spec_from_file_location(pyx.stem, so, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class Floor:
    """The compiled floor. `scan` is the timed C part, `build` the timed dict builder."""

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        work = pathlib.Path(workdir)
        so = work / "floor.so"
        _cc([str(HERE / "floor.c")], so)
        self._lib = ctypes.CDLL(str(so))
        self._lib.floor_scan.argtypes = [ctypes.c_char_p, ctypes.c_int,
                                         ctypes.POINTER(ctypes.c_long)]
        self._lib.floor_scan.restype = ctypes.c_long
        self._lib.floor_list_bus.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_long)]
        self._lib.floor_list_bus.restype = ctypes.c_long
        self._counters = (ctypes.c_long * len(COUNTERS))()
        self._builder = _cython_module(HERE / "nova_floor.pyx", work)
        self.build = self._builder.build

    def scan(self, root: bytes, probe: bool) -> int:
        """Scan `root` (bytes, as the C code takes it); the number of functions found."""
        n = self._lib.floor_scan(root, int(probe), self._counters)
        if n < 0:
            raise OSError(f"floor scan of {root!r} failed")
        return n

    def list_bus(self, root: bytes) -> int:
        """Only list ``bus/pci/devices`` (the part of a refresh that re-lists): its entries."""
        n = self._lib.floor_list_bus(root, self._counters)
        if n < 0:
            raise OSError(f"floor listing of {root!r} failed")
        return n

    def counters(self) -> dict[str, int]:
        """The system calls of the last `scan` or `list_bus`, by name, and their total."""
        out = dict(zip(COUNTERS, self._counters))
        out["total"] = sum(self._counters)
        return out

    def _result(self) -> tuple[list[list[str]], list[str], list[tuple[int, int, int, int]]]:
        facts, facts_n = ctypes.c_char_p(), ctypes.c_size_t()
        addrs, addrs_n = ctypes.c_char_p(), ctypes.c_size_t()
        rows = ctypes.POINTER(ctypes.c_int32)()
        self._lib.floor_result(ctypes.byref(facts), ctypes.byref(facts_n), ctypes.byref(addrs),
                               ctypes.byref(addrs_n), ctypes.byref(rows))
        lines = [line.split(" ", 12) for line in
                 ctypes.string_at(facts, facts_n.value).decode().splitlines()]
        addresses = ctypes.string_at(addrs, addrs_n.value).decode().splitlines()
        flat = rows[:4 * len(addresses)]
        return lines, addresses, [tuple(flat[i:i + 4]) for i in range(0, len(flat), 4)]

    def runs(self, root: bytes, probe: bool = True) -> tuple[list[tuple[Any, ...]], int]:
        """Scan `root` and turn what was found into the builder's input (untimed preparation):
        ``(runs, number of rows)`` for `build`."""
        self.scan(root, probe)
        lines, addresses, rows = self._result()
        funcs = {}
        for (index, kind, address, vendor, device, _cls, numa, vf_device, _count, _driver,
             ifname, mac, serial) in lines:
            funcs[int(index)] = {
                "kind": kind, "address": address, "vendor": vendor, "device": device,
                "numa": None if int(numa) < 0 else int(numa), "vf_device": vf_device,
                "ifname": None if ifname == "-" else ifname, "mac": None if mac == "-" else mac,
                "serial": None if serial == "-" else serial,
            }
        text = "".join(a + "\n" for a in addresses)
        dev_text = "".join("pci_" + a.replace(":", "_").replace(".", "_") + "\n"
                           for a in addresses)
        starts, pos = [], 0
        for a in addresses:
            starts.append(pos)
            pos += len(a) + 1
        vf_nums = tuple(range(max([r[2] for r in rows] + [0]) + 1))
        runs: list[tuple[Any, ...]] = []
        i = 0
        while i < len(rows):
            f, pf, vf, _ = rows[i]
            if f >= 0:
                runs.append(_function_run(funcs[f]))
                i += 1
                continue
            j = i + 1
            while (j < len(rows) and rows[j][0] < 0 and rows[j][1] == pf
                   and rows[j][2] == rows[j - 1][2] + 1):
                j += 1
            p = funcs[pf]
            width = len(addresses[i])
            plain, with_ifname = _vf_templates(p)
            netdev = bytes(r[3] for r in rows[i:j])
            runs.append((1, text, starts[i], width, dev_text, starts[i] + 4 * i, width + 4, j - i,
                         plain, with_ifname, netdev, vf_nums[vf:vf + j - i], p["mac"],
                         p["serial"]))
            i = j
        return runs, len(rows)


def _dev_id(address: str) -> str:
    return "pci_" + address.replace(":", "_").replace(".", "_")


def _function_run(f: dict[str, Any]) -> tuple[Any, ...]:
    """A PF or plain function: its whole dict, and its capabilities (copied per build)."""
    d: dict[str, Any] = {
        "dev_id": _dev_id(f["address"]), "address": f["address"], "product_id": f["device"],
        "vendor_id": f["vendor"], "numa_node": f["numa"],
        "label": f"label_{f['vendor']}_{f['device']}",
        "dev_type": "type-PF" if f["kind"] == "PF" else "type-PCI",
    }
    caps = {"vpd": {"card_serial_number": f["serial"]}} if f["serial"] else None
    if caps:
        d["capabilities"] = None
    if f["kind"] == "PF" and f["mac"] is not None:
        d["mac_address"] = f["mac"]
    return (0, d, caps)


def _vf_templates(pf: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A VF's dict but for its own address and capabilities: without and with parent_ifname."""
    d: dict[str, Any] = {
        "dev_id": None, "address": None, "product_id": pf["vf_device"], "vendor_id": pf["vendor"],
        "numa_node": pf["numa"], "label": f"label_{pf['vendor']}_{pf['vf_device']}",
        "dev_type": "type-VF", "parent_addr": pf["address"],
    }
    with_ifname = dict(d, parent_ifname=pf["ifname"]) if pf["ifname"] else dict(d)
    for t in (d, with_ifname):
        if pf["mac"] is not None or pf["serial"]:
            t["capabilities"] = None
    return d, with_ifname
