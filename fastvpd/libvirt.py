"""libvirt's node devices as a second source of the same `Inventory` (docs/libvirt.md).

`inventory_from_libvirt(conn)` reads what Nova's libvirt driver reads: one ``listAllDevices``
with the PCI and net capability flags, then one ``XMLDesc`` per device, and makes an
`Inventory` of it, so that ``to_nova()``, `fastvpd.binding_profile` and the device specs of
`fastvpd.profile` work on it unchanged. libvirt-python is imported only when the function is
called: the rest of fastvpd works without it.

What libvirt's XML does not say is derived as docs/libvirt.md explains: a VF's number is its
position in its PF's ``virt_functions`` list (libvirt lists ``virtfn0``, ``virtfn1``, ... in
order, up to the first missing link), its PF MAC is the MAC of the PF's first net device in name
order, and its VPD blob is rebuilt from libvirt's text fields with `fastvpd.build_vpd`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ._walk import shown
from .errors import LibvirtError
from .model import TYPE_PCI, TYPE_PF, TYPE_VF, DeviceFacts, Inventory, PciAddress
from .vpd import MAX_VPD_SIZE, build_vpd

__all__ = ["inventory_from_libvirt"]


class NodeDevice(Protocol):
    """What is used of a ``libvirt.virNodeDevice``."""

    def name(self) -> str: ...

    def XMLDesc(self, flags: int = 0) -> str: ...  # noqa: N802 (libvirt's name)


class Connection(Protocol):
    """What is used of a ``libvirt.virConnect``."""

    def listAllDevices(self, flags: int = 0) -> Sequence[NodeDevice]: ...  # noqa: N802


def _libvirt() -> Any:
    try:
        import libvirt  # type: ignore[import-untyped]  # libvirt-python ships no types
    except ImportError as e:
        raise ImportError("fastvpd.libvirt needs libvirt-python (pip install libvirt-python; "
                          "it builds against libvirt's development files, Debian's "
                          f"libvirt-dev): {e}") from e
    return libvirt


def inventory_from_libvirt(conn: Connection) -> Inventory:
    """The PCI functions and their netdevs that ``conn`` (a ``libvirt.virConnect``) describes.

    One ``listAllDevices(PCI_DEV | NET)`` and one ``XMLDesc`` per device, as Nova does. A device
    that vanished between the two (``XMLDesc`` raises ``libvirt.libvirtError``) or whose XML is
    malformed is left out and named in ``Inventory.problems``; a field that cannot be read
    becomes a problem of its device. ``PciDevice.vpd`` is rebuilt from libvirt's text fields
    with `fastvpd.build_vpd` (name, read-only ``EC MN PN SN Vx``, read-write ``YA Vx Yx``): its
    text is libvirt's, its bytes and field order are not the card's. libvirt drops a blob its
    strict parser rejects, and reads every VF's VPD, so ``to_nova()`` equals that of
    ``fastvpd.scan(vf_vpd=True, strict_vpd=True)`` of the same host. Raises `LibvirtError` only
    when the devices cannot be listed at all. libvirt's own error handler, which prints each
    error on stderr by default, is the application's to set (``libvirt.registerErrorHandler``).
    """
    libvirt = _libvirt()
    flags = (libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV
             | libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_NET)
    try:
        listed = conn.listAllDevices(flags)
    except libvirt.libvirtError as e:
        raise LibvirtError(f"cannot list the node devices: {_message(e)}") from e
    functions: dict[str, _Function] = {}
    nets: list[_Net] = []
    problems: list[str] = []
    for device in listed:
        name = device.name()
        try:
            xml = device.XMLDesc(0)
        except libvirt.libvirtError as e:
            problems.append(f"node device {shown(name)}: gone since the listing, left out "
                            f"(XMLDesc: {_message(e)})")
            continue
        parsed = _parse(name, xml)
        if isinstance(parsed, str):
            problems.append(f"node device {shown(name)}: {parsed}; left out")
        elif isinstance(parsed, _Net):
            nets.append(parsed)
        elif parsed.facts.address in functions:
            problems.append(f"node device {shown(name)}: describes "
                            f"{parsed.facts.address} again; left out")
        else:
            functions[parsed.facts.address] = parsed
    return Inventory.from_facts(_resolved(functions, nets), problems=problems, strict_vpd=True)


def _message(e: Exception) -> str:
    """A libvirtError as one printable line."""
    return shown(str(e).replace("\n", " "))


# -- one device's XML ------------------------------------------------------------------------------

@dataclass
class _Function:
    """A PCI function's facts as its own XML gives them, and what links it to others."""

    name: str
    facts: DeviceFacts
    vf_addresses: list[str] = field(default_factory=list)  # a PF's virt_functions, in order


