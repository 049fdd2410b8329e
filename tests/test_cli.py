"""The ``fastvpd`` command as an operator and a script use it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import fastvpd
from fastvpd.cli import main
from fastvpd.samples import SAMPLES
from fastvpd.vpd import escape_value


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastvpd", *args], input=stdin,
                          capture_output=True, timeout=120)


def test_vpd_prints_fields_with_long_names_checksum_and_serial(tmp_path, capsys):
    path = tmp_path / "vpd"
    path.write_bytes(SAMPLES["nic-with-vpd-w"])
    assert main(["vpd", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Product Name: E810-XXV 25GbE Controller" in out
    assert "[PN] Part number: VK88G" in out
    assert "[V0] Vendor specific: FFV20.5.13\\x00" in out  # every byte shown (lspci hides a last NUL)
    assert "[YA] Asset tag: RACK12-U07" in out
    assert "[Y0] System specific: CCF1" in out
    assert "Checksum: good" in out
    assert "Card serial number: TW0VK88G1234560ABC" in out
    assert "Problems: none" in out
    # Fields keep the blob's order.
    assert out.index("[V0]") < out.index("[PN]") < out.index("[MN]") < out.index("[SN]")


def test_vpd_reports_problems_of_a_damaged_blob(tmp_path, capsys):
    path = tmp_path / "vpd"
    path.write_bytes(SAMPLES["damaged"])
    assert main(["vpd", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Checksum: BAD" in out
    assert "checksum wrong" in out and "no end tag" in out
    assert "Card serial number: MT2042X16761" in out


def test_vpd_json_from_stdin_is_machine_readable():
    proc = run("vpd", "--json", "-", stdin=SAMPLES["dpu"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["serial_number"] == "MT2113X00042"
    assert data["checksum_ok"] is True and data["problems"] == []
    assert data["read_only"]["PN"] == {"raw_hex": b"MBF2M516A-CEEOT".hex(), "text": "MBF2M516A-CEEOT"}
    assert list(data["read_only"]) == list(fastvpd.parse_vpd(SAMPLES["dpu"]).read_only)


def test_unreadable_input_is_one_line_on_stderr_and_exit_1(tmp_path):
    proc = run("vpd", str(tmp_path / "missing"))
    assert proc.returncode == 1
    assert proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and "missing" in lines[0] and "No such file" in lines[0]
    proc = run("vpd", str(tmp_path))  # a directory
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr


def test_strict_rejects_a_damaged_blob_naming_the_file_and_offset(tmp_path):
    path = tmp_path / "damaged.bin"
    path.write_bytes(SAMPLES["damaged"])
    proc = run("vpd", "--strict", str(path))
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "damaged.bin" in err and "offset" in err and "Traceback" not in err


def test_usage_errors_exit_2():
    assert run("vpd").returncode == 2
    assert run("frobnicate").returncode == 2


@pytest.mark.parametrize("raw, shown", [
    (b"abc", "abc"), (b"a\\b", "a\\\\b"), (b"\x00\x1f\x7f", "\\x00\\x1f\\x7f"), (b"\xff", "\\xff"),
    (b"  x  ", "  x  "),
])
def test_escape_matches_lspci_for_ascii_and_control_bytes(raw, shown):
    assert escape_value(raw) == shown
