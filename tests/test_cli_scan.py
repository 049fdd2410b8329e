"""`fastvpd scan` and `fastvpd demo` as an operator and a script use them.

Every run is the real console script (or ``python -m fastvpd``) in a subprocess with a timeout
(tests/support.py), on synthetic trees from `fastvpd.testing` broken the way real hosts break.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastvpd import cli as cli_module
from fastvpd import testing
from fastvpd.scanner import scan
from fastvpd.testing import NicSpec, OtherSpec
from tests.support import cli, run_in_checkout, scratch_dir, without_dac_override

SERIALS = ("MT2113X00000", "MT2113X00001")
CAPTURE = Path(__file__).parent / "data" / "sysfs" / "ghw-i350-sriov.tar.gz"


@pytest.fixture(scope="module")
def host() -> Iterator[testing.BuiltHost]:
    """Two DPUs x 2 PFs x 4 VFs, a plain NIC and an NVMe drive."""
    with scratch_dir("cli") as d:
        yield testing.dpu_host(os.path.join(d, "sys"), cards=2, pfs_per_card=2, vfs_per_pf=4,
                               nics=[NicSpec()], others=[OtherSpec()])


@pytest.fixture
def small() -> Iterator[testing.BuiltHost]:
    """One DPU with one PF and 4 VFs, for a test to break."""
    with scratch_dir("cli-small") as d:
        yield testing.dpu_host(os.path.join(d, "sys"), cards=1, pfs_per_card=1, vfs_per_pf=4)


def ok(*argv: str, **kw: Any) -> str:
    proc = cli(*argv, **kw)
    assert proc.returncode == 0 and proc.stderr == "", (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stdout
    return proc.stdout


def one_error_line(*argv: str) -> str:
    proc = cli(*argv)
    assert proc.returncode == 1 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastvpd: error: "), proc.stderr
    return lines[0]


def block(out: str, start: str, end: str | None) -> str:
    """The text from the line starting with `start` up to the next line starting with `end`."""
    i = out.index(start)
    j = out.find(end, i + len(start)) if end is not None else -1
    return out[i:] if j < 0 else out[i:j]


def pf_block(out: str, pf: str) -> list[str]:
    """The PF's line and the lines of its VFs below it."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  PF {pf} "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")),
               len(lines))
    return lines[start:end]


# -- scan: the table -------------------------------------------------------------------------------

def test_scan_table_is_grouped_by_card(host: testing.BuiltHost) -> None:
    out = ok("scan", "--sysfs", host.root)
    n = len(host.functions)
    assert out.splitlines()[0] == (f"{n} PCI functions: 4 PFs, 16 VFs, "
                                   "2 cards with a serial number")
    for i, card in enumerate(host.cards):
        assert card.serial == SERIALS[i]
        text = block(out, f"card {card.serial}", "\ncard " if i == 0 else "\nother PCI functions")
        assert "BlueField-2 DPU" in text.splitlines()[0]  # the product name from the VPD
        pf_lines = [line for line in text.splitlines() if line.strip().startswith("PF ")]
        assert [line.split()[1] for line in pf_lines] == list(card.pfs)
        for line, pf in zip(pf_lines, card.pfs):
            f = host.functions[pf]
            assert f.mac_address in line and f.netdevs[0] in line
            assert "15b3:a2d6" in line and "mlx5_core" in line
            assert line.endswith("VFs 4/8 (101e)")
            vfs = f.vfs
            assert pf_block(out, pf)[1:] == [
                f"    VFs {vfs[0]} (vf 0) .. {vfs[-1]} (vf 3); --all lists them"]
            for middle in vfs[1:-1]:  # summarised, not listed
                assert middle not in out
    others = block(out, "other PCI functions", None)
    for a, f in host.functions.items():
        if f.dev_type == "type-PCI":
            assert a in others and f"{f.vendor_id}:{f.product_id}" in others
    assert "problems" not in out and "hint" not in out


def test_python_m_and_console_script_agree(host: testing.BuiltHost) -> None:
    for args in (["scan", "--sysfs", host.root], ["scan", "--sysfs", host.root, "--json"]):
        assert ok(*args) == ok(*args, module=True)


