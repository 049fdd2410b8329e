# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""PCI VPD resource walker: bytes in, a `Blob` out (the bytes and a packed field table).

``parse`` walks the resources once and records every field as a small C entry (section, keyword,
offset, length) in one ``bytes`` table instead of making a Python object per field; `Blob`'s
``find``, ``find_text``, ``mapping`` and ``fields`` read values out of it on demand. Every read of
the data is checked against its end by hand (bounds checking is off for speed). Policy (problem
messages, strictness, which keyword means what) lives in vpd.py, whose `Vpd` derives from `Blob`.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.string cimport memchr

cdef extern from "Python.h":
    bint PyBytes_CheckExact(object)
    bint PyType_IsSubtype(type, type)

# Problem codes; vpd.PROBLEMS gives each its message and its strictness.
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

MAX_VPD_SIZE = 32768

# Sections of a table entry.
READ_ONLY = 0
READ_WRITE = 1
NAME = 2  # the identifier string, with an empty keyword

cdef enum:
    C_MAX = 32768
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

# Checksum states returned in the result tuple.
CHECKSUM_NONE = -1
CHECKSUM_BAD_STATE = 0
CHECKSUM_OK = 1

# Interned keyword strings, so that "SN" is one object however many blobs are parsed.
cdef list _keywords = [None] * 65536

ctypedef struct State:
    const unsigned char* p
    Entry* entries
    Py_ssize_t count
    unsigned int running_sum
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


cdef inline bint _text_span(const unsigned char* p, Py_ssize_t n,
                            Py_ssize_t* start, Py_ssize_t* stop) noexcept nogil:
    """Normalise like libvirt: cut at NUL, strip, then all bytes must be 0x20-0x7E."""
    cdef const void* nul = memchr(p, 0, <size_t>n) if n > 0 else NULL
    cdef Py_ssize_t i = 0, j = (<const unsigned char*>nul - p) if nul != NULL else n, k
    while i < j and _is_space(p[i]):
        i += 1
    while j > i and _is_space(p[j - 1]):
        j -= 1
    start[0] = i
    stop[0] = j
    cdef unsigned char bad = 0
    for k in range(i, j):  # no early exit, so that the compiler can vectorise the loop
        bad |= <unsigned char>(p[k] - 0x20) > 0x5E
    return not bad


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


def text(raw):
    """Normalised text of a raw value (docs/vpd.md), or None when it is not printable ASCII."""
    if not PyBytes_CheckExact(raw):
        raw = bytes(raw)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t start, stop
    if not _text_span(p, PyBytes_GET_SIZE(raw), &start, &stop):
        return None
    return PyUnicode_DecodeASCII(<const char*>p + start, stop - start, NULL)


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


cdef int _fields(State* st, Py_ssize_t begin, Py_ssize_t limit, bint read_only,
                 list problems) except -1:
    """Walk the keyword fields of one VPD-R (read_only) or VPD-W resource in p[begin:limit]."""
    cdef const unsigned char* p = st.p
    cdef Py_ssize_t pos = begin, vstart, vlen, vend, s, e, k
    cdef unsigned int total
    cdef unsigned char a, b
    cdef bint saw_rv = False, saw_rw = False, after_special = False
    cdef Py_ssize_t special_at = -1
    while pos < limit:
        if limit - pos < 3:
            problems.append((pos, STRAY_BYTES, "VPD-R" if read_only else "VPD-W"))
            break
        a = p[pos]
        b = p[pos + 1]
        vlen = p[pos + 2]
        vstart = pos + 3
        vend = vstart + vlen
        if special_at >= 0 and not after_special:
            after_special = True
            if read_only:
                problems.append((special_at, RV_NOT_LAST, "RV"))
            else:
                problems.append((special_at, RW_NOT_LAST, "RW"))
        if read_only and a == b'R' and b == b'V':
            saw_rv = True
            if vlen == 0:
                problems.append((pos, RV_EMPTY, "RV"))
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
                if total & 0xFF:
                    problems.append((vstart, CHECKSUM_BAD, "RV"))
                    st.checksum = 0
                elif st.checksum != 0:
                    st.checksum = 1
            if vend > limit:
                problems.append((pos, FIELD_OVERRUN, "RV"))
                break
            special_at = pos
            after_special = False
            pos = vend
            continue
        if not read_only and a == b'R' and b == b'W':
            if saw_rw:
                problems.append((pos, RW_REPEATED, "RW"))
            saw_rw = True
            if vend > limit:
                problems.append((pos, FIELD_OVERRUN, "RW"))
                break
            special_at = pos
            after_special = False
            pos = vend
            continue
        if not (_kw_char(a) and _kw_char(b)):
            problems.append((pos, INVALID_KEYWORD,
                             PyBytes_FromStringAndSize(<const char*>p + pos, 2).hex()))
            if vend > limit:
                problems.append((pos, FIELD_OVERRUN, None))
                break
            pos = vend
            continue
        if vend > limit:
            problems.append((pos, FIELD_OVERRUN, _keyword(a, b)))
            break
        if read_only and a == b'R' and b == b'W':
            problems.append((pos, RW_IN_VPD_R, "RW"))
        elif not read_only and a == b'R' and b == b'V':
            problems.append((pos, RV_IN_VPD_W, "RV"))
        elif _wrong_section(a, b, read_only):
            problems.append((pos, WRONG_SECTION, _keyword(a, b)))
        elif _is_text_keyword(a, b, read_only) and not _text_span(p + vstart, vlen, &s, &e):
            problems.append((pos, NOT_TEXT, _keyword(a, b)))
        _add(st, vstart, vlen, READ_ONLY_SECTION if read_only else READ_WRITE_SECTION, a, b)
        pos = vend
    if read_only and not saw_rv:
        problems.append((begin - 3, NO_RV, None))
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