@dataclass
class _Net:
    parent: str  # the node-device name of the function that owns it
    ifname: str
    mac: str | None
    problems: tuple[str, ...]


# One VPD field as libvirt formats it, one per line, the value not escaped (docs/libvirt.md).
_VPD_FIELD = re.compile(r"^(\s*<(change_level|manufacture_id|part_number|serial_number|"
                        r"asset_tag|vendor_field|system_field)(?: index='[0-9A-Z]')?>)(.*)"
                        r"(</\2>\s*)$", re.M)
_VPD_CAPABILITY = re.compile(r"<capability type=['\"]vpd['\"]>.*?</capability>", re.S)


def _escaped_vpd_text(xml: str) -> str | None:
    """The XML with the text of its VPD fields escaped, or None when that changes nothing.

    libvirt writes VPD field values into the XML as they are (its formatter does not escape
    them), so a card whose VPD text holds ``&`` or ``<`` gets an XML document no parser reads."""
    def escape_fields(cap: re.Match[str]) -> str:
        return _VPD_FIELD.sub(lambda m: m[1] + m[3].replace("&", "&amp;").replace("<", "&lt;")
                              .replace(">", "&gt;") + m[4], cap[0])

    fixed = _VPD_CAPABILITY.sub(escape_fields, xml)
    return None if fixed == xml else fixed


_UNESCAPED = ("vpd: libvirt wrote this card's VPD text into the XML unescaped (a '&' or '<' in "
              "a field), which makes the document malformed for other readers, Nova's too; read "
              "it as libvirt wrote it")


def _document(xml: str) -> tuple[ET.Element | None, str | None, bool]:
    """(root element, or None and why not; whether the VPD text had to be escaped first)."""
    try:
        return ET.fromstring(xml), None, False
    except ET.ParseError as e:
        error = f"malformed XML ({e})"
    fixed = _escaped_vpd_text(xml)
    if fixed is not None:
        try:
            return ET.fromstring(fixed), None, True
        except ET.ParseError:
            pass
    return None, error, False


def _parse(name: str, xml: str) -> _Function | _Net | str:
    """One node device, or why it says nothing usable."""
    root, error, repaired = _document(xml)
    if root is None:
        return error or "malformed XML"
    if root.tag != "device":
        return f"XML whose root is <{shown(root.tag)}>, not <device>"
    pci = root.find("capability[@type='pci']")
    if pci is not None:
        function = _function(name, root, pci)
        if repaired and isinstance(function, _Function):
            function.facts = replace(function.facts, problems=function.facts.problems + (
                f"{_UNESCAPED} {_where(name)}",))
        return function
    net = root.find("capability[@type='net']")
    if net is not None:
        return _net(name, root, net)
    return "neither a pci nor a net capability"


def _where(name: str) -> str:
    return f"(node device {shown(name)})"


def _number(text: str | None, base: int) -> int | None:
    try:
        return int(text.strip(), base) if text is not None else None
    except ValueError:
        return None


def _pci_address(element: ET.Element, base: int, attributes: bool) -> str | None:
    """``DDDD:BB:SS.F`` of a pci capability (decimal elements) or an ``<address>`` (hex
    attributes, as Nova reads them); None when it is not a valid address."""
    parts = []
    for tag in ("domain", "bus", "slot", "function"):
        part = _number(element.get(tag) if attributes else element.findtext(tag), base)
        if part is None:
            return None
        parts.append(part)
    try:
        return str(PciAddress(*parts))
    except ValueError:
        return None


