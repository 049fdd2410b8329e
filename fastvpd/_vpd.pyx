# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""PCI VPD in Cython: the resource walker, the problem table and the `Vpd` object.

``parse_vpd`` walks the resources once and records every field as a small C entry (section,
keyword, offset, length) in one ``bytes`` table instead of making a Python object per field; the
`Vpd` it returns reads values out of that table on demand, so a caller that reads only
``serial_number`` pays for the walk, one object and that one string. Every read of the data is
checked against its end by hand (bounds checking is off for speed). `Vpd` is a C type with C-level
properties because the serial is what every compute agent reads, for every card, on every scan.
vpd.py is the public module (docs/vpd.md): it re-exports `Vpd`, `parse_vpd`, `text` and `PROBLEMS`
and holds the encoder and the display helpers.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_1BYTE_DATA, PyUnicode_DecodeASCII, PyUnicode_New
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcpy

from types import MappingProxyType

from fastvpd.errors import VpdFormatError

cdef extern from "Python.h":
    bint PyBytes_CheckExact(object)
    bint PyType_IsSubtype(type, type)

# Problem codes; PROBLEMS gives each its message and its strictness.
NO_VPD = 0
NO_END_TAG = 1
RESOURCE_OVERRUN = 2
FIELD_OVERRUN = 3
STRAY_BYTES = 4
NO_VPD_R = 5
NO_RV = 6
RV_NOT_LAST = 7
RV_EMPTY = 8
CHECKSUM_BAD = 9
RW_IN_VPD_R = 10
RV_IN_VPD_W = 11
RW_NOT_LAST = 12
RW_REPEATED = 13
BAD_NAME = 14
UNKNOWN_RESOURCE = 15
INVALID_KEYWORD = 16
WRONG_SECTION = 17
NOT_TEXT = 18

#: code -> (fatal in strict mode, message template; {d} is the detail: a keyword, tag or section)
PROBLEMS = MappingProxyType({
    NO_VPD: (True, "no VPD: empty, or first byte 0x00/0xFF (unprogrammed EEPROM)"),
    NO_END_TAG: (True, "no end tag before the data ends"),
    RESOURCE_OVERRUN: (True, "resource {d} runs past the end of the data"),
    FIELD_OVERRUN: (True, "field {d} runs past the end of its resource or of the data"),
    STRAY_BYTES: (True, "stray bytes at the end of {d}"),
    NO_VPD_R: (True, "no VPD-R (read-only) resource"),
    NO_RV: (True, "VPD-R has no RV checksum field"),
    RV_NOT_LAST: (True, "RV is not the last field of VPD-R"),
    RV_EMPTY: (True, "RV has length 0 (no checksum byte)"),
    CHECKSUM_BAD: (True, "checksum wrong"),
    RW_IN_VPD_R: (True, "RW field inside VPD-R"),
    RV_IN_VPD_W: (True, "RV field inside VPD-W"),
    RW_NOT_LAST: (True, "RW is not the last field of VPD-W"),
    RW_REPEATED: (True, "more than one RW field in VPD-W"),
    BAD_NAME: (True, "identifier string is not printable ASCII"),
    UNKNOWN_RESOURCE: (False, "unknown resource {d} skipped"),
    INVALID_KEYWORD: (False, "invalid keyword 0x{d} skipped"),
    WRONG_SECTION: (False, "keyword {d} in the wrong section"),
    NOT_TEXT: (False, "field {d} is not printable ASCII"),
})

MAX_VPD_SIZE = 32768

# Sections of a table entry.
READ_ONLY = 0
READ_WRITE = 1
NAME = 2  # the identifier string, with an empty keyword

cdef enum:
    C_MAX = 32768
    C_CHECKSUM_NONE = -1  # CHECKSUM_NONE without a lookup in the module's dict
    READ_ONLY_SECTION = 0
    READ_WRITE_SECTION = 1
    NAME_SECTION = 2

ctypedef struct Entry:
    unsigned int offset    # of the value in the data
    unsigned short length  # a walked value is at most 32768 bytes (the name), a field 255
    unsigned char section
    unsigned char kw0
    unsigned char kw1
    unsigned char pad[3]