cdef class Blob:
    """A walked VPD blob: its bytes, the entry table, the checksum state and the raw problems.

    ``raw_problems`` are ``(offset, code, detail)`` sorted by offset, then code. The ``_cache_*``
    slots are for subclasses that decode lazily (vpd.Vpd). The methods read the bytes through
    the table unchecked, so a table only ever comes from this module: `parse`, `from_fields`, or
    an unpickled blob whose table is checked against its bytes first (`_restore`).
    """

    cdef readonly bytes data
    cdef readonly bytes table
    cdef readonly int checksum_state
    cdef readonly list raw_problems
    cdef public object _cache_ro, _cache_rw, _cache_problems

    def __cinit__(self):
        # Set before anything can read them: ``Blob()`` or ``Blob.__new__(cls)`` is an empty blob,
        # never one whose bytes are None (the readers would take PyBytes_GET_SIZE of None).
        self.data = b""
        self.table = b""
        self.checksum_state = CHECKSUM_NONE
        self.raw_problems = []

    def __reduce__(self):
        """Pickled as its bytes and table, checked again when unpickled (`_restore`)."""
        return _restore, (type(self), self.data, self.table, self.checksum_state,
                          self.raw_problems, self._cache_problems)

    cdef const Entry* _last(self, int section, str keyword) except? NULL:
        """The last entry of ``section`` with ``keyword`` (ignored for NAME), or NULL."""
        cdef Py_ssize_t count = PyBytes_GET_SIZE(self.table) // sizeof(Entry), i
        cdef const Entry* entries = <const Entry*>PyBytes_AS_STRING(self.table)
        cdef Py_UCS4 a = 0, b = 0
        if section != NAME_SECTION:
            if len(keyword) != 2:
                return NULL
            a = keyword[0]
            b = keyword[1]
        for i in range(count - 1, -1, -1):
            if entries[i].section == section and (
                    section == NAME_SECTION or (entries[i].kw0 == a and entries[i].kw1 == b)):
                return &entries[i]
        return NULL

    cpdef object find(self, int section, str keyword=""):
        """Raw value of the last ``keyword`` field of ``section`` (or the name), or None."""
        cdef const Entry* e = self._last(section, keyword)
        if e == NULL:
            return None
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self.data) + e.offset, e.length)

    cpdef object find_text(self, int section, str keyword=""):
        """Normalised text of what `find` returns: None when absent or not printable ASCII."""
        cdef const Entry* e = self._last(section, keyword)
        cdef Py_ssize_t s, t
        if e == NULL:
            return None
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(self.data) + e.offset
        if not _text_span(p, e.length, &s, &t):
            return None
        return PyUnicode_DecodeASCII(<const char*>p + s, t - s, NULL)

    cpdef list fields(self, int section):
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

    cpdef dict mapping(self, int section):
        """``section`` as keyword -> raw: a repeat keeps its first position and its last value."""
        cdef Py_ssize_t count = PyBytes_GET_SIZE(self.table) // sizeof(Entry), i
        cdef const Entry* entries = <const Entry*>PyBytes_AS_STRING(self.table)
        cdef const char* p = PyBytes_AS_STRING(self.data)
        cdef dict out = {}
        for i in range(count):
            if entries[i].section == section:
                out[_keyword(entries[i].kw0, entries[i].kw1)] = PyBytes_FromStringAndSize(
                    p + entries[i].offset, entries[i].length)
        return out


