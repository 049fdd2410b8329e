# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""PCI VPD resource walker: bytes in, flat tuples out.

Every read is checked against the end of the data by hand (bounds checking is off for speed), and
no Python object is touched per byte. Policy (messages, strictness, mappings) lives in vpd.py.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeASCII

cdef extern from "Python.h":
    bint PyBytes_CheckExact(object)

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

cdef enum:
    C_MAX = 32768

# Checksum states returned in the result tuple.
CHECKSUM_NONE = -1
CHECKSUM_BAD_STATE = 0
CHECKSUM_OK = 1

# Interned keyword strings, so that "SN" is one object however many blobs are parsed.
cdef list _keywords = [None] * 65536


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
    cdef Py_ssize_t i = 0, j
    while i < n and p[i] != 0:
        i += 1
    j = i
    i = 0
    while i < j and _is_space(p[i]):
        i += 1
    while j > i and _is_space(p[j - 1]):
        j -= 1
    start[0] = i
    stop[0] = j
    cdef Py_ssize_t k
    for k in range(i, j):
        if p[k] < 0x20 or p[k] > 0x7E:
            return False
    return True


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
    """Normalised text of a raw value (spec/vpd.md), or None when it is not printable ASCII."""
    if not PyBytes_CheckExact(raw):
        raw = bytes(raw)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t start, stop
    if not _text_span(p, PyBytes_GET_SIZE(raw), &start, &stop):
        return None
    return PyUnicode_DecodeASCII(<const char*>p + start, stop - start, NULL)


cdef _fields(const unsigned char* p, Py_ssize_t begin, Py_ssize_t limit, bint read_only,
             unsigned int* running_sum, Py_ssize_t* sum_pos, list out, list problems,
             int* checksum):
    """Walk the keyword fields of one VPD-R (read_only) or VPD-W resource in p[begin:limit]."""
    cdef Py_ssize_t pos = begin, vstart, vlen, vend, s, e
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
                checksum[0] = 0
            elif vstart >= limit:
                checksum[0] = 0
            else:
                # Sum every byte from where the last sum stopped through the checksum byte.
                while sum_pos[0] <= vstart:
                    running_sum[0] += p[sum_pos[0]]
                    sum_pos[0] += 1
                if running_sum[0] & 0xFF:
                    problems.append((vstart, CHECKSUM_BAD, "RV"))
                    checksum[0] = 0
                elif checksum[0] != 0:
                    checksum[0] = 1
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
            problems.append((pos, INVALID_KEYWORD, PyBytes_FromStringAndSize(<const char*>p + pos, 2).hex()))
            if vend > limit:
                problems.append((pos, FIELD_OVERRUN, None))
                break
            pos = vend
            continue
        kw = _keyword(a, b)
        if vend > limit:
            problems.append((pos, FIELD_OVERRUN, kw))
            break
        if read_only and a == b'R' and b == b'W':
            problems.append((pos, RW_IN_VPD_R, kw))
        elif not read_only and a == b'R' and b == b'V':
            problems.append((pos, RV_IN_VPD_W, kw))
        elif _wrong_section(a, b, read_only):
            problems.append((pos, WRONG_SECTION, kw))
        elif _is_text_keyword(a, b, read_only) and not _text_span(p + vstart, vlen, &s, &e):
            problems.append((pos, NOT_TEXT, kw))
        out.append((kw, PyBytes_FromStringAndSize(<const char*>p + vstart, vlen)))
        pos = vend
    if read_only and not saw_rv:
        problems.append((begin - 3, NO_RV, None))


def parse(data):
    """Walk VPD ``data`` (bytes-like, C-contiguous).

    Returns ``(name_raw, read_only, read_write, checksum, problems)``: the raw bytes of the last
    identifier string (or None); ``[(keyword, raw)]`` for VPD-R and VPD-W in blob order, repeats
    included; a checksum state (CHECKSUM_NONE/BAD/OK); ``[(offset, code, detail)]`` in the order
    found. Never raises for any content.
    """
    cdef const unsigned char[::1] view
    cdef const unsigned char* p
    cdef Py_ssize_t n
    if PyBytes_CheckExact(data):
        p = <const unsigned char*>PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        if isinstance(data, memoryview) and not data.c_contiguous:
            data = data.tobytes()
        view = data.cast("B") if isinstance(data, memoryview) else data
        n = view.shape[0]
        p = &view[0] if n else NULL
    else:
        raise TypeError(f"VPD data must be bytes, bytearray or memoryview, not {type(data).__name__}")
    return _parse(p, n)


cdef tuple _parse(const unsigned char* p, Py_ssize_t n):
    cdef list problems = []
    cdef list read_only = []
    cdef list read_write = []
    name_raw = None
    cdef int checksum = -1
    cdef unsigned int running_sum = 0
    cdef Py_ssize_t sum_pos = 0
    cdef Py_ssize_t pos = 0, length, begin, end, limit
    cdef unsigned char tag, item
    cdef bint saw_end = False, saw_vpd_r = False
    if n > C_MAX:
        n = C_MAX
    if n == 0 or p[0] == 0x00 or p[0] == 0xFF:
        problems.append((0, NO_VPD, None))
        return (None, read_only, read_write, checksum, problems)
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
            item = (tag >> 3) & 0x0F
            if item == 0x0F:
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
            name_raw = PyBytes_FromStringAndSize(<const char*>p + begin, limit - begin)
        elif tag == 0x90:
            saw_vpd_r = True
            _fields(p, begin, limit, True, &running_sum, &sum_pos, read_only, problems, &checksum)
        elif tag == 0x91:
            _fields(p, begin, limit, False, &running_sum, &sum_pos, read_write, problems, &checksum)
        else:
            problems.append((pos, UNKNOWN_RESOURCE, f"0x{tag:02x}"))
        if tag == 0x82:
            if not _name_ok(p + begin, limit - begin):
                problems.append((pos, BAD_NAME, None))
        pos = limit
    if not saw_end:
        problems.append((pos, NO_END_TAG, None))
    if not saw_vpd_r:
        problems.append((pos, NO_VPD_R, None))
    return (name_raw, read_only, read_write, checksum, problems)


cdef inline bint _name_ok(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t s, e
    return _text_span(p, n, &s, &e)
