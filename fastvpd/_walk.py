"""Thin decoding layer over the C sysfs walker (``_sysfs.c`` via cffi): flat data, no objects.

``walk(root)`` makes ONE call into C (GIL released) that walks ``<root>/bus/pci/devices`` and
returns fixed-size records plus one packed byte buffer; this module decodes them in one go.

The devices come column by column, which is what lets a scan of thousands of VFs skip
building an object per VF: `Walk.addresses` (``"DDDD:BB:SS.F"``, in address order), the int
fields in `Walk.columns` (one list per field, index = device), and the strings of the few
devices that have any in `Walk.extras` (``index -> (driver, netdevs, vpd)``; a device not in it
has ``(None, (), None)``, as have the VFs the fast path inferred). `Walk.devices` joins them
into one tuple per device (for tests and debugging), the fields in this order (`DEVICE_FIELDS`):

====  ==================  =====================================================================
 0    address             ``"DDDD:BB:SS.F"`` (domains above ffff in 5 to 8 digits, as the kernel)
 1    vendor              int, -1 unknown (likewise every int below)
 2    device              int
 3    class_code          int (24 bits)
 4    numa_node           int, -1 as the kernel says it, or unknown
 5    kind                0 plain, 1 PF, 2 VF (`KIND_PLAIN`, `KIND_PF`, `KIND_VF`)
 6    parent              VF: row index of its PF, else -1
 7    vf_num              VF: N of its PF's ``virtfn<N>``, else -1
 8    total_vfs           ``sriov_totalvfs``
 9    num_vfs             PF: number of ``virtfn*`` links (``sriov_numvfs`` is never read)
10    sriov_offset        int
11    sriov_stride        int
12    vf_device           ``sriov_vf_device``
13    flags               `F_GONE`, `F_INFERRED`, `F_VERIFIED`, `F_DETAILS`, `F_BROKEN`, `F_LINKED`,
                          `F_NETDEV`
14    driver              str | None (None: unbound, or not read — see `F_DETAILS`)
15    netdevs             tuple[(ifname, mac | None), ...] sorted by name (() when not read)
16    vpd                 bytes | None (raw, at most 32 KiB)
====  ==================  =====================================================================

The subsystem vendor and device IDs are not read (the model has no use for them).

A VF filled by the fast path has `F_INFERRED`: vendor, device (``sriov_vf_device``), class and
numa_node come from its PF (the first VF of each PF, also `F_VERIFIED`, was read and checked) and
its driver and netdevs were not read; load those in bulk with `details()`. Whether it owns a netdev
is known all the same (`F_NETDEV`, from one listing of ``class/net``): Nova's ``parent_ifname``
depends on it. Devices flagged
`F_GONE` (vanished during the walk) or `F_BROKEN` (entry could not be opened; see the problems)
hold no facts; `Walk.factless` lists their indexes.

`Walk.problems` rows are ``(device_index, attribute, message, path)``; ``device_index`` is -1 for
host-level problems (entries of ``bus/pci/devices`` that are no PCI address). `Walk.counters`
holds the syscalls made, by name, and their ``total``.
"""

from __future__ import annotations

import bisect
import errno as _errno
import os
import re
import struct
import threading
from array import array
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from itertools import accumulate
from typing import Any, NamedTuple, overload

from ._sysfs import ffi, lib
from .errors import SysfsError

__all__ = ["DEVICE_FIELDS", "Addresses", "address_order", "Columns", "Walk", "walk", "details", "root_path", "to_rows",
           "from_rows", "shown", "Probe", "PfProbe", "Prober", "same", "agrees", "read_problem"]

DEVICE_FIELDS = (
    "address", "vendor", "device", "class_code", "numa_node", "kind", "parent", "vf_num",
    "total_vfs", "num_vfs", "sriov_offset", "sriov_stride", "vf_device", "flags", "driver",
    "netdevs", "vpd",
)

KIND_PLAIN, KIND_PF, KIND_VF = lib.FV_KIND_PLAIN, lib.FV_KIND_PF, lib.FV_KIND_VF
F_GONE = lib.FV_F_GONE
F_INFERRED = lib.FV_F_INFERRED
F_VERIFIED = lib.FV_F_VERIFIED
F_DETAILS = lib.FV_F_DETAILS
F_BROKEN = lib.FV_F_BROKEN
F_LINKED = lib.FV_F_LINKED
F_NETDEV = lib.FV_F_NETDEV
F_HAS_VPD = lib.FV_F_HAS_VPD
F_REUSED = lib.FV_F_REUSED
VPD_CAP = lib.FV_VPD_CAP
_NO_FACTS = F_GONE | F_BROKEN

