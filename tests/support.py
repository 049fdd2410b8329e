"""Helpers the test modules share."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

def in_ci() -> bool:
    """Whether this is CI (``CI=true``), where everything the tests need is installed."""
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    """What a test module does when a library it exercises is missing: in CI that is a failure
    (the README's test command installs it), elsewhere a skip. ``reason`` names what is missing."""
    reason += " (the README's test command installs it)"
    if in_ci():
        pytest.fail(f"must be installed in CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` for a test module, or fail in CI / skip elsewhere naming ``what``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        error = e  # reported outside the handler: no chained traceback in the failure
    missing(f"{what} is not installed ({error})")
    raise AssertionError("not reached: missing() fails or skips")


#: Every CLI run gets this long before the test fails: a hang must fail, never stall the suite.
CLI_TIMEOUT = 60.0


def fast_temp_base() -> str | None:
    """/dev/shm when it is usable: creating thousands of files on a disk /tmp is slow."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return None


@contextlib.contextmanager
def scratch_dir(tag: str = "scan") -> Iterator[str]:
    """A fresh directory on /dev/shm (else the default temp dir), removed afterwards."""
    d = tempfile.mkdtemp(prefix=f"fastvpd-test-{tag}-", dir=fast_temp_base())
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def gil_spinner() -> Iterator[Callable[[], int]]:
    """A thread that counts while it has the GIL; yields a function that reads the count.

    The switch interval is set to 0.5 s, so while the main thread holds the GIL the spinner waits:
    it counts during a call only if that call released the GIL.
    """
    count = 0
    stop = False

    def spin() -> None:
        nonlocal count
        while not stop:
            count += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    t = threading.Thread(target=spin, daemon=True)
    t.start()
    try:
        while count == 0:  # the spinner has started
            time.sleep(0.001)
        yield lambda: count
    finally:
        stop = True
        t.join()
        sys.setswitchinterval(old)


def console_script() -> str:
    """The installed ``fastvpd`` console script of this interpreter's environment."""
    exe = Path(sys.executable).with_name("fastvpd")
    if exe.exists():
        return str(exe)
    found = shutil.which("fastvpd")
    assert found is not None, "the fastvpd console script is not installed (pip install -e .)"
    return found


def cli(*args: str, stdin: bytes | int | None = None, module: bool = False,
        env: Mapping[str, str] | None = None, prefix: Sequence[str] = (),
        timeout: float = CLI_TIMEOUT, **popen: Any) -> subprocess.CompletedProcess[str]:
    """Run the real ``fastvpd`` command (the console script, or ``python -m fastvpd``).

    ``stdin``: bytes to feed, or a file descriptor; by default stdin is /dev/null so that nothing
    waits for a terminal. Output is decoded as UTF-8 strictly: the command must print valid text.
    """
    cmd = [*prefix, *([sys.executable, "-m", "fastvpd"] if module else [console_script()]), *args]
    kw: dict[str, Any] = {"input": stdin} if isinstance(stdin, bytes) else {
        "stdin": subprocess.DEVNULL if stdin is None else stdin}
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env}, **kw, **popen)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(),
                                       proc.stderr.decode())


def without_dac_override() -> list[str]:
    """A command prefix that runs like a user who is not root: root keeps its uid (the editable
    install may rebuild in the root-owned build directory) but loses the capabilities that let it
    read any file."""
    import pytest

    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's CAP_DAC_OVERRIDE")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def wait_until_reading_stdin(pid: int, timeout: float = CLI_TIMEOUT) -> None:
    """Wait until process ``pid`` handles SIGINT and sleeps reading its stdin, a pipe (Linux /proc:
    ``wchan`` names a pipe read, ``syscall`` has file descriptor 0 as its first argument).

    A signal sent earlier could land while the interpreter starts (or reads another pipe, such as
    the one of a subprocess it starts), which is not the case under test.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            wchan = Path(f"/proc/{pid}/wchan").read_text()
            syscall = Path(f"/proc/{pid}/syscall").read_text().split()
        except OSError:
            status, wchan, syscall = "", "", []
        caught = next((int(line.split()[1], 16) for line in status.splitlines()
                       if line.startswith("SigCgt:")), 0)
        # SigCgt bit 1 is SIGINT (signal 2)
        if caught & (1 << 1) and "pipe" in wchan and syscall[1:2] == ["0x0"]:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not block reading its stdin pipe within {timeout} s")


CHECKOUT = Path(__file__).resolve().parent.parent


def run_in_checkout(command: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a shell command line as the README or the demo print it, in the source tree.

    Its ``/tmp/ghw`` folder moves into ``tmp_path`` (tests may run side by side), and ``fastvpd``
    and ``.venv/bin/fastvpd`` are this environment's console script.
    """
    bindir = str(Path(console_script()).parent)
    command = command.replace("/tmp/ghw", str(tmp_path / "ghw")).replace(".venv/bin/", bindir + "/")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-c", command], cwd=CHECKOUT, capture_output=True, text=True,
                          env=env, timeout=CLI_TIMEOUT)
