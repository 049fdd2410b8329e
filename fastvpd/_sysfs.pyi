"""Stubs for the cffi-built sysfs helper (fastvpd/_sysfs.c, wrapped by _sysfs_build.py).

``lib`` holds the C entry points and constants of ``_sysfs.h``: ``fv_walk(root, flags)``,
``fv_details(root, names, length)``, ``fv_free(result)``, ``fv_read_file_at(...)`` and the
``FV_*`` constants; ``ffi`` the cffi FFI (``fv_result``, ``fv_device``, ``fv_problem`` structs).
Use it through `fastvpd._walk`, which decodes the results.
"""

from typing import Any

ffi: Any
lib: Any