def test_scan_all_lists_every_vf_with_its_number(host: testing.BuiltHost) -> None:
    out = ok("scan", "--sysfs", host.root, "--all")
    for pf in host.pfs:
        listed = pf_block(out, pf)[1:]
        vfs = host.functions[pf].vfs
        assert len(listed) == len(vfs)
        for n, (line, vf) in enumerate(zip(listed, vfs)):
            assert line.split()[:3] == ["vf", str(n), vf], line
            assert host.functions[vf].netdevs[0] in line and "mlx5_core" in line
    assert "--all lists them" not in out


@pytest.mark.parametrize("gone", [0, 1, 3])
def test_vf_summary_is_truthful_when_a_vf_is_missing(small: testing.BuiltHost, gone: int) -> None:
    """A VF destroyed under a scan (its virtfn link left dangling): the PF says how many VFs exist,
    the summary labels the first and last VFs with their real numbers and names the missing one."""
    pf = small.pfs[0]
    vfs = small.functions[pf].vfs
    testing.dangling_virtfn_link(small, pf, gone)
    left = [(n, vf) for n, vf in enumerate(vfs) if n != gone]
    out = ok("scan", "--sysfs", small.root)
    head, summary = pf_block(out, pf)
    assert head.endswith("VFs 3/8 (101e)")
    (n0, first), (n1, last) = left[0], left[-1]
    assert summary == (f"    VFs {first} (vf {n0}) .. {last} (vf {n1}); missing: vf {gone}; "
                       "--all lists them")
    listed = pf_block(ok("scan", "--sysfs", small.root, "--all"), pf)[1:]
    assert listed[gone].split() == ["vf", str(gone), "missing"]
    assert [line.split()[:3] for line in listed if "missing" not in line] == [
        ["vf", str(n), vf] for n, vf in left]


def test_scan_all_with_a_vf_of_unknown_number(small: testing.BuiltHost) -> None:
    """A VF whose virtfn link is gone (as while sriov_numvfs is being lowered) has no vf_num."""
    pf = small.pfs[0]
    vfs = small.functions[pf].vfs
    testing.remove_attribute(small, pf, "virtfn2")
    inv = scan(small)
    assert inv[vfs[2]].vf_num is None and inv[vfs[2]].parent_addr == pf
    listed = pf_block(ok("scan", "--sysfs", small.root, "--all"), pf)[1:]
    assert [line.split()[:3] for line in listed] == [
        ["vf", "0", vfs[0]], ["vf", "1", vfs[1]], ["vf", "2", "missing"], ["vf", "3", vfs[3]],
        ["vf", "?", vfs[2]]]
    assert listed[-1].endswith("(no virtfn link to it)")
    head, summary = pf_block(ok("scan", "--sysfs", small.root), pf)
    assert head.endswith("VFs 4/8 (101e)")
    assert summary == (f"    VFs {vfs[0]} (vf 0) .. {vfs[3]} (vf 3); missing: vf 2; "
                       "1 with no VF number (no virtfn link to it); --all lists them")


def test_missing_vfs_are_listed_as_ranges() -> None:
    assert cli_module._ranges([1]) == "1"
    assert cli_module._ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"


def test_scan_shows_problems(small: testing.BuiltHost) -> None:
    b = testing.garbage_attribute(small, small.pfs[0], "numa_node")
    testing.non_pci_entry(small)
    out = ok("scan", "--sysfs", small.root)
    text = block(out, "problems (", None)
    assert f"{small.pfs[0]}: numa_node: garbage content" in text and b.path in text
    assert "host: name: not a PCI address" in text and "serial8250" in text


