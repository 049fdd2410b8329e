"""libvirt node-device XML for a sysfs tree: what libvirt's node-device driver would report.

Part of `fastvpd.testing` (re-exported there). libvirt's test driver (``test:///path/node.xml``,
no daemon) serves these documents through the real libvirt API, so Nova's own libvirt driver,
or `fastvpd.libvirt`, can be run against the same host a synthetic sysfs tree describes.

The tree is read the way libvirt reads sysfs: every entry of ``bus/pci/devices`` becomes a
``pci_DDDD_BB_SS_F`` device with its IDs, class, NUMA node and driver; ``physfn`` gives the
``phys_function`` capability, the ``virtfn<N>`` links (and ``sriov_totalvfs``) the
``virt_functions`` one, from ``virtfn0`` up to the first missing or dangling link as libvirt
reads them; each ``net/<ifname>`` becomes a ``net_<ifname>_<mac>`` device whose parent
is its function. The ``vpd`` capability carries the text fields libvirt formats (name, read-only
``EC MN PN SN Vx``, read-write ``YA Vx Yx``), and only for a blob that libvirt's strict parser
accepts: a blob ``parse_vpd(strict=True)`` rejects is left out whole, as libvirt drops it
(docs/nova-contract.md, "VPD acceptance"). NUMA node -1 gives no ``<numa>`` element, as in libvirt.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

from .errors import VpdFormatError
from .vpd import Vpd, parse_vpd
from .vpd import text as vpd_text

__all__ = ["node_device_xml", "write_node_device_xml", "nodedev_name"]

_ADDRESS = re.compile(r"([0-9a-f]{4,}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])\Z")


def nodedev_name(address: str) -> str:
    """libvirt's name of a PCI function: ``pci_0000_82_00_3``."""
    return "pci_" + address.replace(":", "_").replace(".", "_")


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode("ascii", "replace").strip()
    except OSError:
        return None


def _hex(path: str) -> int | None:
    text = _read(path)
    try:
        return int(text, 16) if text else None
    except ValueError:
        return None


def _link_base(path: str) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _address_element(parent: ET.Element, address: str) -> None:
    m = _ADDRESS.match(address)
    if m is None:
        return
    domain, bus, slot, function = m.groups()
    ET.SubElement(parent, "address", domain=f"0x{domain}", bus=f"0x{bus}", slot=f"0x{slot}",
                  function=f"0x{function}")


def _text(parent: ET.Element, tag: str, value: str | None, **attrs: str) -> None:
    if value:  # libvirt leaves out what it does not have; an empty SN is no serial
        ET.SubElement(parent, tag, attrs).text = value


def _vpd_capability(parent: ET.Element, vpd: Vpd) -> None:
    cap = ET.SubElement(parent, "capability", type="vpd")
    _text(cap, "name", vpd.name)
    ro = ET.Element("fields", access="readonly")
    _text(ro, "change_level", vpd.change_level)
    _text(ro, "manufacture_id", vpd.manufacture_id)
    _text(ro, "part_number", vpd.part_number)
    _text(ro, "serial_number", vpd.serial_number)
    for index, value in vpd.vendor_fields.items():
        _text(ro, "vendor_field", value, index=index)
    if len(ro):
        cap.append(ro)
    rw = ET.Element("fields", access="readwrite")
    _text(rw, "asset_tag", vpd.asset_tag)
    for kw, raw in vpd.read_write.items():
        if kw[0] == "V":
            _text(rw, "vendor_field", vpd_text(raw), index=kw[1])
    for index, value in vpd.system_fields.items():
        _text(rw, "system_field", value, index=index)
    if len(rw):
        cap.append(rw)


def _strict_vpd(path: str) -> Vpd | None:
    try:
        with open(path, "rb") as f:
            data = f.read(32768)
    except OSError:
        return None
    try:
        return parse_vpd(data, strict=True)
    except VpdFormatError:
        return None


def _virtfn_targets(base: str) -> list[str]:
    """The VFs a PF lists, as libvirt finds them: ``virtfn0``, ``virtfn1``, ... up to the first
    link that does not resolve (libvirt's virPCIGetVirtualFunctions stops there), so the
    position of a VF in the list is its VF number."""
    targets: list[str] = []
    while True:
        link = os.path.join(base, f"virtfn{len(targets)}")
        target = _link_base(link)
        if target is None or not os.path.exists(link):
            return targets
        targets.append(target)