COUNTER_NAMES = ("openat", "getdents64", "readlinkat", "read", "fstat", "close", "close_range")

_DEV_INTS = 19
# Positions in the C record (fv_device): 13 ints, then (offset, length) of driver, netdevs, vpd.
_N_INTS = 13
_DRV, _NET, _VPD = 13, 15, 17
_DEV_FMT = f"={_DEV_INTS}i"
_DEV_SIZE = struct.calcsize(_DEV_FMT)
assert struct.calcsize("i") == 4  # the records are read as an array of C ints (memoryview "i")
_PROB_INTS = 9
_PROB_FMT = f"={_PROB_INTS}i"
_PROB_SIZE = struct.calcsize(_PROB_FMT)
assert ffi.sizeof("fv_device") == _DEV_SIZE and ffi.sizeof("fv_problem") == _PROB_SIZE

# Indexed by FV_A_* code.
ATTRIBUTES = (
    "entry", "vendor", "device", "class", "numa_node", "sriov_totalvfs", "sriov_offset",
    "sriov_stride", "sriov_vf_device", "driver", "net", "vpd", "physfn", "virtfn", "name",
)

_DTYPES = {1: "a FIFO", 2: "a character device", 4: "a directory", 6: "a block device",
           8: "a regular file", 10: "a symbolic link", 12: "a socket"}

_REASONS = {
    lib.FV_R_NO_LAYOUT: "sriov_offset, sriov_stride or sriov_vf_device is missing or unusable",
    lib.FV_R_NAMES: "the virtfn links are not exactly virtfn0..virtfn<count-1>",
    lib.FV_R_RID_RANGE: "the computed routing IDs run past bus ff",
    lib.FV_R_NOT_LISTED: "computed VF {vf} {addr} is not in bus/pci/devices",
    lib.FV_R_CLAIMED: "computed VF {vf} {addr} already belongs to another PF",
    lib.FV_R_LINK: "virtfn{vf} does not point to the computed {addr}",
    lib.FV_R_VF_UNREADABLE: "{attr} of the first VF {addr} could not be read",
    lib.FV_R_MISMATCH: "{attr} of the first VF {addr} is not what the PF implies",
    lib.FV_R_PHYSFN: "the physfn link of the first VF {addr} does not lead back to this PF",
}


Netdevs = tuple[tuple[str, str | None], ...]
# A device's strings, (driver, netdevs, vpd); NO_EXTRA for a device that has none.
Extra = tuple[str | None, Netdevs, bytes | None]
NO_EXTRA: Extra = (None, (), None)


IntColumn = MutableSequence[int]  # an array("i") from the walker; a list will do elsewhere


class Columns(NamedTuple):
    """The int fields of the devices (`DEVICE_FIELDS` 1 to 13), one column per field."""

    vendor: IntColumn
    device: IntColumn
    class_code: IntColumn
    numa_node: IntColumn
    kind: IntColumn
    parent: IntColumn
    vf_num: IntColumn
    total_vfs: IntColumn
    num_vfs: IntColumn
    sriov_offset: IntColumn
    sriov_stride: IntColumn
    vf_device: IntColumn
    flags: IntColumn


assert Columns._fields == DEVICE_FIELDS[1:1 + _N_INTS]


class Walk(NamedTuple):
    """The flat result of one walk (see the module docstring for the layouts)."""

    addresses: Addresses
    columns: Columns
    extras: dict[int, Extra]
    factless: list[int]
    problems: list[tuple[int, str, str, str]]
    counters: dict[str, int]
    #: inode number of each device's bus/pci/devices entry (renewed when the kernel re-creates it)
    inodes: Sequence[int] = ()
    #: class/net as listed ("<inode> <name>\n" per entry), None without class/net
    class_net: bytes | None = None
    #: the bus/pci/devices listing as one byte string (names and inode numbers), to compare
    listing: bytes = b""

    @property
    def devices(self) -> list[tuple[Any, ...]]:
        """One tuple per device, fields in `DEVICE_FIELDS` order, built anew on each access.

        For tests and debugging: the scanner reads the columns and skips building these.
        """
        return to_rows(self.addresses, self.columns, self.extras)


def address_order(address: str) -> tuple[int, str]:
    """Sort key putting canonical addresses in numeric order: the domain is the only part whose
    width varies (4 hex digits, more only above ffff), so a longer address is a higher domain."""
    return len(address), address


