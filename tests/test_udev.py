"""`fastvpd.udev`: PCI functions through the real libudev (pyudev), and the event mapping.

`enumerate_pci` is checked against ``fastvpd.scan("/sys")`` on this machine's real /sys;
`event_addresses` on constructed events, on the real paths of synthetic trees, and on the net
devices libudev lists here.
"""

from __future__ import annotations

import os

from hypothesis import given, settings

import fastvpd
from fastvpd import testing
from fastvpd.testing import HostSpec
from fastvpd.udev import UdevPciFunction, enumerate_pci, event_addresses
from tests.host_strategies import host_specs
from tests.support import missing, require, scratch_dir

pyudev = require("pyudev", "pyudev")
try:
    pyudev.Context()
except ImportError as e:
    missing(f"libudev (Debian's libudev1) cannot be loaded by pyudev ({e})")


# -- enumerate_pci on this machine -----------------------------------------------------------------

def test_enumerate_pci_agrees_with_the_scan_of_the_real_sys() -> None:
    functions = enumerate_pci()
    scan = fastvpd.scan("/sys", read_vpd=False)
    assert len(functions) == len(scan) > 0
    assert [f.address for f in functions] == list(scan)
    for f in functions:
        dev = scan[f.address]
        assert (f.vendor_id, f.product_id, f.class_code, f.driver) == (
            dev.vendor_id, dev.product_id, dev.class_code, dev.driver), f.address
        assert f.properties["PCI_SLOT_NAME"] == f.address
        assert f.device_path == f.properties["DEVPATH"]
        assert os.path.realpath(f"/sys/bus/pci/devices/{f.address}") == "/sys" + f.device_path


def test_enumerate_pci_takes_a_context() -> None:
    context = pyudev.Context()
    assert enumerate_pci(context) == enumerate_pci()
    assert all(isinstance(f, UdevPciFunction) for f in enumerate_pci(context))


# -- event_addresses -------------------------------------------------------------------------------

PF = "/devices/pci0000:00/0000:00:01.0/0000:82:00.0"
VF = "/devices/pci0000:00/0000:00:01.0/0000:82:00.3"


def test_a_pci_event_concerns_its_function() -> None:
    for action in ("add", "remove", "change", "bind", "unbind", None):
        assert event_addresses(action, "pci", VF) == {"0000:82:00.3"}
    assert event_addresses("add", "pci", "/sys" + VF) == {"0000:82:00.3"}
    assert event_addresses("add", "pci", VF.upper().replace("/DEVICES/PCI", "/devices/pci")) == {
        "0000:82:00.3"}  # written in upper case: still the canonical address
    # the path ends in no address: the kernel's PCI_SLOT_NAME says which function it is
    assert event_addresses("change", "pci", "/devices/odd",
                           {"PCI_SLOT_NAME": "0000:82:00.4"}) == {"0000:82:00.4"}
    assert event_addresses("change", "pci", "/devices/odd", {"PCI_SLOT_NAME": "junk"}) == set()
    assert event_addresses("add", "pci", "") == set()


def test_a_net_event_concerns_the_function_that_owns_the_netdev() -> None:
    assert event_addresses("add", "net", PF + "/net/ens1f0") == {"0000:82:00.0"}
    assert event_addresses("remove", "net", "/sys" + VF + "/net/ens1f0v1") == {"0000:82:00.3"}
    # netdevs that belong to no PCI function's net/: nothing fastvpd reports changed
    for path in ("/devices/virtual/net/lo", "/devices/virtual/net/br0",
                 "/devices/pci0000:00/0000:00:03.0/virtio2/net/eth0",
                 "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/net/usb0",
                 PF + "/net", "net/eth0"):
        assert event_addresses("add", "net", path) == set(), path


def test_a_rename_concerns_the_old_and_the_new_owner() -> None:
    moved = event_addresses("move", "net", PF + "/net/ens1f0np0",
                            {"DEVPATH_OLD": PF + "/net/eth0", "INTERFACE": "ens1f0np0"})
    assert moved == {"0000:82:00.0"}
    odd = event_addresses("move", "net", PF + "/net/a", {"DEVPATH_OLD": VF + "/net/b"})
    assert odd == {"0000:82:00.0", "0000:82:00.3"}
    # DEVPATH_OLD means something only for a move
    assert event_addresses("add", "net", PF + "/net/a", {"DEVPATH_OLD": VF + "/net/b"}) == {
        "0000:82:00.0"}


def test_other_subsystems_concern_nothing() -> None:
    for subsystem in ("block", "usb", "pci_bus", "", None):
        assert event_addresses("add", subsystem, VF) == set()


@settings(deadline=None)
@given(spec=host_specs)
def test_the_real_paths_of_every_function_and_netdev_map_to_their_function(spec: HostSpec,
                                                                           ) -> None:
    """The device paths a kernel would send for the functions and netdevs of a synthetic tree
    (its layout is sysfs's, VFs spilling onto higher buses included)."""
    with scratch_dir("udev") as d:
        host = testing.build_host(os.path.join(d, "sys"), spec)
        for address, f in host.functions.items():
            devpath = f.path[len(host.root):]
            assert devpath.startswith("/devices/pci")
            assert event_addresses("add", "pci", devpath) == {address}
            for ifname in f.netdevs:
                link = os.path.join(host.root, "class", "net", ifname)
                net_path = os.path.realpath(link)[len(host.root):]
                assert event_addresses("add", "net", net_path) == {address}


def test_the_net_devices_libudev_lists_here_map_as_the_scan_owns_them() -> None:
    scan = fastvpd.scan("/sys", read_vpd=False)
    owners = {name: dev.address for dev in scan.values() for name in dev.netdevs}
    nets = list(pyudev.Context().list_devices(subsystem="net"))
    assert nets  # lo at least
    for device in nets:
        want = {owners[device.sys_name]} if device.sys_name in owners else set()
        got = event_addresses("add", "net", device.device_path, dict(device.properties))
        assert got == want, device.device_path
    for f in enumerate_pci():
        assert event_addresses("change", "pci", f.device_path, f.properties) == {f.address}

