# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Nova's device dicts of a whole inventory, built in one C loop (`Inventory.to_nova`).

A host's VFs are nearly all alike and come PF by PF: each is one copy of its PF's template dict,
its address and ``dev_id`` (made from the inventory's one address text, no per-VF Python string
work), and its capabilities. Everything else about the dicts (the keys, their order, what a
template holds) is the model's: `build` calls back into it for the templates and for the few
rows that are not such VFs (PFs, plain functions, VFs read one by one). Every dict, and every
dict in it, is new: callers may change what they get.

A VF's dicts hold only strings, ints, None and each other, so no reference cycle can run through
them as built: the VF dict and its ``capabilities`` are left untracked by the cyclic GC, as
CPython itself leaves a dict of strings and ints (``sriov`` and ``vpd`` are). Otherwise every
scan would hand the collector two containers per VF to traverse, again and again, in an agent
whose heap is large (docs/nova-contract.md, "Memory and the garbage collector"). A dict tracks
itself again as soon as a container is stored in it.
"""

from cpython.dict cimport PyDict_Copy, PyDict_SetItem
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_Substring
from libc.string cimport memcpy

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)
    int PyObject_GC_IsTracked(object op)

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)
    int PyUnicode_KIND(object o)
    int PyUnicode_1BYTE_KIND
    bint PyUnicode_IS_ASCII(object o)


# The VF numbers as int objects, made once per process and shared by every dict (ints are
# immutable); to_nova() holds the GIL throughout, so appending here needs no lock.
cdef list _VF_NUMS = []


cdef inline object _dev_id(str text, Py_ssize_t start, Py_ssize_t end):
    """``"pci_" + address`` with ':' and '.' as '_', from the ASCII address text."""
    cdef Py_ssize_t n = end - start, k
    cdef object out = PyUnicode_New(n + 4, 127)
    cdef unsigned char* dst = <unsigned char*>PyUnicode_DATA(out)
    cdef const unsigned char* src = <const unsigned char*>PyUnicode_DATA(text) + start
    cdef unsigned char ch
    dst[0] = 112  # "pci_"
    dst[1] = 99
    dst[2] = 105
    dst[3] = 95
    if n >= 12 and src[n - 8] == 58 and src[n - 5] == 58 and src[n - 2] == 46:
        # canonical "<domain>:BB:SS.F" (the hex domain holds no ':' or '.'): three bytes change
        memcpy(dst + 4, src, n)
        dst[4 + n - 8] = 95
        dst[4 + n - 5] = 95
        dst[4 + n - 2] = 95
        return out
    for k in range(n):
        ch = src[k]
        dst[4 + k] = 95 if ch == 58 or ch == 46 else ch
    return out


def build(str text, const int[:] offsets, const int[:] vendor, const int[:] device,
          const int[:] numa, const int[:] kind, const int[:] parent, const int[:] vf_num,
          const int[:] flags, int netdev_flag, own_vpd, template_of, row_dict):
    """The dicts of every row in row order, rows without vendor or device ID left out.

    ``text``/``offsets``: the addresses (row ``i`` is ``text[offsets[i]:offsets[i + 1] - 1]``,
    ASCII). ``template_of(pf, vendor, device, numa)`` gives a PF's ``(dict, dict with
    parent_ifname, vendor, device, numa, pf_mac, serial)``; ``row_dict(i)`` the dict of any other
    row; ``own_vpd`` the rows with their own VPD (their serial is theirs, not the PF's).
    """
    if not PyUnicode_IS_ASCII(text):
        raise ValueError("addresses are ASCII")
    cdef Py_ssize_t n = kind.shape[0], i
    cdef int last = -2, p, v, t_vendor = -1, t_device = -1, t_numa = -1
    cdef Py_ssize_t rows = 0, row = 0
    for i in range(n):
        if vendor[i] >= 0 and device[i] >= 0:
            rows += 1
    cdef list out = PyList_New(rows)  # sized once: no over-allocation left in what is returned
    cdef bint any_own = len(own_vpd) > 0  # else no per-VF lookup (and no int object) at all
    cdef dict shared = {}
    cdef dict template = None, template_net = None, base, d, caps, sriov
    cdef dict sriov_t = None, vpd_t = None
    cdef object pf_mac = None, serial = None, address, entry
    cdef list ints = _VF_NUMS
    for i in range(n):
        p = parent[i]
        if p != last and kind[i] == 2 and p >= 0 and vendor[i] >= 0 and device[i] >= 0:
            entry = shared.get(p)
            if entry is None:
                entry = template_of(p, vendor[i], device[i], numa[i])
                shared[p] = entry
            template, template_net, t_vendor, t_device, t_numa, pf_mac, serial = entry
            # each VF's sriov and vpd dicts are copies of these (a copy clones the key table)
            sriov_t = {"pf_mac_address": pf_mac, "vf_num": None} if pf_mac is not None else None
            vpd_t = {"card_serial_number": serial} if serial else None
            last = p
        v = vf_num[i]
        if (p == last and vendor[i] == t_vendor and device[i] == t_device and numa[i] == t_numa
                and v >= 0 and not (any_own and i in own_vpd)):
            base = template_net if flags[i] & netdev_flag else template
            d = PyDict_Copy(base)
            address = PyUnicode_Substring(text, offsets[i], offsets[i + 1] - 1)
            PyDict_SetItem(d, "dev_id", _dev_id(text, offsets[i], offsets[i + 1] - 1))
            PyDict_SetItem(d, "address", address)
            if sriov_t is not None:
                while len(ints) <= v:  # one int object per VF number, shared (ints are immutable)
                    ints.append(len(ints))  # at most 2**16 (sriov_totalvfs is 16 bits)
                sriov = PyDict_Copy(sriov_t)
                PyDict_SetItem(sriov, "vf_num", ints[v])
                if vpd_t is not None:
                    caps = {"sriov": sriov, "vpd": PyDict_Copy(vpd_t)}
                else:
                    caps = {"sriov": sriov}
                PyObject_GC_UnTrack(<void*>caps)
                PyDict_SetItem(d, "capabilities", caps)
            elif vpd_t is not None:
                caps = {"vpd": PyDict_Copy(vpd_t)}
                PyObject_GC_UnTrack(<void*>caps)
                PyDict_SetItem(d, "capabilities", caps)
            if not PyObject_GC_IsTracked(base):  # the template holds no container
                PyObject_GC_UnTrack(<void*>d)
            Py_INCREF(d)  # PyList_SET_ITEM steals a reference into a slot that held none
            PyList_SET_ITEM(out, row, d)
            row += 1
        elif vendor[i] >= 0 and device[i] >= 0:
            d = row_dict(i)
            Py_INCREF(d)
            PyList_SET_ITEM(out, row, d)
            row += 1
    if row != rows:  # a slot left NULL would crash the caller: never return such a list
        raise AssertionError(f"to_nova: {row} rows built, {rows} counted")
    return out