class Addresses(Sequence[str]):
    """Addresses in address order as one text: a few bytes a row rather than a str object per
    VF, as the walker returns them; a row's address is a slice, and a lookup a binary search."""

    __slots__ = ("text", "offsets")

    def __init__(self, names: Iterable[str] = ()) -> None:
        names = list(names)
        self.text = "\n".join(names) + "\n" if names else ""
        # row i is text[offsets[i]:offsets[i + 1] - 1]
        self.offsets = array("i", accumulate(map((1).__add__, map(len, names)), initial=0))

    @classmethod
    def joined(cls, text: str, offsets: array[int]) -> Addresses:
        """From the text (each name followed by a newline) and the n + 1 row offsets as is."""
        self = cls.__new__(cls)
        self.text, self.offsets = text, offsets
        return self

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("address row out of range")
        o = self.offsets
        return self.text[o[i]:o[i + 1] - 1]

    def __iter__(self) -> Iterator[str]:
        return iter(self.text[:-1].split("\n")) if self.text else iter(())

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and self.find(address) is not None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Addresses):
            return self.text == other.text
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Iterable[str]) -> list[str]:
        """A list of these addresses and ``other``'s, as adding to a list of names gives."""
        return [*self, *other]

    def __radd__(self, other: Iterable[str]) -> list[str]:
        return [*other, *self]

    def __repr__(self) -> str:
        return f"Addresses({list(self)!r})"

    def index(self, address: Any, start: int = 0, stop: int | None = None) -> int:
        i = self.find(address) if isinstance(address, str) else None
        if i is None or i < start or (stop is not None and i >= stop):
            raise ValueError(f"{address!r} is not in the addresses")
        return i

    def find(self, address: str) -> int | None:
        """The row of ``address``, None when it has none."""
        n = len(self)
        i = bisect.bisect_left(self, address_order(address), hi=n, key=address_order)
        return i if i < n and self[i] == address else None


def to_rows(addresses: Sequence[str], columns: Columns,
            extras: dict[int, Extra]) -> list[tuple[Any, ...]]:
    """The devices as one tuple each, fields in `DEVICE_FIELDS` order."""
    return [(a, *ints, *extras.get(i, NO_EXTRA))
            for i, (a, ints) in enumerate(zip(addresses, zip(*columns)))]


def from_rows(rows: list[tuple[Any, ...]]) -> tuple[list[str], Columns, dict[int, Extra]]:
    """The inverse of `to_rows`: addresses, columns and extras of full device tuples."""
    columns = Columns._make([r[k] for r in rows] for k in range(1, 1 + _N_INTS))
    extras = {i: (r[-3], r[-2], r[-1]) for i, r in enumerate(rows) if r[-3:] != NO_EXTRA}
    return [r[0] for r in rows], columns, extras


def _strerror(err: int) -> str:
    name = _errno.errorcode.get(err)
    return f"{os.strerror(err)} ({name})" if name else os.strerror(err)


#: Details (a link target, a file's first bytes) longer than this are shown cut, with a marker.
DETAIL_SHOWN = 200


def _quote(raw: bytes | None) -> str:
    """A detail as a problem text shows it: quoted, bytes >= 0x80 and control bytes as ``\\xNN``
    (Python's bytes repr without the ``b``), and cut after `DETAIL_SHOWN` bytes with
    ``...(N bytes)`` saying how long it was."""
    if raw is None:
        return "None"
    if len(raw) > DETAIL_SHOWN:
        return f"{repr(raw[:DETAIL_SHOWN])[1:]}...({len(raw)} bytes)"
    return repr(raw)[1:]


_NOT_SHOWN = re.compile(rb"[^\x20-\x7e]")


def shown(text: str) -> str:
    """A path or name from a sysfs tree, for humans: printable ASCII as is, every other byte as
    ``\\xNN`` (undecodable bytes come as surrogates from ``surrogateescape``; printing those
    would fail, and a newline in a name would forge a line)."""
    if text.isascii() and text.isprintable():
        return text
    raw = text.encode("utf-8", "surrogateescape")
    return _NOT_SHOWN.sub(lambda m: b"\\x%02x" % m[0][0], raw).decode("ascii")