def test_non_utf8_driver_and_netdev_names_are_escaped(small: testing.BuiltHost) -> None:
    """Names are bytes in sysfs: one that is no UTF-8 must not crash the output (it did, with
    UnicodeEncodeError under a UTF-8 locale); it is shown with \\xNN escapes."""
    pf = small.pfs[0]
    vf = small.functions[pf].vfs[0]
    drivers = os.fsencode(os.path.join(small.root, "bus", "pci", "drivers"))
    os.rename(drivers + b"/mlx5_core", drivers + b"/mlx5\xff_core")
    for address in (pf, vf):  # the driver links name the renamed driver
        link = os.fsencode(small.device_path(address)) + b"/driver"
        target = os.readlink(link).replace(b"mlx5_core", b"mlx5\xff_core")
        os.unlink(link)
        os.symlink(target, link)
    net = os.fsencode(small.device_path(pf)) + b"/net/"
    os.rename(net + os.fsencode(small.functions[pf].netdevs[0]), net + b"eth\xfe0")
    for env in ({"LC_ALL": "C.UTF-8"}, {"LC_ALL": "C", "PYTHONIOENCODING": "ascii"}):
        out = ok("scan", "--sysfs", small.root, env=env)
        head = pf_block(out, pf)[0]
        assert "  mlx5\\xff_core  netdev eth\\xfe0  " in head
        listed = pf_block(ok("scan", "--sysfs", small.root, "--all", env=env), pf)[1]
        assert listed.split()[:4] == ["vf", "0", vf, "mlx5\\xff_core"]
    data = json.loads(ok("scan", "--sysfs", small.root, "--json"))
    dev = next(d for d in data["devices"] if d["address"] == pf)
    assert dev["driver"] == os.fsdecode(b"mlx5\xff_core")  # JSON keeps the name lossless
    assert dev["netdevs"] == [os.fsdecode(b"eth\xfe0")]


def test_no_vpd_says_vpd_was_not_read(host: testing.BuiltHost) -> None:
    out = ok("scan", "--sysfs", host.root, "--no-vpd")
    first = out.splitlines()[0]
    assert first == (f"{len(host.functions)} PCI functions: 4 PFs, 16 VFs, VPD not read (--no-vpd), "
                     "so no card serial numbers")
    assert "cards with a serial number" not in out and "without a card serial" not in out
    assert not any(s in out for s in SERIALS) and "\ncard " not in out
    assert "\nSR-IOV PFs\n" in out
    assert all(f"PF {pf}" in out for pf in host.pfs)
    got = json.loads(ok("scan", "--sysfs", host.root, "--no-vpd", "--nova"))
    assert got == json.loads(json.dumps(scan(host, read_vpd=False).to_nova()))
    assert not any("vpd" in d.get("capabilities", {}) for d in got)
    assert any("sriov" in d.get("capabilities", {}) for d in got)  # VF facts do not need VPD
    data = json.loads(ok("scan", "--sysfs", host.root, "--no-vpd", "--json"))
    assert data["read_vpd"] is False and all(d["vpd"] is None for d in data["devices"])


def test_unreadable_vpd_gives_one_hint_that_it_needs_root(host: testing.BuiltHost) -> None:
    with scratch_dir("cli-noroot") as d:
        h = testing.dpu_host(os.path.join(d, "sys"), cards=2, pfs_per_card=2, vfs_per_pf=2)
        for pf in h.pfs:
            testing.unreadable_attribute(h, pf, "vpd")  # the kernel's vpd is 0600 root
        proc = cli("scan", "--sysfs", h.root, prefix=without_dac_override())
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert "SR-IOV PFs without a card serial number" in out and "0 cards" in out
        assert sum("vpd: unreadable: Permission denied (EACCES)" in line
                   for line in out.splitlines()) == 4
        hints = [line for line in out.splitlines() if line.startswith("hint: ")]
        assert hints == ["hint: reading VPD needs root: 4 VPD files could not be read (permission "
                         "denied), so no card serial number came from them"]
    # Nothing denied, no hint; other VPD problems are no reason for it either.
    assert "hint" not in ok("scan", "--sysfs", host.root)


# -- scan: JSON ------------------------------------------------------------------------------------