ENTRY_SIZE = sizeof(Entry)

# Checksum states (Blob.checksum_state).
CHECKSUM_NONE = -1
CHECKSUM_BAD_STATE = 0
CHECKSUM_OK = 1

# Interned keyword strings, so that "SN" is one object however many blobs are parsed.
cdef list _keywords = [None] * 65536

ctypedef struct State:
    const unsigned char* p
    Entry* entries
    Py_ssize_t count
    unsigned char running_sum  # the 8-bit sum of p[:sum_pos]: only the sum mod 256 counts
    Py_ssize_t sum_pos
    int checksum


cdef inline bint _kw_char(unsigned char c) noexcept nogil:
    return (b'A' <= c <= b'Z') or (b'0' <= c <= b'9')


cdef inline bint _is_space(unsigned char c) noexcept nogil:
    return c == 0x20 or c == 0x09 or c == 0x0A or c == 0x0C or c == 0x0D


cdef inline object _keyword(unsigned char a, unsigned char b):
    cdef int i = a * 256 + b
    kw = _keywords[i]
    if kw is None:
        kw = PyUnicode_DecodeASCII(<char*>&a, 1, NULL) + PyUnicode_DecodeASCII(<char*>&b, 1, NULL)
        _keywords[i] = kw
    return kw


cdef inline uint64_t _special8(uint64_t v) noexcept nogil:
    """Bit 7 of each byte of ``v`` set where that byte is not printable ASCII (< 0x20, >= 0x7F).

    No byte's sum carries into the next: (v & 0x7F) + 0x60 <= 0xDF and (v & 0x7F) + 1 <= 0x80.
    """
    cdef uint64_t low = v & 0x7F7F7F7F7F7F7F7FULL
    return (v | ~(low + 0x6060606060606060ULL) | (low + 0x0101010101010101ULL)) & 0x8080808080808080ULL