def _pci_device(node: ET.Element, root: str, address: str, nets: list[ET.Element]) -> None:
    base = os.path.join(root, "bus", "pci", "devices", address)
    if not os.path.isdir(base):
        return
    vendor, device = _hex(os.path.join(base, "vendor")), _hex(os.path.join(base, "device"))
    if vendor is None or device is None:
        return  # libvirt cannot describe a function without IDs either
    name = nodedev_name(address)
    dev = ET.SubElement(node, "device")
    ET.SubElement(dev, "name").text = name
    ET.SubElement(dev, "path").text = os.path.realpath(base)
    ET.SubElement(dev, "parent").text = "computer"
    driver = _link_base(os.path.join(base, "driver"))
    if driver:
        ET.SubElement(ET.SubElement(dev, "driver"), "name").text = driver
    cap = ET.SubElement(dev, "capability", type="pci")
    klass = _hex(os.path.join(base, "class"))
    if klass is not None:
        ET.SubElement(cap, "class").text = f"0x{klass:06x}"
    m = _ADDRESS.match(address)
    assert m is not None
    for tag, field in zip(("domain", "bus", "slot", "function"), m.groups()):
        ET.SubElement(cap, tag).text = str(int(field, 16))  # libvirt writes these in decimal
    ET.SubElement(cap, "product", id=f"0x{device:04x}")
    ET.SubElement(cap, "vendor", id=f"0x{vendor:04x}")
    physfn = _link_base(os.path.join(base, "physfn"))
    if physfn:
        _address_element(ET.SubElement(cap, "capability", type="phys_function"), physfn)
    try:
        names = os.listdir(base)
    except OSError:
        names = []
    virtfns = _virtfn_targets(base)
    total = _read(os.path.join(base, "sriov_totalvfs"))
    total_vfs = int(total) if total and total.isdigit() else 0
    if total_vfs > 0 or virtfns:
        vfs = ET.SubElement(cap, "capability", type="virt_functions")
        if total_vfs:
            vfs.set("maxCount", str(total_vfs))
        for target in virtfns:
            _address_element(vfs, target)
    if "vpd" in names:
        vpd = _strict_vpd(os.path.join(base, "vpd"))
        if vpd is not None:
            _vpd_capability(cap, vpd)
    numa = _read(os.path.join(base, "numa_node"))
    if numa and numa.isdigit():
        ET.SubElement(cap, "numa", node=numa)
    if "net" in names:
        try:
            ifnames = sorted(os.listdir(os.path.join(base, "net")))
        except OSError:
            ifnames = []
        for ifname in ifnames:
            mac = _read(os.path.join(base, "net", ifname, "address"))
            net = ET.Element("device")
            ET.SubElement(net, "name").text = f"net_{ifname}_{(mac or '00:00:00:00:00:00').replace(':', '_')}"
            ET.SubElement(net, "parent").text = name
            netcap = ET.SubElement(net, "capability", type="net")
            ET.SubElement(netcap, "interface").text = ifname
            if mac:
                ET.SubElement(netcap, "address").text = mac
            ET.SubElement(netcap, "capability", type="80203")
            nets.append(net)


def node_device_xml(sysfs: str | os.PathLike[str]) -> str:
    """The ``<node>`` document libvirt's test driver loads for the host under ``sysfs``."""
    root = os.fspath(sysfs)
    node = ET.Element("node")
    computer = ET.SubElement(node, "device")
    ET.SubElement(computer, "name").text = "computer"
    system = ET.SubElement(computer, "capability", type="system")
    hardware = ET.SubElement(system, "hardware")
    for tag, value in (("vendor", "fastvpd"), ("version", "1"), ("serial", "0"),
                       ("uuid", "00000000-0000-4000-8000-000000000000")):
        ET.SubElement(hardware, tag).text = value
    firmware = ET.SubElement(system, "firmware")
    for tag, value in (("vendor", "fastvpd"), ("version", "1"), ("release_date", "01/01/2026")):
        ET.SubElement(firmware, tag).text = value
    nets: list[ET.Element] = []
    devices = os.path.join(root, "bus", "pci", "devices")
    for address in sorted(os.listdir(devices)):
        if _ADDRESS.match(address):
            _pci_device(node, root, address, nets)
    node.extend(nets)
    ET.indent(node)
    return ET.tostring(node, encoding="unicode") + "\n"


def write_node_device_xml(sysfs: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """Write `node_device_xml` to ``path``; returns the ``test:///...`` URI that serves it."""
    text = node_device_xml(sysfs)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return "test://" + os.path.abspath(os.fspath(path))
