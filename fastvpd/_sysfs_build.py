"""cffi out-of-line API-mode builder for fastvpd._sysfs, run by meson at build time.

Usage: python _sysfs_build.py OUTPUT.c — writes the wrapper C source; meson compiles it together
with _sysfs.c. cffi's API mode releases the GIL around every call into the C helper.
"""

import pathlib
import sys

import cffi

HERE = pathlib.Path(__file__).resolve().parent

CDEF = """
typedef int... ssize_t;
ssize_t fv_read_file_at(int dirfd, const char *name, unsigned char *buf, size_t cap, int *err);
"""


def make_ffi() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source("fastvpd._sysfs", '#include "_sysfs.h"')
    return ffi


if __name__ == "__main__":
    make_ffi().emit_c_code(sys.argv[1])