def test_scan_json_holds_devices_and_every_problem(small: testing.BuiltHost) -> None:
    pf = small.pfs[0]
    testing.garbage_attribute(small, pf, "numa_node")
    testing.non_pci_entry(small)
    data = json.loads(ok("scan", "--sysfs", small.root, "--json"))
    inv = scan(small)
    assert list(data) == ["sysfs", "read_vpd", "devices", "problems"]
    assert data["sysfs"] == small.root and data["read_vpd"] is True
    assert data["devices"] == json.loads(json.dumps([d.to_dict() for d in inv.values()]))
    dev = next(d for d in data["devices"] if d["address"] == pf)
    assert dev["card_serial_number"] == SERIALS[0] and dev["vf_num"] is None
    assert dev["vpd"]["read_only"]["SN"] == {"raw_hex": SERIALS[0].encode().hex(),
                                             "text": SERIALS[0]}
    vf0 = next(d for d in data["devices"] if d["address"] == small.functions[pf].vfs[0])
    assert vf0["vf_num"] == 0 and vf0["pf_mac_address"] == small.functions[pf].mac_address
    expected = [{"address": a, "message": p} for a, d in inv.items() for p in d.problems]
    expected += [{"address": None, "message": p} for p in inv.problems]
    assert data["problems"] == expected
    assert any(p["address"] == pf and p["message"].startswith("numa_node: garbage content")
               for p in data["problems"])
    assert any(p["address"] is None and "serial8250" in p["message"] for p in data["problems"])


def test_scan_nova_is_the_plain_nova_list(host: testing.BuiltHost) -> None:
    got = json.loads(ok("scan", "--sysfs", host.root, "--nova"))
    assert got == json.loads(json.dumps(scan(host).to_nova()))
    assert len(got) == len(host.functions)
    vf = next(d for d in got if d["address"] == host.vfs[0])
    assert vf["capabilities"]["vpd"]["card_serial_number"] == SERIALS[0]
    assert vf["capabilities"]["sriov"]["vf_num"] == 0


# -- scan: bad roots -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["missing", "file", "not-sysfs"])
def test_scan_bad_root_is_one_line_and_exit_1(kind: str, tmp_path: Path) -> None:
    root = tmp_path / kind
    if kind == "file":
        root.write_text("x")
    elif kind == "not-sysfs":
        (root / "bus").mkdir(parents=True)
    line = one_error_line("scan", "--sysfs", str(root))
    assert str(root) in line and "sys folder" not in line


