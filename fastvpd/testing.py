"""Synthetic sysfs trees for tests, benchmarks and demos (public: test your agent with it).

`build_host` writes a directory that looks, to anything that reads sysfs, like the PCI part of
``/sys`` on a hypervisor with SmartNIC DPUs (the layout of docs/sysfs.md)::

    <root>/devices/pci0000:00/0000:00:01.0/0000:03:00.0/     one real directory per function
        vendor device subsystem_vendor subsystem_device class numa_node config [vpd]
        driver -> ../../../../bus/pci/drivers/mlx5_core
        net/enp3s0f0np0/address
        sriov_totalvfs sriov_numvfs [sriov_offset sriov_stride sriov_vf_device]   (PFs)
        virtfn0 -> ../0000:03:00.2 ...                                            (PFs)
        physfn -> ../0000:03:00.0                                                 (VFs)
    <root>/bus/pci/devices/0000:03:00.0 -> ../../../devices/pci0000:00/0000:00:01.0/0000:03:00.0
    <root>/bus/pci/drivers/mlx5_core/

VF addresses follow the SR-IOV routing-ID rule the kernel uses (``RID = bus << 8 | slot << 3 |
function``; VF RID = PF RID + ``sriov_offset`` + N x ``sriov_stride``), so a PF with many VFs
spills onto higher bus numbers, exactly as on real hosts. Everything is deterministic: the same
spec gives the same addresses, serials and MACs.

    host = dpu_host(tmp_path, cards=2, pfs_per_card=2, vfs_per_pf=8)
    inv = fastvpd.scan(host)               # a BuiltHost is os.PathLike (its root)
    assert inv["0000:03:00.2"].vf_num == host.functions["0000:03:00.2"].vf_num

The ``BuiltHost`` carries the facts a correct scanner must report (`BuiltHost.expected`);
`node_device_xml` describes a tree as libvirt's node-device driver would, for libvirt's test
driver (``test:///path/node.xml``).
The hostile mutators (`dangling_device_link`, `fifo_attribute`, ...) break a built tree the way
real hosts break and return a `Breakage` naming the function that should carry the problem. The
link liars (`virtfn_to_pf`, `virtfn_to_foreign_vf`, `duplicate_virtfn`, `virtfn_outside_tree`)
make a PF's ``virtfn<N>`` name the wrong function while every file still looks sound: a scanner
that trusts link names reports a wrong PF, VF or ``vf_num`` for them without a word.

The parts live in private modules by what they are for: the specs and the builder
(``_testing_hosts``), the mutators (``_testing_mutators``) and the libvirt node-device XML
(``_testing_nodedev``). Import them from here.
"""

from __future__ import annotations

from ._testing_hosts import (FACT_KEYS, BuiltCard, BuiltFunction, BuiltHost, DpuSpec, HostSpec,
                             NicSpec, OtherSpec, address_of_rid, build_host, dpu_host, dpu_serial,
                             rid, vf_address)
from ._testing_mutators import (Breakage, add_netdev, dangling_device_link, dangling_virtfn_link,
                                directory_attribute, duplicate_virtfn, empty_attribute,
                                fifo_attribute, garbage_attribute, long_name_entry, non_pci_entry,
                                remove_attribute, replace_card, set_attribute, set_link, set_mac,
                                set_vf_count, unplug, unreadable_attribute, virtfn_outside_tree,
                                virtfn_to_foreign_vf, virtfn_to_pf)
from ._testing_nodedev import node_device_xml, nodedev_name, write_node_device_xml

__all__ = [
    "DpuSpec",
    "NicSpec",
    "OtherSpec",
    "HostSpec",
    "BuiltFunction",
    "BuiltCard",
    "BuiltHost",
    "Breakage",
    "FACT_KEYS",
    "build_host",
    "dpu_host",
    "dpu_serial",
    "vf_address",
    "rid",
    "address_of_rid",
    # mutators
    "dangling_device_link",
    "dangling_virtfn_link",
    "fifo_attribute",
    "directory_attribute",
    "empty_attribute",
    "garbage_attribute",
    "unreadable_attribute",
    "remove_attribute",
    "non_pci_entry",
    "long_name_entry",
    "set_attribute",
    "set_link",
    "add_netdev",
    "virtfn_to_pf",
    "virtfn_to_foreign_vf",
    "duplicate_virtfn",
    "virtfn_outside_tree",
    # a host that changes
    "set_vf_count",
    "unplug",
    "set_mac",
    "replace_card",
    # libvirt node devices
    "node_device_xml",
    "write_node_device_xml",
    "nodedev_name",
]
