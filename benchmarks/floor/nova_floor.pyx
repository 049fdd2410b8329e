# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The floor of `Inventory.to_nova()`: Nova's device dicts built from precomputed strings.

Everything that does not have to be made per VF is made before the call (`benchmarks/floor`
turns the C floor's result into `runs`): the address and ``dev_id`` texts, one template dict per
PF (with and without ``parent_ifname``), the PF MAC, the serial and the VF numbers as int objects.
Per VF the builder makes only what the output must hold of its own: a copy of the template, the
address and ``dev_id`` strings, and the ``capabilities``, ``sriov`` and ``vpd`` dicts (no two
dicts share a mutable object: a caller may change one). A template holds only strings, ints and
None, so its copy starts untracked by the cyclic GC, and so do ``sriov`` and ``vpd``; the VF dict
and its ``capabilities`` are untracked once built, as fastvpd's own builder leaves them (they can
be in no cycle as built: docs/nova-contract.md, "Memory and the garbage collector"), so that the
floor is held to the same rule as what it is the floor of.
"""

from cpython.dict cimport PyDict_Copy, PyDict_SetItem
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_Substring

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)


def build(list runs, Py_ssize_t n_rows):
    """The dicts of every row, in the order of `runs`.

    A run is ``(0, template, caps)`` for a PF or plain function (``caps`` is None or its
    ``capabilities`` dict, copied two levels deep) or ``(1, addresses, start, width, dev_ids,
    dev_start, dev_width, count, plain, with_ifname, netdev, vf_nums, pf_mac, serial)`` for
    `count` VFs of one PF: the address of VF ``j`` is
    ``addresses[start + j * (width + 1):][:width]`` (the ``dev_id``s likewise), ``netdev[j]``
    says whether it owns a netdev (then its dict is a copy of `with_ifname`), ``vf_nums[j]`` is
    its number.
    """
    cdef list out = PyList_New(n_rows)
    cdef Py_ssize_t row = 0, j, count, a, w, da, dw
    cdef tuple run
    cdef dict d, plain, with_ifname, caps, sriov_t, vpd_t, sriov, vpd, c
    cdef str addresses, dev_ids
    cdef const unsigned char[:] netdev
    cdef tuple vf_nums
    cdef object pf_mac, serial, v
    for run in runs:
        if run[0] == 0:
            d = PyDict_Copy(run[1])
            c = run[2]
            if c is not None:
                caps = PyDict_Copy(c)
                for k, v in c.items():
                    PyDict_SetItem(caps, k, PyDict_Copy(v))
                PyDict_SetItem(d, "capabilities", caps)
            Py_INCREF(d)
            PyList_SET_ITEM(out, row, d)
            row += 1
            continue
        (_, addresses, a, w, dev_ids, da, dw, count, plain, with_ifname, netdev, vf_nums, pf_mac,
         serial) = run
        sriov_t = {"pf_mac_address": pf_mac, "vf_num": 0} if pf_mac is not None else None
        vpd_t = {"card_serial_number": serial} if serial else None
        for j in range(count):
            d = PyDict_Copy(with_ifname if netdev[j] else plain)
            PyDict_SetItem(d, "dev_id", PyUnicode_Substring(dev_ids, da, da + dw))
            PyDict_SetItem(d, "address", PyUnicode_Substring(addresses, a, a + w))
            a += w + 1
            da += dw + 1
            if sriov_t is not None:
                sriov = PyDict_Copy(sriov_t)
                PyDict_SetItem(sriov, "vf_num", vf_nums[j])
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
            PyObject_GC_UnTrack(<void*>d)
            Py_INCREF(d)
            PyList_SET_ITEM(out, row, d)
            row += 1
    if row != n_rows:
        raise ValueError(f"{row} rows built, {n_rows} expected")
    return out