def _message(attr: int, kind: int, err: int, arg: int, detail: bytes | None) -> str:
    if kind == lib.FV_P_MISSING:
        return "missing"
    if kind == lib.FV_P_NOT_REGULAR:
        return f"not a regular file ({_DTYPES.get(arg, 'unknown type')}); not opened"
    if kind == lib.FV_P_UNREADABLE:
        return f"unreadable: {_strerror(err)}"
    if kind == lib.FV_P_GARBAGE:
        return f"garbage content {_quote(detail)}"
    if kind == lib.FV_P_EMPTY:
        return "empty"
    if kind == lib.FV_P_TOO_LONG:
        return f"longer than {arg} bytes"
    if kind == lib.FV_P_DANGLING:
        return f"dangling link -> {_quote(detail)} (target missing or not a PCI device)"
    if kind == lib.FV_P_NOT_LINK:
        return "not a symbolic link"
    if kind == lib.FV_P_NOT_DIR:
        return "not a directory"
    if kind == lib.FV_P_BAD_NAME:
        if attr == lib.FV_A_VIRTFN:
            return "not a canonical virtfn<N> name; ignored"
        if attr == lib.FV_A_NET:
            return "netdev name with white space; ignored"
        return "not a PCI address DDDD:BB:SS.F as the kernel names one; ignored"
    if kind == lib.FV_P_VF_FALLBACK:
        what = _REASONS.get(arg, f"reason {arg}").format(
            vf=err, addr=_address(detail), attr=ATTRIBUTES[err] if 0 <= err < len(ATTRIBUTES) else err)
        return f"VFs not computed from the SR-IOV layout ({what}); fell back to reading every virtfn link"
    if kind == lib.FV_P_CLAIMED:
        return f"points to {_address(detail)}, a VF another PF (device #{arg}) already lists; ignored"
    if kind == lib.FV_P_ORPHAN_VF:
        return f"VF whose PF ({_quote(detail)}) lists no virtfn link to it"
    if kind == lib.FV_P_NOT_OWN:
        return (f"link -> {_quote(detail)} does not lead to the directory the tree's bus/pci/devices "
                "entry of that device leads to; ignored")
    if kind == lib.FV_P_NOT_BACK:
        return f"points to {_address(detail)}, whose physfn link does not lead back to this PF; ignored"
    if kind == lib.FV_P_DUPLICATE:
        links = f"virtfn{err} and virtfn{arg}" if err >= 0 else f"virtfn{arg} too"
        return f"named by more than one virtfn link of PF {_address(detail)} ({links}); VF number unknown"
    if kind == lib.FV_P_BAD_TARGET:
        return f"link -> {_quote(detail)} does not end in drivers/<name>; no driver"
    if kind == lib.FV_P_BELOW_LINKS:
        return f"{err} is below the number of virtfn links ({arg})"
    return f"problem kind {kind}"


def _address(detail: bytes | None) -> str:
    """A detail the walker fills with a PCI address (ASCII by construction)."""
    return "None" if detail is None else detail.decode("ascii", "backslashreplace")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _decode_devices(res: Any, strings: bytes) -> tuple[Addresses, Columns, dict[int, Extra]]:
    """Addresses, int columns and the strings of the devices that have any (see the docstring).

    The C side hands them over as the decoder wants them (fv_result.columns): one copy per
    column, no int or str object per row, and only the rows with strings visited."""
    n = res.n_devices
    if n == 0:
        return Addresses(), Columns._make(array("i") for _ in range(_N_INTS)), {}
    text = ffi.buffer(res.addresses, res.addresses_len)[:].decode("ascii") + "\n"
    offsets = array("i")
    offsets.frombytes(ffi.buffer(res.address_offsets, (n + 1) * 4))
    cells = memoryview(ffi.buffer(res.columns, _N_INTS * n * 4))
    columns = Columns._make(_column(cells[k * n * 4:(k + 1) * n * 4]) for k in range(_N_INTS))
    ints = memoryview(ffi.buffer(res.devices, n * _DEV_SIZE)).cast("i")
    extras = {i: _extra(strings, *ints[i * _DEV_INTS + _DRV:(i + 1) * _DEV_INTS])
              for i in ffi.unpack(res.extra_rows, res.n_extra)}
    return Addresses.joined(text, offsets), columns, extras


def _column(cells: memoryview) -> array[int]:
    column = array("i")
    column.frombytes(cells)
    return column


