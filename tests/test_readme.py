"""The README's commands are the ones CI and users run."""

import pathlib
import re
from pathlib import Path

from tests.support import run_in_checkout

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", _section("The two commands"), re.S)


def test_readme_has_exactly_two_setup_commands():
    commands = _commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands), "each command is one line a user can paste"
    assert commands[0].endswith("fastvpd demo")
    assert commands[1].endswith("python -m pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _commands()[1] in ci.splitlines()


def test_the_capture_command_works_as_written(tmp_path: Path):
    (command,) = re.findall(r"```sh\n(.+?)\n```", _section("Command line"), re.S)
    assert "\n" not in command and command.startswith("mkdir -p /tmp/ghw && tar xzf ")
    proc = run_in_checkout(command, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("82 PCI functions: 2 PFs, 8 VFs")

