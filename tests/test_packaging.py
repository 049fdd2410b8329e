"""The build path: both kinds of compiled extension, the wheel and the sdist.

The wheel/sdist test builds from a git clone of HEAD (meson-python's sdist needs a git checkout)
with the documented command, ``python -m build`` in its isolated build environment.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import fastvpd._sysfs
import fastvpd._vpd

ROOT = Path(__file__).resolve().parent.parent


def _is_extension(module) -> bool:
    return module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_vpd_walker_is_a_compiled_cython_module():
    assert _is_extension(fastvpd._vpd)
    assert type(fastvpd._vpd.parse).__name__ in ("cython_function_or_method", "builtin_function_or_method")


def test_sysfs_helper_is_a_cffi_api_mode_extension(tmp_path):
    assert _is_extension(fastvpd._sysfs)
    ffi, lib = fastvpd._sysfs.ffi, fastvpd._sysfs.lib
    # In API mode lib's functions are compiled wrappers (which release the GIL), not cdata
    # function pointers loaded at run time as in ABI mode.
    assert type(lib.fv_read_file_at).__name__ == "builtin_function_or_method"
    (tmp_path / "vendor").write_bytes(b"0x15b3\n")
    buf, err = ffi.new("unsigned char[]", 64), ffi.new("int *")
    n = lib.fv_read_file_at(-100, os.fsencode(tmp_path / "vendor"), buf, 64, err)  # AT_FDCWD
    assert ffi.buffer(buf, n)[:] == b"0x15b3\n"
    assert lib.fv_read_file_at(-100, os.fsencode(tmp_path / "missing"), buf, 64, err) == -1
    assert err[0] == 2  # ENOENT
    os.mkfifo(tmp_path / "fifo")  # a FIFO must be refused without blocking
    assert lib.fv_read_file_at(-100, os.fsencode(tmp_path / "fifo"), buf, 64, err) == -1


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to clone the checkout")
def test_wheel_and_sdist_build_from_a_git_checkout(tmp_path):
    pytest.importorskip("build", reason="the 'build' package (test extra) is not installed")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the sdist is made from git")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    out = tmp_path / "dist"
    proc = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel",
                           "--outdir", str(out), str(clone)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for suffix in ("fastvpd/_vpd", "fastvpd/_sysfs"):
        assert any(n.startswith(suffix + ".") and n.endswith(".so") for n in names), names
    for name in ("fastvpd/py.typed", "fastvpd/_vpd.pyi", "fastvpd/_sysfs.pyi", "fastvpd/testing.py"):
        assert name in names
    assert not any(n.endswith((".c", ".pyx")) for n in names)
    # every module of the package is installed (fastvpd/meson.build lists them one by one)
    modules = {f"fastvpd/{p.name}" for p in (clone / "fastvpd").glob("*.py")}
    assert modules - {"fastvpd/_sysfs_build.py"} <= set(names)
    (sdist,) = out.glob("*.tar.gz")
    members = tarfile.open(sdist).getnames()
    top = members[0].split("/")[0]
    for name in ("fastvpd/_vpd.pyx", "fastvpd/_sysfs.c", "fastvpd/_sysfs_build.py",
                 "meson.build", "pyproject.toml"):
        assert f"{top}/{name}" in members
    assert not any("_sysfs_cffi.c" in m or m.endswith(".so") for m in members)