def _extra(strings: bytes, d_off: int, d_len: int, n_off: int, n_len: int, v_off: int,
           v_len: int) -> Extra:
    driver = _text(strings[d_off:d_off + d_len]) if d_off >= 0 else None
    netdevs: Netdevs = ()
    if n_off >= 0 and n_len > 0:
        lines = []
        for line in strings[n_off:n_off + n_len].split(b"\n")[:-1]:
            name, _, mac = line.partition(b"\t")
            lines.append((_text(name), mac.decode("ascii") if mac else None))
        lines.sort()
        netdevs = tuple(lines)
    vpd = strings[v_off:v_off + v_len] if v_off >= 0 else None
    return driver, netdevs, vpd


def _decode_problems(res: Any, strings: bytes, base: str,
                     addresses: Sequence[str]) -> list[tuple[int, str, str, str]]:
    out: list[tuple[int, str, str, str]] = []
    n = res.n_problems
    if n == 0:
        return out
    for dev, attr, kind, err, arg, po, pl, do, dl in struct.iter_unpack(
            _PROB_FMT, ffi.buffer(res.problems, n * _PROB_SIZE)):
        rel = _text(strings[po:po + pl])
        detail = strings[do:do + dl] if do >= 0 else None
        if dev >= 0 and attr != lib.FV_A_NAME:
            path = os.path.join(base, addresses[dev], rel) if rel else os.path.join(base, addresses[dev])
        else:
            path = os.path.join(base, rel)
        out.append((dev, ATTRIBUTES[attr] if 0 <= attr < len(ATTRIBUTES) else str(attr),
                    _message(attr, kind, err, arg, detail), path))
    return out


def _counters(res: Any) -> dict[str, int]:
    c = res.counters
    out = {name: int(getattr(c, name)) for name in COUNTER_NAMES}
    out["total"] = sum(out.values())
    return out