cdef inline bint _printable(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Every byte of ``p[:n]`` is 0x20-0x7E: eight at a time, for the short values of VPD."""
    cdef uint64_t v, acc = 0
    cdef Py_ssize_t i = 0, k
    while i + 8 <= n:
        memcpy(&v, p + i, 8)  # an unaligned load, without the undefined behaviour of a cast
        acc |= _special8(v)
        i += 8
    if i < n:
        if n >= 8:
            memcpy(&v, p + n - 8, 8)  # the last eight bytes again, overlapping
        else:
            v = 0x4141414141414141ULL  # 'A' where there is no byte
            for k in range(n):
                v = (v << 8) | p[k]
        acc |= _special8(v)
    return acc == 0


cdef inline bint _text_span(const unsigned char* p, Py_ssize_t n,
                            Py_ssize_t* start, Py_ssize_t* stop) noexcept nogil:
    """Normalise like libvirt: cut at NUL, strip, then all bytes must be 0x20-0x7E."""
    cdef Py_ssize_t i = 0, j = n, k
    if _printable(p, n):  # the usual value: no NUL, and only a space can be stripped
        while i < j and p[i] == 0x20:
            i += 1
        while j > i and p[j - 1] == 0x20:
            j -= 1
        start[0] = i
        stop[0] = j
        return True
    cdef const void* nul = memchr(p, 0, <size_t>n) if n > 0 else NULL
    if nul != NULL:
        j = <const unsigned char*>nul - p
    while i < j and _is_space(p[i]):
        i += 1
    while j > i and _is_space(p[j - 1]):
        j -= 1
    start[0] = i
    stop[0] = j
    return _printable(p + i, j - i)


cdef inline bint _is_text_keyword(unsigned char a, unsigned char b, bint read_only) noexcept nogil:
    """The keywords fastvpd reads as text, in the section they belong to."""
    if read_only:
        return ((a == b'P' and b == b'N') or (a == b'E' and b == b'C') or
                (a == b'M' and b == b'N') or (a == b'S' and b == b'N') or a == b'V')
    return a == b'Y'


cdef inline bint _wrong_section(unsigned char a, unsigned char b, bint read_only) noexcept nogil:
    if read_only:
        return a == b'Y'
    return ((a == b'P' and b == b'N') or (a == b'E' and b == b'C') or
            (a == b'M' and b == b'N') or (a == b'S' and b == b'N') or (a == b'C' and b == b'P'))


cdef inline object _decode(const unsigned char* p, Py_ssize_t n):
    """Normalised text of ``p[:n]``, or None when it is not printable ASCII."""
    cdef Py_ssize_t start, stop
    if not _text_span(p, n, &start, &stop):
        return None
    # Known to be ASCII, so the str is made and filled directly, without decoding's own check.
    s = PyUnicode_New(stop - start, 127)
    memcpy(PyUnicode_1BYTE_DATA(s), p + start, stop - start)
    return s


def text(raw):
    """Normalised text of a raw value (docs/vpd.md), or None when it is not printable ASCII."""
    if not PyBytes_CheckExact(raw):
        raw = bytes(raw)
    return _decode(<const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))


cdef inline void _add(State* st, Py_ssize_t offset, Py_ssize_t length, unsigned char section,
                      unsigned char a, unsigned char b) noexcept nogil:
    cdef Entry* e = &st.entries[st.count]
    e.offset = <unsigned int>offset
    e.length = <unsigned short>length
    e.section = section
    e.kw0 = a
    e.kw1 = b
    e.pad[0] = e.pad[1] = e.pad[2] = 0
    st.count += 1


cdef int _problem(Blob blob, Py_ssize_t offset, int code, object detail) except -1:
    """Record a raw problem; the list is made at the first one, so a clean blob makes none."""
    if blob._problems is None:
        blob._problems = [(offset, code, detail)]
    else:
        blob._problems.append((offset, code, detail))
    return 0


cdef inline bytes _as_bytes(data):
    if PyBytes_CheckExact(data):
        return data
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, memoryview):
        return data.tobytes()
    raise TypeError(f"VPD data must be bytes, bytearray or memoryview, not {type(data).__name__}")


def _problem_key(p):
    return (p[0], p[1])


cdef const Entry* _last(Blob blob, int section, unsigned char a, unsigned char b) noexcept:
    """The last entry of ``section`` with keyword ``ab`` (ignored for NAME), or NULL."""
    cdef Py_ssize_t i = PyBytes_GET_SIZE(blob.table) // sizeof(Entry)
    cdef const Entry* entries = <const Entry*>PyBytes_AS_STRING(blob.table)
    while i > 0:
        i -= 1
        if entries[i].section == section and (
                section == NAME_SECTION or (entries[i].kw0 == a and entries[i].kw1 == b)):
            return &entries[i]
    return NULL


cdef const Entry* _last_named(Blob blob, int section, str keyword) except? NULL:
    """`_last` for a keyword given as text; NULL also for one that is not two ASCII characters."""
    cdef Py_UCS4 a, b
    if section == NAME_SECTION:
        return _last(blob, section, 0, 0)
    if len(keyword) != 2:
        return NULL
    a = keyword[0]
    b = keyword[1]
    if a > 0x7F or b > 0x7F:
        return NULL
    return _last(blob, section, <unsigned char>a, <unsigned char>b)


cdef inline object _entry_text(Blob blob, const Entry* e):
    if e == NULL:
        return None
    return _decode(<const unsigned char*>PyBytes_AS_STRING(blob.data) + e.offset, e.length)


@cython.freelist(8)
cdef class Blob:
    """A walked VPD blob: its bytes, the entry table, the checksum state and the raw problems.

    ``raw_problems`` are ``(offset, code, detail)`` sorted by offset, then code. The ``_cache_*``
    fields hold `Vpd`'s decoded forms once made. The methods read the bytes through the table
    unchecked, so a table only ever comes from this module: `parse`, `from_fields`, or an
    unpickled blob whose table is checked against its bytes first (`_restore`).
    """

    cdef readonly bytes data
    cdef readonly bytes table
    cdef readonly int checksum_state
    cdef list _problems  # None until the first problem: a clean blob allocates no list
    cdef object _cache_ro, _cache_rw, _cache_problems
    cdef bint _built  # filled by this module: Vpd.__init__ refuses to fill it again

    def __cinit__(self):
        # Set before anything can read them: ``Blob()`` or ``Blob.__new__(cls)`` is an empty blob,
        # never one whose bytes are None (the readers would take PyBytes_GET_SIZE of None).
        self.data = b""
        self.table = b""
        self.checksum_state = C_CHECKSUM_NONE

    @property
    def raw_problems(self):
        """``[(offset, code, detail)]`` sorted by offset, then code; the same list every time."""
        if self._problems is None:
            self._problems = []
        return self._problems

    def __reduce__(self):
        """Pickled as its bytes and table, checked again when unpickled (`_restore`)."""
        return _restore, (type(self), self.data, self.table, self.checksum_state,
                          self.raw_problems, self._cache_problems)

    def find(self, int section, str keyword=""):
        """Raw value of the last ``keyword`` field of ``section`` (or the name), or None."""
        cdef const Entry* e = _last_named(self, section, keyword)
        if e == NULL:
            return None
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self.data) + e.offset, e.length)

    def find_text(self, int section, str keyword=""):
        """Normalised text of what `find` returns: None when absent or not printable ASCII."""
        return _entry_text(self, _last_named(self, section, keyword))

    def fields(self, int section):
        """Every entry of ``section`` in blob order, repeats included: ``[(keyword, raw)]``."""
        cdef Py_ssize_t count = PyBytes_GET_SIZE(self.table) // sizeof(Entry), i
        cdef const Entry* entries = <const Entry*>PyBytes_AS_STRING(self.table)
        cdef const char* p = PyBytes_AS_STRING(self.data)
        cdef list out = []
        for i in range(count):
            if entries[i].section == section:
                out.append(("" if section == NAME_SECTION else
                            _keyword(entries[i].kw0, entries[i].kw1),
                            PyBytes_FromStringAndSize(p + entries[i].offset, entries[i].length)))
        return out

    def mapping(self, int section):
        """``section`` as keyword -> raw: a repeat keeps its first position and its last value."""
        return _mapping(self, section)


cdef dict _mapping(Blob blob, int section):
    cdef Py_ssize_t count = PyBytes_GET_SIZE(blob.table) // sizeof(Entry), i
    cdef const Entry* entries = <const Entry*>PyBytes_AS_STRING(blob.table)
    cdef const char* p = PyBytes_AS_STRING(blob.data)
    cdef dict out = {}
    for i in range(count):
        if entries[i].section == section:
            out[_keyword(entries[i].kw0, entries[i].kw1)] = PyBytes_FromStringAndSize(
                p + entries[i].offset, entries[i].length)
    return out


cdef _message(offset, code, detail):
    return f"offset {offset}: " + PROBLEMS[code][1].format(d=detail)


cdef dict _problem_dict(offset, code, detail):
    fatal, template = PROBLEMS[code]
    return {"offset": offset, "message": template.format(d=detail), "fatal": fatal}


cdef dict _field_dict(bytes raw):
    return {"raw_hex": raw.hex(), "text": text(raw)}


cdef object _indexed_text(section, str family, str excluded):
    out = {}
    for kw, raw in section.items():
        if kw[0] == family and kw[1] not in excluded:
            value = text(raw)
            if value is not None:
                out[kw[1]] = value
    return MappingProxyType(out)


cdef class Vpd(Blob):
    # The first line is the constructor's signature in CPython's form, for inspect and help().
    """Vpd(name=None, read_only=None, read_write=None, checksum_ok=None, problems=())\n--\n\n
    A decoded VPD blob. Immutable; raw values are kept, text is normalised on access.

    ``read_only``/``read_write`` map keyword -> raw value in blob order (a repeated keyword keeps
    its first position and its last value). ``checksum_ok`` is None when VPD-R has no RV.
    A Vpd is a walked `Blob` (the bytes and a packed field table) and decodes on demand: a
    caller that reads only ``serial_number`` pays for nothing else.

    The constructor builds one by hand (tests, synthetic hosts); `parse_vpd` is the usual way.
    """

    # Methods and properties only: no fields, and Blob has no cdef methods (no vtable), so Vpd
    # keeps Blob's allocator. parse_vpd makes a Vpd with it directly, and ``Blob.__new__(Vpd)``
    # is allowed (an empty Vpd, as before). Building by hand is therefore __init__'s job.

    def __init__(self, name=None, read_only=None, read_write=None, checksum_ok=None,
                 problems=()):
        if self._built:
            raise TypeError("a Vpd is immutable: __init__ cannot fill it again")
        _fill(self, None if name is None else name.encode("ascii"),
              list((read_only or {}).items()), list((read_write or {}).items()),
              -1 if checksum_ok is None else int(checksum_ok), [])
        self._cache_problems = tuple(problems)

    @classmethod
    def _from_fields(cls, name_raw, read_only, read_write, int checksum, raw_problems):
        """A Vpd from decoded fields (in blob order, repeats included) and raw problems.

        For other parsers with the same semantics (the tests' reference parser).
        """
        return from_fields(cls, name_raw, list(read_only), list(read_write), checksum,
                           list(raw_problems))

    # -- raw data ---------------------------------------------------------------------------------
    @property
    def name(self):
        """The identifier string (product name), normalised; None if absent or not text."""
        return _entry_text(self, _last(self, NAME_SECTION, 0, 0))

    @property
    def read_only(self):
        """VPD-R as keyword -> raw value, in blob order, without ``RV``."""
        if self._cache_ro is None:
            self._cache_ro = MappingProxyType(_mapping(self, READ_ONLY_SECTION))
        return self._cache_ro

    @property
    def read_write(self):
        """VPD-W as keyword -> raw value, in blob order, without ``RW``."""
        if self._cache_rw is None:
            self._cache_rw = MappingProxyType(_mapping(self, READ_WRITE_SECTION))
        return self._cache_rw

    @property
    def checksum_ok(self):
        """True when every RV checksum holds, False when one fails or is empty, None: no RV."""
        if self.checksum_state < 0:
            return None
        return self.checksum_state == 1

    @property
    def problems(self):
        """Human-readable problems, each with its byte offset; empty for a clean blob."""
        if self._cache_problems is None:
            if self._problems is None:
                self._cache_problems = ()
            else:
                self._cache_problems = tuple([_message(o, c, d) for o, c, d in self._problems])
        return self._cache_problems

    @property
    def fatal_problems(self):
        """The problems that make ``parse_vpd(strict=True)`` raise."""
        if self._problems is None:
            return ()
        return tuple([_message(o, c, d) for o, c, d in self._problems if PROBLEMS[c][0]])

    # -- text accessors ---------------------------------------------------------------------------
    @property
    def serial_number(self):
        """``SN`` of VPD-R as text: the card serial a compute agent reports."""
        return _entry_text(self, _last(self, READ_ONLY_SECTION, b'S', b'N'))

    @property
    def part_number(self):
        """``PN``."""
        return _entry_text(self, _last(self, READ_ONLY_SECTION, b'P', b'N'))

    @property
    def change_level(self):
        """``EC``, the engineering change level."""
        return _entry_text(self, _last(self, READ_ONLY_SECTION, b'E', b'C'))

    @property
    def manufacture_id(self):
        """``MN``."""
        return _entry_text(self, _last(self, READ_ONLY_SECTION, b'M', b'N'))

    @property
    def asset_tag(self):
        """``YA`` of VPD-W."""
        return _entry_text(self, _last(self, READ_WRITE_SECTION, b'Y', b'A'))

    @property
    def vendor_fields(self):
        """Read-only ``Vx`` fields as text: index character -> text (non-text values left out)."""
        return _indexed_text(self.read_only, "V", "")

    @property
    def system_fields(self):
        """Read-write ``Yx`` fields (x != A) as text."""
        return _indexed_text(self.read_write, "Y", "A")

    # -- value semantics --------------------------------------------------------------------------
    def _key(self):
        return (self.name, tuple(self.read_only.items()), tuple(self.read_write.items()),
                self.checksum_ok, self.problems)

    def __eq__(self, other):
        if not isinstance(other, Vpd):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (f"Vpd(name={self.name!r}, serial_number={self.serial_number!r}, "
                f"read_only={dict(self.read_only)!r}, read_write={dict(self.read_write)!r}, "
                f"checksum_ok={self.checksum_ok!r}, problems={self.problems!r})")

    def to_dict(self):
        """JSON-ready form.

        Each field is ``{"raw_hex": ..., "text": ...}``: the raw bytes as hex (lossless) and the
        normalised text, or None when the value is not printable ASCII (docs/vpd.md). Each
        problem is ``{"offset", "message", "fatal"}``; ``fatal``: ``parse_vpd(strict=True)`` (and
        libvirt) reject the blob for it. A Vpd built by hand has problems without an offset
        (``offset`` and ``fatal`` are None). `escape_value` gives the lspci-like form for text.
        """
        if self._problems:
            problems = [_problem_dict(o, c, d) for o, c, d in self._problems]
        else:
            problems = [{"offset": None, "message": p, "fatal": None} for p in self.problems]
        return {
            "name": self.name,
            "serial_number": self.serial_number,
            "read_only": {k: _field_dict(v) for k, v in self.read_only.items()},
            "read_write": {k: _field_dict(v) for k, v in self.read_write.items()},
            "checksum_ok": self.checksum_ok,
            "problems": problems,
        }


cdef inline void _seal(Blob blob, bytes data, bytes table, int checksum, list problems):
    """Give a blob its contents, once: problems sorted, and no list at all when there are none."""
    blob.data = data
    blob.table = table
    blob.checksum_state = checksum
    if problems:
        if len(problems) > 1:
            problems.sort(key=_problem_key)
        blob._problems = problems
    blob._built = True


def _restore(type cls, bytes data not None, bytes table not None, int checksum, list problems,
             cached_problems):
    """Unpickle a blob: ValueError unless every table entry lies inside ``data``."""
    if not PyType_IsSubtype(cls, Blob):
        raise TypeError("cls must be a Blob type")
    cdef Py_ssize_t count = PyBytes_GET_SIZE(table) // sizeof(Entry), i
    cdef const Entry* entries = <const Entry*>PyBytes_AS_STRING(table)
    if PyBytes_GET_SIZE(table) % sizeof(Entry):
        raise ValueError("VPD field table of a partial entry")
    for i in range(count):
        if (entries[i].section > NAME_SECTION or
                <Py_ssize_t>entries[i].offset + entries[i].length > PyBytes_GET_SIZE(data)):
            raise ValueError(f"VPD field table entry {i} lies outside the data")
    cdef Blob blob = Blob.__new__(cls)
    _seal(blob, data, table, checksum, list(problems))
    blob._cache_problems = cached_problems
    return blob


cdef int _walk_into(Blob blob, data) except -1:
    """Walk ``data`` (bytes, bytearray or memoryview) into ``blob``; TypeError for other types."""
    cdef bytes raw = _as_bytes(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    if n > C_MAX:
        n = C_MAX
    cdef State st
    st.p = <const unsigned char*>PyBytes_AS_STRING(raw)
    st.count = 0
    st.running_sum = 0
    st.sum_pos = 0
    st.checksum = -1
    if n == 0 or st.p[0] == 0x00 or st.p[0] == 0xFF:
        _seal(blob, raw, b"", -1, [(0, NO_VPD, None)])
        return 0
    cdef Entry small[256]  # on the stack for blobs up to 765 bytes, which is nearly all
    # Every entry takes at least 3 bytes of data, so n // 3 + 1 entries always suffice.
    cdef Py_ssize_t capacity = n // 3 + 1
    if capacity <= 256:
        st.entries = &small[0]
    else:
        st.entries = <Entry*>PyMem_Malloc(capacity * sizeof(Entry))
        if st.entries == NULL:
            raise MemoryError()
    try:
        _walk(&st, n, blob)
        table = PyBytes_FromStringAndSize(<const char*>st.entries, st.count * sizeof(Entry))
    finally:
        if st.entries != &small[0]:
            PyMem_Free(st.entries)
    _seal(blob, raw, table, st.checksum, blob._problems)
    return 0


def parse(data, type cls=Blob):
    """Walk VPD ``data`` (bytes, bytearray or memoryview) into a ``cls`` (a `Blob` type).

    Never raises for any content; TypeError for other types.
    """
    if not PyType_IsSubtype(cls, Blob):
        raise TypeError("cls must be a Blob type")
    cdef Blob blob = Blob.__new__(cls)
    _walk_into(blob, data)
    return blob


@cython.annotation_typing(False)  # annotations for readers and inspect; the type is checked below
def parse_vpd(data: bytes | bytearray | memoryview, *, strict: bool = False) -> Vpd:
    """Decode a VPD blob.

    Tolerant (default): never raises for any bytes; problems are kept on ``Vpd.problems``.
    ``strict=True`` raises `VpdFormatError` (with ``.offset``) at the first fatal problem.
    Raises TypeError for anything but bytes, bytearray or memoryview.
    """
    cdef Blob vpd = Vpd.__new__(Vpd)  # Blob's allocator: no __init__, no hand-building
    _walk_into(vpd, data)
    if strict and vpd._problems is not None:
        for offset, code, detail in vpd._problems:
            if PROBLEMS[code][0]:
                raise VpdFormatError(_message(offset, code, detail), offset)
    return vpd


cdef int _fill(Blob blob, name_raw, list read_only, list read_write, int checksum,
               list problems) except -1:
    """Lay decoded fields out in a fresh buffer with an entry table, so that ``blob`` reads
    exactly like a walked blob. Fields are ``(keyword, raw)`` with two-character keywords."""
    parts = []
    entries = bytearray()
    cdef Py_ssize_t offset = 0
    cdef Entry e
    items = [(NAME_SECTION, "  ", name_raw)] if name_raw is not None else []
    items += [(READ_ONLY_SECTION, k, v) for k, v in read_only]
    items += [(READ_WRITE_SECTION, k, v) for k, v in read_write]
    for section, keyword, value in items:
        value = bytes(value)
        if len(keyword) != 2 or not keyword.isascii() or len(value) > 0xFFFF or offset > 0xFFFFFFFF - len(value):
            raise ValueError(f"cannot hold field {keyword!r} of {len(value)} bytes")
        e.offset = <unsigned int>offset
        e.length = <unsigned short>len(value)
        e.section = section
        e.kw0 = ord(keyword[0]) if section != NAME_SECTION else 0
        e.kw1 = ord(keyword[1]) if section != NAME_SECTION else 0
        e.pad[0] = e.pad[1] = e.pad[2] = 0
        entries += (<char*>&e)[:sizeof(Entry)]
        parts.append(value)
        offset += len(value)
    _seal(blob, b"".join(parts), bytes(entries), checksum, problems)
    return 0


def from_fields(type cls, name_raw, read_only, read_write, int checksum, list problems):
    """A ``cls`` from decoded fields (other parsers with the same semantics; hand-built Vpd)."""
    if not issubclass(cls, Blob):
        raise TypeError("cls must be a Blob type")
    cdef Blob blob = Blob.__new__(cls)
    _fill(blob, name_raw, list(read_only), list(read_write), checksum, list(problems))
    return blob


cdef int _fields(State* st, Py_ssize_t begin, Py_ssize_t limit, bint read_only,
                 Blob blob) except -1:
    """Walk the keyword fields of one VPD-R (read_only) or VPD-W resource in p[begin:limit]."""
    cdef const unsigned char* p = st.p
    cdef Py_ssize_t pos = begin, vstart, vlen, vend, s, e, k
    cdef unsigned char total  # byte lanes: the compiler adds 16 bytes at a time
    cdef unsigned char a, b
    cdef bint saw_rv = False, saw_rw = False, after_special = False
    cdef Py_ssize_t special_at = -1
    while pos < limit:
        if limit - pos < 3:
            _problem(blob, pos, STRAY_BYTES, "VPD-R" if read_only else "VPD-W")
            break
        a = p[pos]
        b = p[pos + 1]
        vlen = p[pos + 2]
        vstart = pos + 3
        vend = vstart + vlen
        if special_at >= 0 and not after_special:
            after_special = True
            if read_only:
                _problem(blob, special_at, RV_NOT_LAST, "RV")
            else:
                _problem(blob, special_at, RW_NOT_LAST, "RW")
        if read_only and a == b'R' and b == b'V':
            saw_rv = True
            if vlen == 0:
                _problem(blob, pos, RV_EMPTY, "RV")
                st.checksum = 0
            elif vstart >= limit:
                st.checksum = 0
            else:
                # Sum every byte from where the last sum stopped through the checksum byte.
                total = st.running_sum
                for k in range(st.sum_pos, vstart + 1):
                    total += p[k]
                st.running_sum = total
                st.sum_pos = vstart + 1
                if total:
                    _problem(blob, vstart, CHECKSUM_BAD, "RV")
                    st.checksum = 0
                elif st.checksum != 0:
                    st.checksum = 1
            if vend > limit:
                _problem(blob, pos, FIELD_OVERRUN, "RV")
                break
            special_at = pos
            after_special = False
            pos = vend
            continue
        if not read_only and a == b'R' and b == b'W':
            if saw_rw:
                _problem(blob, pos, RW_REPEATED, "RW")
            saw_rw = True
            if vend > limit:
                _problem(blob, pos, FIELD_OVERRUN, "RW")
                break
            special_at = pos
            after_special = False
            pos = vend
            continue
        if not (_kw_char(a) and _kw_char(b)):
            _problem(blob, pos, INVALID_KEYWORD,
                     PyBytes_FromStringAndSize(<const char*>p + pos, 2).hex())
            if vend > limit:
                _problem(blob, pos, FIELD_OVERRUN, None)
                break
            pos = vend
            continue
        if vend > limit:
            _problem(blob, pos, FIELD_OVERRUN, _keyword(a, b))
            break
        if read_only and a == b'R' and b == b'W':
            _problem(blob, pos, RW_IN_VPD_R, "RW")
        elif not read_only and a == b'R' and b == b'V':
            _problem(blob, pos, RV_IN_VPD_W, "RV")
        elif _wrong_section(a, b, read_only):
            _problem(blob, pos, WRONG_SECTION, _keyword(a, b))
        elif _is_text_keyword(a, b, read_only) and not _text_span(p + vstart, vlen, &s, &e):
            _problem(blob, pos, NOT_TEXT, _keyword(a, b))
        _add(st, vstart, vlen, READ_ONLY_SECTION if read_only else READ_WRITE_SECTION, a, b)
        pos = vend
    if read_only and not saw_rv:
        _problem(blob, begin - 3, NO_RV, None)
    return 0




cdef int _walk(State* st, Py_ssize_t n, Blob blob) except -1:
    cdef const unsigned char* p = st.p
    cdef Py_ssize_t pos = 0, length, begin, end, limit, s, e
    cdef unsigned char tag
    cdef bint saw_end = False, saw_vpd_r = False
    while pos < n:
        tag = p[pos]
        if tag & 0x80:
            if n - pos < 3:
                _problem(blob, pos, RESOURCE_OVERRUN, f"0x{tag:02x}")
                pos = n
                break
            length = p[pos + 1] | (p[pos + 2] << 8)
            begin = pos + 3
        else:
            if (tag >> 3) & 0x0F == 0x0F:
                saw_end = True
                break
            length = tag & 0x07
            begin = pos + 1
        end = begin + length
        limit = end
        if end > n:
            _problem(blob, pos, RESOURCE_OVERRUN, f"0x{tag:02x}")
            limit = n
        if tag == 0x82:
            _add(st, begin, limit - begin, NAME_SECTION, 0, 0)
            if not _text_span(p + begin, limit - begin, &s, &e):
                _problem(blob, pos, BAD_NAME, None)
        elif tag == 0x90:
            saw_vpd_r = True
            _fields(st, begin, limit, True, blob)
        elif tag == 0x91:
            _fields(st, begin, limit, False, blob)
        elif tag & 0x80:
            _problem(blob, pos, UNKNOWN_RESOURCE, f"0x{tag:02x} (large item 0x{tag & 0x7F:02x})")
        else:
            _problem(blob, pos, UNKNOWN_RESOURCE, f"0x{tag:02x} (small item 0x{(tag >> 3) & 0x0F:02x})")
        pos = limit
    if not saw_end:
        _problem(blob, pos, NO_END_TAG, None)
    if not saw_vpd_r:
        _problem(blob, pos, NO_VPD_R, None)
    return 0
