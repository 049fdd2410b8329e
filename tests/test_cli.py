"""The ``fastvpd`` command as an operator and a script use it: ``fastvpd vpd``, the options every
command shares, usage errors and Ctrl-C. Every run is the real console script (or ``python -m
fastvpd``) in a subprocess with a timeout (tests/support.py); scan and demo: test_cli_scan.py."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

import fastvpd
from fastvpd import cli as cli_module
from fastvpd.samples import SAMPLES
from fastvpd.vpd import MAX_VPD_SIZE, escape_value
from tests.support import CLI_TIMEOUT, cli, console_script, wait_until_reading_stdin


# -- fastvpd vpd: output ---------------------------------------------------------------------------

def test_vpd_prints_fields_with_long_names_checksum_and_serial(tmp_path: Path) -> None:
    path = tmp_path / "vpd"
    path.write_bytes(SAMPLES["nic-with-vpd-w"])
    proc = cli("vpd", str(path))
    assert proc.returncode == 0 and proc.stderr == ""
    out = proc.stdout
    assert out.startswith(f"{path} ({len(SAMPLES['nic-with-vpd-w'])} bytes)\n")
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


def test_vpd_reports_problems_of_a_damaged_blob(tmp_path: Path) -> None:
    path = tmp_path / "vpd"
    path.write_bytes(SAMPLES["damaged"])
    proc = cli("vpd", str(path))
    assert proc.returncode == 0
    out = proc.stdout
    assert "Checksum: BAD" in out
    for problem in fastvpd.parse_vpd(SAMPLES["damaged"]).problems:
        assert f"\n      {problem}\n" in out
    assert "checksum wrong" in out and "no end tag" in out
    assert "Card serial number: MT2042X16761" in out


def test_vpd_json_has_raw_hex_text_and_problem_objects() -> None:
    proc = cli("vpd", "--json", "-", stdin=SAMPLES["dpu"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    vpd = fastvpd.parse_vpd(SAMPLES["dpu"])
    assert data["source"] == "stdin" and data["size"] == len(SAMPLES["dpu"])
    assert data["serial_number"] == "MT2113X00042" and data["name"] == vpd.name
    assert data["checksum_ok"] is True and data["problems"] == [] and data["read_write"] == {}
    assert data["read_only"]["PN"] == {"raw_hex": b"MBF2M516A-CEEOT".hex(), "text": "MBF2M516A-CEEOT"}
    assert list(data["read_only"]) == list(vpd.read_only)
    assert data == {"source": "stdin", "size": len(SAMPLES["dpu"]), **vpd.to_dict()}


def test_vpd_json_binary_values_are_hex_and_problems_have_offsets(tmp_path: Path) -> None:
    blob = bytearray(fastvpd.build_vpd("Card", [("SN", "S1"), ("V1", b"\xff\x00\x7fab")],
                                       [("Y1", b"\x01\x02")]))
    blob[-2] ^= 1  # break the RV checksum: a fatal problem ...
    blob[5] = 0x80  # ... and a non-printable byte in the name ("Card" -> "Ca\x80d")
    path = tmp_path / "binary.vpd"
    path.write_bytes(bytes(blob))
    proc = cli("vpd", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["source"] == str(path)
    assert data["read_only"]["V1"] == {"raw_hex": "ff007f6162", "text": None}
    assert data["read_only"]["SN"] == {"raw_hex": "5331", "text": "S1"}
    assert data["read_write"]["Y1"] == {"raw_hex": "0102", "text": None}
    assert "\\x" not in proc.stdout  # nothing is backslash text any more
    vpd = fastvpd.parse_vpd(bytes(blob))
    assert data["problems"] == [{"offset": o, "message": m, "fatal": f} for o, m, f in (
        (int(p.split(":")[0].split()[1]), p.split(": ", 1)[1], p in vpd.fatal_problems)
        for p in vpd.problems)]
    assert {p["message"] for p in data["problems"]} >= {"checksum wrong",
                                                        "identifier string is not printable ASCII"}
    assert all(p["fatal"] for p in data["problems"] if p["message"] == "checksum wrong")
    assert data["name"] is None and data["checksum_ok"] is False


def test_text_output_keeps_the_lspci_like_escapes(tmp_path: Path) -> None:
    path = tmp_path / "vpd"
    path.write_bytes(fastvpd.build_vpd("Card", [("SN", "S1"), ("V1", b"\xff\\a")]))
    proc = cli("vpd", str(path))
    assert proc.returncode == 0
    assert "[V1] Vendor specific: \\xff\\\\a\n" in proc.stdout


@pytest.mark.parametrize("raw, shown", [
    (b"abc", "abc"), (b"a\\b", "a\\\\b"), (b"\x00\x1f\x7f", "\\x00\\x1f\\x7f"), (b"\xff", "\\xff"),
    (b"  x  ", "  x  "),
])
def test_escape_matches_lspci_for_ascii_and_control_bytes(raw: bytes, shown: str) -> None:
    assert escape_value(raw) == shown


# -- fastvpd vpd: what it reads --------------------------------------------------------------------

def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastvpd: error: "), proc.stderr
    return lines[0]


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes: a plain open() would wait forever
    line = _one_error_line(cli("vpd", str(fifo)))
    assert str(fifo) in line and "not a regular file (a FIFO)" in line and "- to read stdin" in line


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a character device"), (".", "a directory")])
def test_other_non_regular_files_are_refused(path: str, kind: str) -> None:
    assert f"not a regular file ({kind})" in _one_error_line(cli("vpd", path))


def test_unreadable_input_is_one_line_on_stderr_and_exit_1(tmp_path: Path) -> None:
    line = _one_error_line(cli("vpd", str(tmp_path / "missing")))
    assert "missing" in line and "No such file" in line


def test_a_file_larger_than_the_largest_vpd_is_an_error_not_a_cut_blob(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:  # 10 MB starting with a valid blob: not decoded cut at the cap
        f.write(SAMPLES["dpu"])
        f.truncate(10 * 1000 * 1000)
    line = _one_error_line(cli("vpd", str(big)))
    assert f"more than {MAX_VPD_SIZE} bytes" in line and "not decoded" in line and str(big) in line
    exact = tmp_path / "exact.bin"  # the largest VPD there is: decoded (zeros after the end tag)
    exact.write_bytes(SAMPLES["dpu"].ljust(MAX_VPD_SIZE, b"\0"))
    proc = cli("vpd", "--json", str(exact))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["size"] == MAX_VPD_SIZE
    assert json.loads(proc.stdout)["serial_number"] == "MT2113X00042"


def test_stdin_is_read_up_to_the_cap_plus_one_byte() -> None:
    """A writer that never closes the pipe: after cap + 1 bytes the command must stop reading and
    say the input is too large (reading on would wait forever, and the timeout fails the test)."""
    proc = subprocess.Popen([console_script(), "vpd", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"\x82" + b"x" * MAX_VPD_SIZE)  # cap + 1 bytes; fits the pipe buffer
        proc.stdin.flush()
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1 and out == b""
    assert err.decode() == (f"fastvpd: error: stdin: more than {MAX_VPD_SIZE} bytes, the largest "
                            "VPD there is (its addresses have 15 bits); not decoded\n")


def test_an_endless_stdin_is_an_error_not_a_memory_error() -> None:
    with open("/dev/zero", "rb") as zero:
        line = _one_error_line(cli("vpd", "-", stdin=zero.fileno()))
    assert f"stdin: more than {MAX_VPD_SIZE} bytes" in line


def test_strict_rejects_a_damaged_blob_naming_the_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "damaged.bin"
    path.write_bytes(SAMPLES["damaged"])
    line = _one_error_line(cli("vpd", "--strict", str(path)))
    assert "damaged.bin" in line and "invalid VPD" in line and "offset 112" in line


# -- every command ---------------------------------------------------------------------------------

def test_version() -> None:
    for module in (False, True):
        proc = cli("--version", module=module)
        assert proc.returncode == 0 and proc.stderr == ""
        assert proc.stdout == f"fastvpd {fastvpd.__version__}\n"
    assert fastvpd.__version__ == importlib.metadata.version("fastvpd")


@pytest.mark.parametrize("command", [[], ["vpd"], ["scan"], ["profile"], ["devspec"], ["doctor"],
                                     ["watch"], ["demo"]])
def test_help_is_plain_text(command: list[str]) -> None:
    proc = cli(*command, "--help")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith(f"usage: fastvpd {' '.join(command)}".rstrip())
    assert "`" not in proc.stdout and "**" not in proc.stdout  # no reST or markdown markup
    assert all(len(line) <= 100 for line in proc.stdout.splitlines())  # wrapped for a terminal
    assert not re.search(r":(func|class|meth|mod|ref):|`[^`]+`_", proc.stdout)
    if not command:
        assert all(name in proc.stdout for name in ("vpd", "scan", "profile", "devspec", "doctor",
                                                    "watch", "demo", "--version"))
        assert "exit status: 0 ok, 1 runtime error" in proc.stdout


def test_every_argument_has_help_text() -> None:
    parser, commands = cli_module._parser()
    parsers = {"fastvpd": parser, **commands}
    assert set(commands) == {"vpd", "scan", "profile", "devspec", "doctor", "watch", "demo"}
    for name, p in parsers.items():
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert {a.dest for a in action._choices_actions} == set(commands)
                assert all(a.help for a in action._choices_actions)
                continue
            assert action.help and action.help.strip(), (name, action.option_strings or action.dest)


@pytest.mark.parametrize("argv, usage", [
    (["scan", "--bogus"], "fastvpd scan"),
    (["--bogus", "scan"], "fastvpd scan"),
    (["vpd"], "fastvpd vpd"),
    (["vpd", "a", "b"], "fastvpd vpd"),
    (["demo", "--vfs", "x"], "fastvpd demo"),
    (["demo", "--vfs", "-1"], "fastvpd demo"),
    (["demo", "--vfs", "100000"], "fastvpd demo"),
    (["demo", "--sysfs", "/sys", "--synthetic"], "fastvpd demo"),
    (["demo", "--sysfs", "/sys", "--vfs", "3"], "fastvpd demo"),
    (["scan", "--json", "--nova"], "fastvpd scan"),
    (["watch", "--interval", "0"], "fastvpd watch"),
    (["watch", "--interval", "-1"], "fastvpd watch"),
    (["watch", "--interval", "soon"], "fastvpd watch"),
    (["watch", "--interval", "nan"], "fastvpd watch"),
    (["watch", "--interval", "inf"], "fastvpd watch"),
    (["watch", "extra"], "fastvpd watch"),
    (["frobnicate"], "fastvpd [-h]"),
    ([], "fastvpd [-h]"),
])
def test_usage_errors_exit_2_with_the_usage_of_the_command_given(argv: list[str],
                                                                 usage: str) -> None:
    proc = cli(*argv)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"usage: {usage}"), proc.stderr
    assert "Traceback" not in proc.stderr
    name = usage.split(" [")[0]
    assert f"\n{name}: error: " in proc.stderr


def test_ctrl_c_exits_130_quietly() -> None:
    """Ctrl-C while `fastvpd vpd -` waits for input (stdin a pipe nobody closes)."""
    proc = subprocess.Popen([console_script(), "vpd", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # as from a shell: SIGINT is not ignored whatever the test runner does
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_until_reading_stdin(proc.pid)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    assert (proc.returncode, out, err) == (130, b"", b"")
