"""`fastvpd scan` and `fastvpd demo` as an operator and a script use them.

Most runs call `fastvpd.cli.main` in-process (fast); a few go through ``python -m fastvpd`` and the
``fastvpd`` console script to check exit codes, stderr and that both entry points agree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastvpd import testing
from fastvpd.cli import main
from fastvpd.scanner import scan
from fastvpd.testing import NicSpec, OtherSpec
from tests.support import scratch_dir

SERIALS = ("MT2113X00000", "MT2113X00001")


@pytest.fixture(scope="module")
def host() -> Iterator[testing.BuiltHost]:
    """Two DPUs x 2 PFs x 4 VFs, a plain NIC and an NVMe drive."""
    with scratch_dir("cli") as d:
        yield testing.dpu_host(os.path.join(d, "sys"), cards=2, pfs_per_card=2, vfs_per_pf=4,
                               nics=[NicSpec()], others=[OtherSpec()])


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run(*argv: str, script: bool = False) -> subprocess.CompletedProcess[str]:
    if script:
        exe = Path(sys.executable).with_name("fastvpd")
        if not exe.exists():
            found = shutil.which("fastvpd")
            if found is None:
                pytest.skip("no fastvpd console script installed")
            exe = Path(found)
        cmd = [str(exe), *argv]
    else:
        cmd = [sys.executable, "-m", "fastvpd", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def block(out: str, start: str, end: str | None) -> str:
    """The text from the line starting with `start` up to the next line starting with `end`."""
    i = out.index(start)
    j = out.find(end, i + len(start)) if end is not None else -1
    return out[i:] if j < 0 else out[i:j]


# -- scan ------------------------------------------------------------------------------------------

def test_scan_table_is_grouped_by_card(host: testing.BuiltHost,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "scan", "--sysfs", host.root)
    assert code == 0 and err == ""
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
            assert "VFs 4/8 (101e)" in line
            vfs = f.vfs
            assert f"VFs {vfs[0]} (vf 0) .. {vfs[-1]} (vf 3); --all lists them" in text
            for middle in vfs[1:-1]:  # summarised, not listed
                assert middle not in out
    others = block(out, "other PCI functions", None)
    for a, f in host.functions.items():
        if f.dev_type == "type-PCI":
            assert a in others and f"{f.vendor_id}:{f.product_id}" in others
    assert "problems" not in out


def test_scan_all_lists_every_vf_with_its_number(host: testing.BuiltHost,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "scan", "--sysfs", host.root, "--all")
    assert code == 0
    lines = out.splitlines()
    for pf in host.pfs:
        start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"PF {pf}"))
        listed = lines[start + 1:start + 1 + len(host.functions[pf].vfs)]
        for n, (line, vf) in enumerate(zip(listed, host.functions[pf].vfs)):
            assert line.split()[:3] == ["vf", str(n), vf], line
            assert host.functions[vf].netdevs[0] in line and "mlx5_core" in line
    assert "--all lists them" not in out


def test_scan_json_equals_to_nova(host: testing.BuiltHost,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "scan", "--sysfs", host.root, "--json")
    assert code == 0 and err == ""
    got = json.loads(out)
    assert got == json.loads(json.dumps(scan(host).to_nova()))
    assert len(got) == len(host.functions)
    vf = next(d for d in got if d["address"] == host.vfs[0])
    assert vf["capabilities"]["vpd"]["card_serial_number"] == SERIALS[0]
    assert vf["capabilities"]["sriov"]["vf_num"] == 0


def test_scan_no_vpd_reports_no_serials(host: testing.BuiltHost,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "scan", "--sysfs", host.root, "--no-vpd")
    assert code == 0
    assert "0 cards with a serial number" in out.splitlines()[0]
    assert not any(s in out for s in SERIALS) and "\ncard " not in out
    assert "SR-IOV PFs without a card serial number" in out
    assert all(f"PF {pf}" in out for pf in host.pfs)
    code, out, _ = run_main(capsys, "scan", "--sysfs", host.root, "--no-vpd", "--json")
    got = json.loads(out)
    assert got == json.loads(json.dumps(scan(host, read_vpd=False).to_nova()))
    assert not any("vpd" in d.get("capabilities", {}) for d in got)
    assert any("sriov" in d.get("capabilities", {}) for d in got)  # VF facts do not need VPD


def test_scan_shows_problems(capsys: pytest.CaptureFixture[str]) -> None:
    with scratch_dir("cli-broken") as d:
        h = testing.dpu_host(os.path.join(d, "sys"), cards=1, pfs_per_card=1, vfs_per_pf=2)
        b = testing.garbage_attribute(h, h.pfs[0], "numa_node")
        testing.non_pci_entry(h)
        code, out, _ = run_main(capsys, "scan", "--sysfs", h.root)
    assert code == 0
    text = block(out, "problems (", None)
    assert f"{h.pfs[0]}: numa_node: garbage content" in text and b.path in text
    assert "host: name: not a PCI address" in text and "serial8250" in text


@pytest.mark.parametrize("kind", ["missing", "file", "not-sysfs"])
def test_scan_bad_root_is_one_line_and_exit_1(kind: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / kind
    if kind == "file":
        root.write_text("x")
    elif kind == "not-sysfs":
        (root / "bus").mkdir(parents=True)
    code, out, err = run_main(capsys, "scan", "--sysfs", str(root))
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastvpd: error: ") and str(root) in lines[0]


def test_scan_bad_root_through_python_m(tmp_path: Path) -> None:
    proc = run("scan", "--sysfs", str(tmp_path / "missing"))
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "No such file or directory" in lines[0]
    assert "Traceback" not in proc.stderr


# -- demo ------------------------------------------------------------------------------------------

def _vf_nova_dict(out: str) -> dict[str, Any]:
    m = re.search(r"what a compute agent reports for VF (\S+):\n(\{.*?\n\})\n", out, re.S)
    assert m, out
    d = json.loads(m.group(2))
    assert d["address"] == m.group(1)
    return d


def test_demo(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "demo", "--synthetic")
    assert code == 0 and err == ""
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
    assert "Real captures" in out and "fastvpd scan --sysfs" in out


def test_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "demo", "--json", "--synthetic")
    assert code == 0
    data = json.loads(out)
    assert data["source"] == "synthetic"
    assert isinstance(data["scan_seconds"], float) and data["scan_seconds"] >= 0
    devices = data["devices"]
    assert sum(d["dev_type"] == "type-PF" for d in devices) == 4
    assert sum(d["dev_type"] == "type-VF" for d in devices) == 32
    serials = {d["capabilities"]["vpd"]["card_serial_number"] for d in devices
               if "vpd" in d.get("capabilities", {})}
    assert serials == set(SERIALS)
    assert data["samples"]


def test_demo_without_vfs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "demo", "--vfs", "0", "--synthetic")
    assert code == 0 and "card MT2113X00000" in out


def test_demo_scans_a_host_that_has_sriov_hardware(capsys: pytest.CaptureFixture[str],
                                                   host: testing.BuiltHost) -> None:
    code, out, _ = run_main(capsys, "demo", "--sysfs", host.root)
    assert code == 0
    assert out.startswith(f"fastvpd demo: this host's SR-IOV hardware, scanned from {host.root}")
    assert re.search(rf"^scanned {len(host.functions)} functions in ", out, re.M)
    code, out, _ = run_main(capsys, "demo", "--sysfs", host.root, "--json")
    assert json.loads(out)["source"] == host.root
    assert json.loads(out)["devices"] == scan(host).to_nova()


@pytest.mark.parametrize("tree", ["not-a-sysfs", "no-pfs"])
def test_demo_falls_back_to_the_synthetic_host(tree: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    if tree == "no-pfs":  # a PCI tree with one plain NIC, like a machine without SR-IOV
        testing.build_host(tmp_path, testing.HostSpec(nics=(NicSpec(),)))
    code, out, _ = run_main(capsys, "demo", "--sysfs", str(tmp_path))
    assert code == 0
    assert out.startswith(f"fastvpd demo: a synthetic host with two DPU cards (no SR-IOV hardware "
                          f"under {tmp_path};")
    assert re.search(r"^card MT2113X00000\b", out, re.M)


@pytest.mark.parametrize("vfs", ["-1", "100000"])
def test_demo_rejects_impossible_vf_counts(vfs: str) -> None:
    proc = run("demo", "--vfs", vfs)
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr


# -- entry points ----------------------------------------------------------------------------------

def test_python_m_and_console_script_agree(host: testing.BuiltHost) -> None:
    by_module = run("scan", "--sysfs", host.root, "--json")
    by_script = run("scan", "--sysfs", host.root, "--json", script=True)
    assert by_module.returncode == by_script.returncode == 0
    assert by_module.stderr == by_script.stderr == ""
    assert by_module.stdout == by_script.stdout
    assert json.loads(by_module.stdout) == json.loads(json.dumps(scan(host).to_nova()))
    demo = run("demo", "--json", "--synthetic", script=True)
    assert demo.returncode == 0 and len(json.loads(demo.stdout)["devices"]) == 36
    assert run("scan", "--bogus").returncode == run("scan", "--bogus", script=True).returncode == 2
