"""The README's commands are the ones CI and users run, and the docs it and the code point to
exist."""

import os
import pathlib
import re
import threading
import time
from pathlib import Path
from typing import Any

from fastvpd import testing
from fastvpd.scanner import scan
from tests.support import run_in_checkout, scratch_dir

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


def test_the_minimal_agent_loop_runs_as_written() -> None:
    """The README's agent loop, on a synthetic host instead of /sys (so it rescans, every 0.05 s
    instead of 60), with a ``publish`` that records what the agent would report."""
    (code,) = re.findall(r"```python\n(.+?)\n```", _section("A minimal agent loop"), re.S)
    with scratch_dir("readme") as d:
        host = testing.dpu_host(os.path.join(d, "sys"), cards=1, pfs_per_card=2, vfs_per_pf=2)
        assert code.count('"/sys"') == 1 and code.count("interval=60") == 1
        code = code.replace('"/sys"', repr(host.root)).replace("interval=60", "interval=0.05")
        published: list[tuple[list[dict[str, Any]], dict[str, Any], tuple[str, ...]]] = []
        namespace: dict[str, Any] = {
            "publish": lambda devices, profiles, gone: published.append((devices, profiles, gone))}
        errors: list[BaseException] = []

        def agent() -> None:
            try:
                exec(compile(code, "README.md", "exec"), namespace)
            except BaseException as e:
                errors.append(e)

        def wait_for(what: str, done: Any) -> None:
            end = time.monotonic() + 30
            while not done():
                assert not errors and time.monotonic() < end, (what, errors)
                time.sleep(0.01)

        thread = threading.Thread(target=agent, daemon=True)
        thread.start()
        try:
            wait_for("the first report", lambda: published)
            devices, profiles, gone = published[0]
            assert devices == scan(host.root).to_nova() and gone == ()
            assert set(profiles) == set(host.vfs)
            assert all(p["card_serial_number"] == host.cards[0].serial for p in profiles.values())
            before = set(host.vfs)
            testing.set_vf_count(host, host.pfs[0], 3)
            (new,) = set(host.vfs) - before
            wait_for("the new VF's profile", lambda: any(new in p for _, p, _ in published))
            latest = [p[new] for _, p, _ in published if new in p][-1]
            assert latest["vf_num"] == host.functions[new].vf_num
            testing.unplug(host, new)
            wait_for("the report of its removal", lambda: any(new in g for _, _, g in published))
            devices = next(d for d, _, g in published if new in g)
            assert new not in {d["address"] for d in devices}
        finally:
            if "stop" in namespace:
                namespace["stop"].set()
            thread.join(30)
        assert not thread.is_alive() and errors == []


def _sources() -> list[Path]:
    """The text files of the package, and the README."""
    files = [p for p in sorted((ROOT / "fastvpd").iterdir())
             if p.suffix in (".py", ".pyx", ".pyi", ".c", ".h", ".build")]
    assert len(files) > 10
    return files + [ROOT / "README.md"]


def test_every_docs_reference_names_a_page_that_exists():
    named: dict[str, list[str]] = {}
    for path in _sources():
        for ref in re.findall(r"\bdocs/[\w./-]*\w", path.read_text()):
            named.setdefault(ref, []).append(path.name)
    assert {"docs/vpd.md", "docs/sysfs.md", "docs/README.md", "docs/nova-contract.md"} <= set(named)
    missing = {ref: where for ref, where in named.items() if not (ROOT / ref).exists()}
    assert missing == {}


def test_links_between_the_docs_resolve():
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert {p.name for p in pages} >= {"README.md", "vpd.md", "sysfs.md"}
    index = (ROOT / "docs" / "README.md").read_text()
    assert all(f"]({p.name})" in index for p in pages if p.name != "README.md")
    for page in pages + [ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            resolved = (page.parent / target).resolve()
            assert resolved.exists(), (page.name, target)


def test_no_reference_points_outside_the_repository():
    """Docstrings and comments point at docs/, not at design notes the repository does not carry."""
    for path in _sources():
        text = path.read_text()
        stale = re.findall(r"(?<!docs/)\b(?:spec/[\w-]+\.md|design\.md)|\.\./shared|/work/", text)
        assert stale == [], path.name