def _function(name: str, root: ET.Element, pci: ET.Element) -> _Function | str:
    address = _pci_address(pci, 10, attributes=False)
    if address is None:
        return "its pci capability holds no valid PCI address (domain, bus, slot, function)"
    where = _where(name)
    problems: list[str] = []

    def hex_id(tag: str) -> str | None:
        element = pci.find(tag)
        value = _number(element.get("id") if element is not None else None, 16)
        if value is None or not 0 <= value <= 0xFFFF:
            shown_id = None if element is None else element.get("id")
            problems.append(f"{tag}: missing or not a 16-bit hex ID: "
                            f"{shown(repr(shown_id))} {where}")
            return None
        return f"{value:04x}"

    vendor_id, product_id = hex_id("vendor"), hex_id("product")
    class_code = _number(pci.findtext("class"), 16)
    if pci.find("class") is not None and class_code is None:
        problems.append(f"class: not a hex class code {where}")
    numa_node = None
    numa = pci.find("numa")
    if numa is not None and numa.get("node") is not None:
        numa_node = _number(numa.get("node"), 10)
        if numa_node is None or numa_node < 0:
            problems.append(f"numa: not a NUMA node: {shown(repr(numa.get('node')))} {where}")
            numa_node = None
    dev_type, parent_addr, vf_addresses, total_vfs = TYPE_PCI, None, [], None
    # As Nova (Host._get_pcidev_info): the first virt_functions or phys_function capability
    # (with an address) decides the type.
    for cap in pci.findall("capability"):
        kind = cap.get("type")
        if kind == "virt_functions":
            dev_type = TYPE_PF
            total_vfs = _number(cap.get("maxCount"), 10)
            for element in cap.findall("address"):
                vf = _pci_address(element, 16, attributes=True)
                if vf is None:
                    problems.append(f"virt_functions: an address that is no PCI address; "
                                    f"ignored {where}")
                else:
                    vf_addresses.append(vf)
            break
        pf = cap.find("address") if kind == "phys_function" else None
        if pf is not None:
            dev_type = TYPE_VF
            parent_addr = _pci_address(pf, 16, attributes=True)
            if parent_addr is None:
                problems.append(f"phys_function: the address is no PCI address {where}")
            break
    vpd = None
    vpd_cap = pci.find("capability[@type='vpd']")
    if vpd_cap is not None:
        vpd = _vpd_blob(vpd_cap, where, problems)
    driver = root.findtext("driver/name")
    facts = DeviceFacts(
        address=address, vendor_id=vendor_id, product_id=product_id, dev_type=dev_type,
        class_code=class_code, parent_addr=parent_addr,
        total_vfs=total_vfs if dev_type == TYPE_PF else None,
        num_vfs=len(vf_addresses) if dev_type == TYPE_PF else None,
        numa_node=numa_node, driver=driver.strip() if driver else None, vpd=vpd,
        problems=tuple(problems))
    return _Function(name, facts, vf_addresses)


# A MAC as the sysfs walker accepts one: hex digits and ':' only (InfiniBand's are long).
_MAC = re.compile(r"[0-9a-fA-F:]{1,96}\Z")


def _net(name: str, root: ET.Element, net: ET.Element) -> _Net | str:
    parent = root.findtext("parent")
    ifname = net.findtext("interface")
    if not ifname or not ifname.strip():
        return "a net capability without an interface name"
    ifname = ifname.strip()
    problems: tuple[str, ...] = ()
    mac = net.findtext("address")
    if mac is not None:
        mac = mac.strip()
        if not _MAC.match(mac):
            problems = (f"net: garbage MAC {shown(repr(mac))} of {shown(ifname)} "
                        f"{_where(name)}",)
            mac = None
    return _Net((parent or "").strip(), ifname, mac, problems)