cdef Blob _new_blob(type cls, bytes data, bytes table, int checksum, list problems):
    cdef Blob blob = Blob.__new__(cls)
    blob.data = data
    blob.table = table
    blob.checksum_state = checksum
    if len(problems) > 1:
        problems.sort(key=_problem_key)
    blob.raw_problems = problems
    return blob


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
    cdef Blob blob = _new_blob(cls, data, table, checksum, list(problems))
    blob._cache_problems = cached_problems
    return blob


def parse(data, type cls=Blob):
    """Walk VPD ``data`` (bytes, bytearray or memoryview) into a ``cls`` (a `Blob` type).

    Never raises for any content; TypeError for other types.
    """
    if not PyType_IsSubtype(cls, Blob):
        raise TypeError("cls must be a Blob type")
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
    cdef list problems = []
    if n == 0 or st.p[0] == 0x00 or st.p[0] == 0xFF:
        problems.append((0, NO_VPD, None))
        return _new_blob(cls, raw, b"", -1, problems)
    cdef Entry small[64]
    # Every entry takes at least 3 bytes of data, so n // 3 + 1 entries always suffice.
    cdef Py_ssize_t capacity = n // 3 + 1
    if capacity <= 64:
        st.entries = &small[0]
    else:
        st.entries = <Entry*>PyMem_Malloc(capacity * sizeof(Entry))
        if st.entries == NULL:
            raise MemoryError()
    try:
        _walk(&st, n, problems)
        table = PyBytes_FromStringAndSize(<const char*>st.entries, st.count * sizeof(Entry))
    finally:
        if st.entries != &small[0]:
            PyMem_Free(st.entries)
    return _new_blob(cls, raw, table, st.checksum, problems)


def from_fields(type cls, name_raw, read_only, read_write, int checksum, list problems):
    """A ``cls`` from decoded fields (other parsers with the same semantics; hand-built Vpd).

    The values are laid out in a fresh buffer with an entry table, so that the result reads
    exactly like a walked blob. Fields are ``(keyword, raw)`` with two-character keywords.
    """
    if not issubclass(cls, Blob):
        raise TypeError("cls must be a Blob type")
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
    return _new_blob(cls, b"".join(parts), bytes(entries), checksum, list(problems))


cdef int _walk(State* st, Py_ssize_t n, list problems) except -1:
    cdef const unsigned char* p = st.p
    cdef Py_ssize_t pos = 0, length, begin, end, limit, s, e
    cdef unsigned char tag
    cdef bint saw_end = False, saw_vpd_r = False
    while pos < n:
        tag = p[pos]
        if tag & 0x80:
            if n - pos < 3:
                problems.append((pos, RESOURCE_OVERRUN, f"0x{tag:02x}"))
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
            problems.append((pos, RESOURCE_OVERRUN, f"0x{tag:02x}"))
            limit = n
        if tag == 0x82:
            _add(st, begin, limit - begin, NAME_SECTION, 0, 0)
            if not _text_span(p + begin, limit - begin, &s, &e):
                problems.append((pos, BAD_NAME, None))
        elif tag == 0x90:
            saw_vpd_r = True
            _fields(st, begin, limit, True, problems)
        elif tag == 0x91:
            _fields(st, begin, limit, False, problems)
        elif tag & 0x80:
            problems.append((pos, UNKNOWN_RESOURCE, f"0x{tag:02x} (large item 0x{tag & 0x7F:02x})"))
        else:
            problems.append((pos, UNKNOWN_RESOURCE, f"0x{tag:02x} (small item 0x{(tag >> 3) & 0x0F:02x})"))
        pos = limit
    if not saw_end:
        problems.append((pos, NO_END_TAG, None))
    if not saw_vpd_r:
        problems.append((pos, NO_VPD_R, None))
    return 0
