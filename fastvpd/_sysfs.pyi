"""Stubs for the cffi-built sysfs helper (fastvpd/_sysfs.c, wrapped by _sysfs_build.py)."""

from typing import Any

ffi: Any
lib: Any