# libvirt's element -> the VPD keyword, per section; vendor_field and system_field carry the
# second character in their "index" attribute.
_READ_ONLY = {"change_level": "EC", "manufacture_id": "MN", "part_number": "PN",
              "serial_number": "SN", "vendor_field": "V"}
_READ_WRITE = {"asset_tag": "YA", "vendor_field": "V", "system_field": "Y"}
_INDEX = re.compile(r"[0-9A-Z]\Z")


def _vpd_blob(cap: ET.Element, where: str, problems: list[str]) -> bytes | None:
    """A blob with libvirt's VPD text fields (docs/libvirt.md); a field that cannot be encoded
    is left out with a problem."""
    name = cap.findtext("name")
    if name is not None and not (name.isascii() and len(name) <= MAX_VPD_SIZE):
        problems.append(f"vpd: the name is not ASCII text; left out {where}")
        name = None
    sections: dict[str, list[tuple[str, str]]] = {"readonly": [], "readwrite": []}
    for fields in cap.findall("fields"):
        access = fields.get("access") or ""
        known = _READ_ONLY if access == "readonly" else _READ_WRITE if access == "readwrite" else None
        if known is None:
            problems.append(f"vpd: fields of unknown access {shown(repr(access))}; left out "
                            f"{where}")
            continue
        for element in fields:
            keyword = known.get(element.tag)
            index = element.get("index")
            if keyword is not None and len(keyword) == 1:
                keyword = keyword + index if index is not None and _INDEX.match(index) else None
            value = element.text or ""
            if keyword is None or not value.isascii() or len(value) > 255:
                what = shown(element.tag) + ("" if index is None else f" index={shown(index)!r}")
                problems.append(f"vpd: {access} field <{what}> is no VPD field (unknown, not "
                                f"ASCII or longer than 255 bytes); left out {where}")
                continue
            sections[access].append((keyword, value))
    try:
        return build_vpd(name, sections["readonly"], sections["readwrite"])
    except ValueError as e:
        problems.append(f"vpd: libvirt's fields make no VPD blob ({e}); left out {where}")
        return None


# -- the host --------------------------------------------------------------------------------------

def _resolved(functions: dict[str, _Function], nets: list[_Net]) -> list[DeviceFacts]:
    """Every function's facts with what comes from other devices: its netdevs, and for a VF
    its number (its position in its PF's virt_functions)."""
    by_name = {f.name: f for f in functions.values()}
    netdevs: dict[str, list[tuple[str, str | None]]] = {}
    net_problems: dict[str, list[str]] = {}
    for net in nets:
        owner = by_name.get(net.parent)
        if owner is None:
            continue  # a virtual netdev (parent "computer"), or one of a USB device
        netdevs.setdefault(owner.facts.address, []).append((net.ifname, net.mac))
        net_problems.setdefault(owner.facts.address, []).extend(net.problems)
    positions = {address: {vf: n for n, vf in reversed(list(enumerate(f.vf_addresses)))}
                 for address, f in functions.items() if f.vf_addresses}
    out = []
    for address, f in functions.items():
        facts = f.facts
        problems = list(facts.problems) + net_problems.get(address, [])
        vf_num = None
        if facts.dev_type == TYPE_VF and facts.parent_addr is not None:
            pf = functions.get(facts.parent_addr)
            vf_num = positions.get(facts.parent_addr, {}).get(address)
            if pf is not None and vf_num is None:
                problems.append(f"virt_functions: its PF {facts.parent_addr} does not list it "
                                f"(libvirt lists virtfn0, virtfn1, ... up to the first missing "
                                f"link), so its VF number is unknown {_where(f.name)}")
        for vf in f.vf_addresses:
            if vf not in functions:
                problems.append(f"virt_functions: lists {vf}, which libvirt does not describe "
                                f"{_where(f.name)}")
        out.append(replace(facts, vf_num=vf_num, netdevs=tuple(netdevs.get(address, ())),
                           problems=tuple(problems)))
    return out