def root_path(root: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """A sysfs root as ``str`` (bytes decoded with `os.fsdecode`); ValueError for a NUL byte.

    Every layer takes what `open` takes, and the problems' paths are ``str`` whatever it was.
    """
    path = os.fsdecode(os.fspath(root))
    if "\0" in path:
        raise ValueError(f"embedded null byte in the sysfs root {path!r}")
    return path


def _check(res: Any, root: str) -> None:
    if res == ffi.NULL:
        raise MemoryError("fastvpd: cannot allocate the sysfs walk result")
    error, err = res.error, res.error_errno
    if error == lib.FV_E_OK:
        return
    if error == lib.FV_E_ROOT:
        raise SysfsError(f"cannot open the sysfs root: {_strerror(err)}", root, err)
    if error == lib.FV_E_NOT_SYSFS:
        raise SysfsError(f"not a sysfs tree: no bus/pci/devices directory ({_strerror(err)})",
                         root, err)
    if error == lib.FV_E_LISTING:
        raise SysfsError(f"cannot list bus/pci/devices: {_strerror(err)}",
                         os.path.join(root, "bus", "pci", "devices"), err)
    raise MemoryError(f"fastvpd: sysfs walk of {root} ran out of memory (error {error})")


Root = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def walk(root: Root, *, read_vpd: bool = True, vf_vpd: bool = False,
         listing: tuple[list[str], Sequence[int]] | None = None,
         reuse: tuple[Walk, list[str]] | None = None, entries: bool = True) -> Walk:
    """Walk ``<root>/bus/pci/devices`` in one C call; see the module docstring for the rows.

    ``read_vpd`` reads the raw ``vpd`` of PFs and functions without SR-IOV; ``vf_vpd`` (with
    ``read_vpd``) of VFs as well, one open per VF. Raises `SysfsError` only when ``root`` is no
    usable sysfs tree (ValueError when it holds a NUL byte); everything else becomes a problem row.

    For a periodic refresh that knows what did not change (`fastvpd.Scanner`): ``listing``
    (names, entry inode numbers or 0) stands in for reading ``bus/pci/devices``, and ``reuse``
    (a previous walk, and the addresses in it not to read again: PFs and plain functions) has
    those copied from the previous walk when their entry is the same (a PF's VFs computed from
    its layout, unread). The result is what a walk reading everything would give. Without
    ``entries`` the walk keeps no copy of the listing (`Walk.inodes`, `Walk.listing` empty): only
    a later comparison needs one.
    """
    root_s = root_path(root)
    flags = (lib.FV_READ_VPD if read_vpd else 0) | (lib.FV_VF_VPD if read_vpd and vf_vpd else 0)
    args, keep, rows = _rewalk_args(listing, reuse)
    res = lib.fv_rewalk(os.fsencode(root_s), flags, args)
    del keep
    try:
        _check(res, root_s)
        strings = ffi.buffer(res.strings, res.strings_len)[:] if res.strings_len else b""
        addresses, columns, extras = _decode_devices(res, strings)
        base = os.path.join(root_s, "bus", "pci", "devices")
        problems = _decode_problems(res, strings, base, addresses)
        if reuse is not None:
            _fill_reused(reuse[0], rows, addresses, columns, extras, problems)
        flags = columns.flags
        # Rows are looked at one by one only when one has such a flag (the C side ORs them all).
        any_flags = res.flags_any | (_NO_FACTS if reuse is not None else 0)
        factless = [i for i, f in enumerate(flags) if f & _NO_FACTS] if any_flags & _NO_FACTS else []
        if not entries:
            return Walk(addresses, columns, extras, factless, problems, _counters(res))
        return Walk(addresses, columns, extras, factless, problems, _counters(res),
                    _inodes(res), _class_net(res, strings), _listing(res))
    finally:
        if res != ffi.NULL:
            lib.fv_free(res)


def _rewalk_args(listing: tuple[list[str], Sequence[int]] | None,
                 reuse: tuple[Walk, list[str]] | None,
                 ) -> tuple[Any, list[Any], dict[str, int]]:
    """The fv_rewalk_args of `walk`, the objects the C call reads from (kept alive), and the
    previous row of each device to reuse."""
    rows: dict[str, int] = {}
    if listing is None and reuse is None:
        return ffi.NULL, [], rows
    args = ffi.new("fv_rewalk_args *")
    keep: list[Any] = [args]
    if listing is not None:
        text = "\n".join(listing[0]).encode("ascii")
        names = ffi.new("char[]", text)
        inodes = ffi.new("uint64_t[]", list(listing[1]) or [0])
        keep += [names, inodes]
        args.listing, args.listing_len, args.listing_inodes = names, len(text), inodes
    if reuse is not None and reuse[1]:
        prev, wanted = reuse
        rows = {a: i for a in wanted if (i := prev.addresses.find(a)) is not None}
        packed = b"".join(struct.pack(_DEV_FMT, *(col[rows[a]] for col in prev.columns),
                                      -1, -1, -1, -1, -1, -1) for a in wanted)
        text = "\n".join(wanted).encode("ascii")
        names = ffi.new("char[]", text)
        devices = ffi.from_buffer("fv_device[]", packed)
        inodes = ffi.new("uint64_t[]", [prev.inodes[rows[a]] for a in wanted])
        keep += [names, packed, devices, inodes]
        args.reuse, args.reuse_len, args.reuse_devices = names, len(text), devices
        args.reuse_inodes, args.n_reuse = inodes, len(wanted)
    return args, keep, rows


def _fill_reused(prev: Walk, rows: dict[str, int], addresses: Sequence[str], columns: Columns,
                 extras: dict[int, Extra], problems: list[tuple[int, str, str, str]]) -> None:
    """Give the rows the C walk copied (`F_REUSED`) their strings and problems from ``prev``,
    and drop the flag: the rows are then what reading the devices would have given."""
    flags = columns.flags
    reused = [i for i, f in enumerate(flags) if f & F_REUSED]
    if not reused:
        return
    old_problems: dict[int, list[tuple[int, str, str, str]]] = {}
    for row in prev.problems:
        old_problems.setdefault(row[0], []).append(row)
    for i in reused:
        flags[i] &= ~F_REUSED
        j = rows[addresses[i]]
        if j in prev.extras:
            extras[i] = prev.extras[j]
        problems.extend((i, *row[1:]) for row in old_problems.get(j, ()))


def details(root: Root, addresses: Iterable[str], *,
            counters: dict[str, int] | None = None,
            ) -> dict[str, tuple[str | None, Netdevs, list[tuple[str, str, str]]]]:
    """Driver, netdevs and problems of many devices in one C call.

    For the VFs the fast path of `walk` inferred: ``address -> (driver, ((ifname, mac), ...),
    [(attribute, message, path)])``. A device that is gone by now is in the result with no driver,
    no netdevs and a problem saying so; strings that are no PCI address are left out.
    ``counters``, when given, receives the syscalls made.
    """
    root_s = root_path(root)
    wanted = [a for a in addresses
              if isinstance(a, str) and 12 <= len(a) <= 16 and a.isascii() and "\n" not in a]
    names = "\n".join(wanted).encode("ascii")
    res = lib.fv_details(os.fsencode(root_s), names, len(names))
    try:
        _check(res, root_s)
        strings = ffi.buffer(res.strings, res.strings_len)[:] if res.strings_len else b""
        _, columns, extras = _decode_devices(res, strings)
        base = os.path.join(root_s, "bus", "pci", "devices")
        problems: dict[int, list[tuple[str, str, str]]] = {}
        for index, attribute, message, path in _decode_problems(res, strings, base, wanted):
            problems.setdefault(index, []).append((attribute, message, path))
        if counters is not None:
            counters.update(_counters(res))
        out: dict[str, tuple[str | None, Netdevs, list[tuple[str, str, str]]]] = {}
        for i, flags in enumerate(columns.flags):
            mine = problems.get(i, [])
            if flags & _NO_FACTS or not flags & F_DETAILS:
                if not mine:
                    mine = [("entry", "gone since the scan", os.path.join(base, wanted[i]))]
                out[wanted[i]] = (None, (), mine)
            else:
                driver, netdevs, _ = extras.get(i, NO_EXTRA)
                out[wanted[i]] = (driver, netdevs, mine)
        return out
    finally:
        if res != ffi.NULL:
            lib.fv_free(res)


def _inodes(res: Any) -> array[int]:
    """One machine word per entry, no int object per VF until one is asked for."""
    out = array("Q")
    if res.n_listed > 0:
        out.frombytes(ffi.buffer(res.inodes, 8 * res.n_listed))
    return out


def _listing(res: Any) -> bytes:
    """Names and inode numbers of the listing, raw: equal bytes, equal listing."""
    n = res.n_listed
    if n < 0:
        return b""
    return (ffi.buffer(res.addresses, res.addresses_len)[:] + b"\0"
            + (ffi.buffer(res.inodes, 8 * n)[:] if n else b""))


def listing_of(raw: bytes) -> tuple[list[str], list[int]]:
    """The names and inode numbers of a raw listing (`Walk.listing`, `Probe.listing`)."""
    text, _, inodes = raw.partition(b"\0")
    names = text.decode("ascii").split("\n") if text else []
    return names, memoryview(inodes).cast("Q").tolist() if inodes else []


def _class_net(res: Any, strings: bytes) -> bytes | None:
    off = res.class_net_off
    return strings[off:off + res.class_net_len] if off >= 0 else None


def read_problem(kind: str, value: int) -> str:
    """The message the walker gives a file it could not read, for a read made elsewhere (the
    Scanner's VPD reads): ``unreadable`` (an errno), ``not_regular`` (a d_type) or ``too_long``
    (the cap)."""
    if kind == "unreadable":
        return _message(0, lib.FV_P_UNREADABLE, value, 0, None)
    if kind == "not_regular":
        return _message(0, lib.FV_P_NOT_REGULAR, 0, value, None)
    if kind == "too_long":
        return _message(0, lib.FV_P_TOO_LONG, 0, value, None)
    raise ValueError(f"no such read problem: {kind!r}")


_PROBE_SIZE = ffi.sizeof("fv_pf_probe")


class PfProbe(NamedTuple):
    """What `Prober.probe` found of one PF: the basenames of the targets of ``virtfn0`` and of the last
    ``virtfn`` (None: no such link), whether the one past the last exists, the driver and the
    netdevs with their MACs. ``gone``: the PF's directory could not be opened."""

    gone: bool
    first: str | None
    last: str | None
    past_end: bool
    driver: str | None
    netdevs: Netdevs


class Probe(NamedTuple):
    """One `Prober.probe`, raw: what it found of the PFs (`pf_probes` decodes it), and when listed the
    ``bus/pci/devices`` listing and the ``class/net`` snapshot. Two probes found the same when
    their bytes are equal, so an unchanged host costs no decoding."""

    n: int
    raw: bytes
    listing: bytes | None
    class_net: bytes | None


class Prober:
    """The cheap re-check of a periodic refresh, for the PFs one walk found: each `probe` is one
    C call without the GIL that reads, per ``(PF address, VF count)``, its ``virtfn0``, last and
    one-past-the-last ``virtfn`` links, its driver and netdevs; with ``listing`` also the
    ``bus/pci/devices`` and ``class/net`` listings.

    It keeps the root, ``bus/pci/devices`` and each PF's directory and ``net/`` open between
    probes (two fds per PF; a lookup costs as much as the syscall around it) until `close`
    (docs/scanner.md, "What a refresh costs"). Thread-safe: probes of one prober take turns.
    """

    def __init__(self, root: Root, pfs: list[tuple[str, int]]) -> None:
        self.root = root_path(root)
        self.pfs = pfs
        names = "\n".join(a for a, _ in pfs).encode("ascii")
        counts = ffi.new("int32_t[]", [n for _, n in pfs] or [0])
        raw = lib.fv_prober_new(os.fsencode(self.root), names, len(names), counts, len(pfs))
        if raw == ffi.NULL:
            raise MemoryError("fastvpd: cannot allocate the PF prober")
        self._prober: Any = ffi.gc(raw, lib.fv_prober_free)
        self._lock = threading.Lock()

    def probe(self, *, listing: bool, counters: dict[str, int] | None = None) -> Probe:
        """One probe of every PF (see the class); ``counters``, when given, receives the
        syscalls made. Raises `SysfsError` when the root is no sysfs tree, ValueError once
        closed."""
        with self._lock:
            if self._prober is None:
                raise ValueError("the prober is closed")
            res = lib.fv_prober_run(self._prober, lib.FV_PROBE_LISTING if listing else 0)
        try:
            _check(res, self.root)
            n = res.n_probes
            strings = ffi.buffer(res.strings, res.strings_len)[:] if res.strings_len else b""
            if counters is not None:
                counters.update(_counters(res))
            head = strings[:res.class_net_off] if res.class_net_off >= 0 else strings
            raw = (ffi.buffer(res.probes, n * _PROBE_SIZE)[:]
                   + ffi.buffer(res.devices, n * _DEV_SIZE)[:] + head) if n else b""
            return Probe(n, raw, _listing(res) if listing else None,
                         _class_net(res, strings) if listing else None)
        finally:
            if res != ffi.NULL:
                lib.fv_free(res)

    def close(self) -> None:
        """Close the directories it holds (idempotent; waits for a probe in flight)."""
        with self._lock:
            prober, self._prober = self._prober, None
        if prober is not None:
            ffi.release(prober)

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pf_probes(p: Probe) -> list[PfProbe]:
    """The PFs a probe found, decoded."""
    raw, n = p.raw, p.n
    probes = memoryview(raw[:n * _PROBE_SIZE]).cast("i")
    devices = memoryview(raw[n * _PROBE_SIZE:n * (_PROBE_SIZE + _DEV_SIZE)]).cast("i")
    strings = raw[n * (_PROBE_SIZE + _DEV_SIZE):]

    def text(off: int, length: int) -> str | None:
        return _text(strings[off:off + length]) if off >= 0 else None

    out = []
    k = _PROBE_SIZE // 4
    for i in range(n):
        gone, f_off, f_len, l_off, l_len, past = probes[i * k:(i + 1) * k]
        at = i * _DEV_INTS + _DRV
        driver, netdevs, _ = _extra(strings, devices[at], devices[at + 1], devices[at + 2],
                                    devices[at + 3], -1, -1)
        out.append(PfProbe(bool(gone), text(f_off, f_len), text(l_off, l_len), bool(past),
                           driver, netdevs))
    return out


def same(now: Probe, baseline: Probe) -> bool:
    """Whether a probe finds what the baseline found (the listings only where ``now`` has them)."""
    if now.raw != baseline.raw:
        return False
    if now.listing is not None and now.listing != baseline.listing:
        return False
    return now.class_net is None or now.class_net == baseline.class_net


def baseline(w: Walk, p: Probe) -> Probe:
    """What later probes are compared with: the PFs as probed right after the walk, and the
    listings as the walk itself read them (before it read any device, so a change made during
    the walk shows in the next listing)."""
    return p._replace(listing=w.listing, class_net=w.class_net)


def agrees(w: Walk, p: Probe) -> bool:
    """Whether a probe of the PFs taken right after a walk finds what the walk saw: else a PF
    changed while it was walked."""
    c = w.columns
    pf_rows = [i for i, k in enumerate(c.kind) if k == KIND_PF]
    if len(pf_rows) != p.n:
        return False
    ends: dict[tuple[int, int], str] = {}
    last = {i: c.num_vfs[i] - 1 for i in pf_rows}
    for address, kind, parent, n in zip(w.addresses, c.kind, c.parent, c.vf_num):
        if kind == KIND_VF and (n == 0 or n == last.get(parent)):
            ends[parent, n] = address
    for i, got in zip(pf_rows, pf_probes(p)):
        n = max(c.num_vfs[i], 0)
        driver, netdevs, _ = w.extras.get(i, NO_EXTRA)
        want = PfProbe(False, ends.get((i, 0)) if n else None,
                       ends.get((i, n - 1)) if n > 1 else None, False, driver, netdevs)
        if got != want:
            return False
    return True