def test_extraction_root_of_a_capture_gets_a_hint_naming_its_sys_folder(tmp_path: Path) -> None:
    with tarfile.open(CAPTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    assert (tmp_path / "sys" / "bus" / "pci" / "devices").is_dir()
    line = one_error_line("scan", "--sysfs", str(tmp_path))
    assert "not a sysfs tree" in line
    assert line.endswith(f"; the sysfs tree is in its sys folder: --sysfs {tmp_path / 'sys'}")
    assert "2 PFs, 8 VFs" in ok("scan", "--sysfs", str(tmp_path / "sys")).splitlines()[0]
    assert "sys folder" in one_error_line("demo", "--sysfs", str(tmp_path))


# -- demo ------------------------------------------------------------------------------------------

def _vf_nova_dict(out: str) -> dict[str, Any]:
    m = re.search(r"what a compute agent reports for VF (\S+):\n(\{.*?\n\})\n", out, re.S)
    assert m, out
    d = json.loads(m.group(2))
    assert d["address"] == m.group(1)
    return d


def _suggested_commands(out: str) -> list[list[str]]:
    """Every `fastvpd ...` command line the output suggests, as an argument list."""
    return [c.split()[1:] for c in re.findall(r"`(fastvpd [^`]*)`", out)]


def _assert_suggestions_parse(out: str) -> None:
    """The output suggests no option the command it names rejects (the demo once told users to
    pass --all, which it rejects)."""
    parser, _ = cli_module._parser()
    suggested = _suggested_commands(out)
    assert suggested
    for argv in suggested:
        argv = [a if a not in ("FILE", "DIR") else "x" for a in argv]
        args, extra = parser.parse_known_args(argv)
        assert extra == [], argv


def test_demo() -> None:
    out = ok("demo", "--synthetic")
    assert out.startswith("fastvpd demo: a synthetic host with two DPU cards (as asked;")
    for serial in SERIALS:
        assert re.search(rf"^card {serial}\b", out, re.M), out
    assert re.search(r"^scanned \d+ functions in \d+\.\d+ ms \(\d+ syscalls\)$", out, re.M)
    vf = _vf_nova_dict(out)
    assert vf["dev_type"] == "type-VF"
    sriov = vf["capabilities"]["sriov"]
    assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", sriov["pf_mac_address"])
    assert sriov["vf_num"] == 0
    assert vf["capabilities"]["vpd"]["card_serial_number"] in SERIALS
    assert "Real captures" in out
    assert "--all" not in out  # the synthetic host is gone when the demo ends: nothing to list
    assert re.search(r"^    VFs \S+ \(vf 0\) \.\. \S+ \(vf 7\)$", out, re.M)
    _assert_suggestions_parse(out)


def test_demo_json() -> None:
    data = json.loads(ok("demo", "--json", "--synthetic"))
    assert data["source"] == "synthetic"
    assert isinstance(data["scan_seconds"], float) and data["scan_seconds"] >= 0
    devices = data["devices"]
    assert sum(d["dev_type"] == "type-PF" for d in devices) == 4
    assert sum(d["dev_type"] == "type-VF" for d in devices) == 32
    serials = {d["capabilities"]["vpd"]["card_serial_number"] for d in devices
               if "vpd" in d.get("capabilities", {})}
    assert serials == set(SERIALS)
    assert set(data["samples"]) == {"dpu", "nic-with-vpd-w", "damaged"}
    assert data["samples"]["dpu"]["read_only"]["SN"]["text"] == "MT2113X00042"


def test_demo_without_vfs() -> None:
    out = ok("demo", "--vfs", "0", "--synthetic")
    assert "card MT2113X00000" in out and "VFs 0/8" in out


def test_demo_of_a_copied_tree_is_called_by_its_path(host: testing.BuiltHost) -> None:
    out = ok("demo", "--sysfs", host.root)
    assert out.startswith(f"fastvpd demo: the sysfs tree at {host.root}\n")
    assert "this host" not in out
    assert re.search(rf"^scanned {len(host.functions)} functions in ", out, re.M)
    hint = f"`fastvpd scan --sysfs {host.root} --all` lists them"
    assert all(line.endswith(hint) for line in out.splitlines() if line.startswith("    VFs "))
    _assert_suggestions_parse(out)
    data = json.loads(ok("demo", "--sysfs", host.root, "--json"))
    assert data["source"] == host.root
    assert data["devices"] == json.loads(json.dumps(scan(host).to_nova()))


def test_demo_of_a_tree_without_sriov_shows_that_tree(tmp_path: Path) -> None:
    testing.build_host(tmp_path, testing.HostSpec(nics=(NicSpec(),)))
    out = ok("demo", "--sysfs", str(tmp_path))
    assert out.startswith(f"fastvpd demo: the sysfs tree at {tmp_path} (no SR-IOV PFs in it)\n")
    assert "what a compute agent reports for PCI 0000:03:00.0:" in out
    assert "card MT2113X" not in out


def test_demo_of_an_empty_tree(tmp_path: Path) -> None:
    (tmp_path / "bus" / "pci" / "devices").mkdir(parents=True)
    out = ok("demo", "--sysfs", str(tmp_path))
    assert "0 PCI functions" in out and "what a compute agent reports" not in out


@pytest.mark.parametrize("kind", ["missing", "not-sysfs"])
def test_demo_of_a_bad_tree_is_an_error_not_a_fallback(kind: str, tmp_path: Path) -> None:
    root = tmp_path / "nonexistent" if kind == "missing" else tmp_path
    line = one_error_line("demo", "--sysfs", str(root))
    assert str(root) in line and "synthetic" not in line


def test_demo_real_capture_hint_works_as_printed(tmp_path: Path) -> None:
    out = ok("demo", "--synthetic")
    (command,) = [line.strip() for line in out.splitlines() if "tar xzf" in line]
    assert command.startswith("mkdir -p /tmp/ghw && ")
    proc = run_in_checkout(command, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 PFs, 8 VFs" in proc.stdout.splitlines()[0]
