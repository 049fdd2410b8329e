"""The Nova/Neutron half of the contract: ``binding:profile`` and ``[pci] device_spec``.

- `binding_profile` builds the port binding profile Nova 34 sends Neutron for a PCI device, and
  with ``remote_managed=True`` enforces what Neutron's OVN driver needs for a port whose VF is
  plugged on a DPU (card serial, PF MAC, VF number), naming every missing piece at once.
- `migration_profile` rebuilds a port's profile for the device it moves to.
- `DeviceSpec` and `load_device_specs` accept and reject exactly the ``device_spec`` entries
  Nova 34 does and match exactly the devices it matches, without reading sysfs (Nova re-reads it
  on every match); `assignable_devices` and `exposes_remote_managed_trait` answer what Nova's
  PCI tracker would.

Where Nova has a bug this module does what Nova intends; docs/nova-contract.md lists each case.
Nothing here reads sysfs: the facts come from an `Inventory`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import DeviceNotFound, DeviceSpecError, ProfileError
from .model import TYPE_PF, TYPE_VF, Inventory, PciAddress, PciDevice

__all__ = [
    "VNIC_TYPE_REMOTE_MANAGED",
    "TRAIT_REMOTE_MANAGED_PORTS",
    "binding_profile",
    "migration_profile",
    "DeviceSpec",
    "load_device_specs",
    "assignable_devices",
    "exposes_remote_managed_trait",
    "device_specs_from_nova_conf",
]

#: Neutron's VNIC type of ports whose VF is plugged by the DPU's own agent.
VNIC_TYPE_REMOTE_MANAGED = "remote-managed"
#: The trait a compute node reports when it can serve such ports.
TRAIT_REMOTE_MANAGED_PORTS = "COMPUTE_REMOTE_MANAGED_PORTS"

# -- binding:profile -------------------------------------------------------------------------------


def _nova_dict(inventory: Inventory, address: str | PciAddress) -> dict[str, Any]:
    """The device's Nova dict: what Nova builds the profile from (via ``extra_info``)."""
    d = inventory.nova_dict(address)
    if d is None:
        raise ProfileError("Nova does not track a device whose vendor or device ID cannot be "
                           "read", str(address))
    return d


def _facts(d: Mapping[str, Any]) -> tuple[str | None, tuple[str, int] | None]:
    """(card serial, (PF MAC, VF number)) of a Nova dict; Nova holds the last two together."""
    caps = d.get("capabilities", {})
    sriov = caps.get("sriov")
    return (caps.get("vpd", {}).get("card_serial_number"),
            (sriov["pf_mac_address"], sriov["vf_num"]) if sriov else None)


def _missing_for_remote_managed(inventory: Inventory, d: Mapping[str, Any]) -> list[str]:
    if d["dev_type"] != TYPE_VF:
        return [f"a VF ({d['dev_type']} given): a remote-managed port is plugged on a VF"]
    serial, sriov = _facts(d)
    missing = []
    parent = d.get("parent_addr")
    if not serial:
        missing.append("card_serial_number (no VPD serial on the VF or its PF"
                       + (f" {parent}" if parent else "") + ")")
    if sriov is None:
        pf = inventory.nova_dict(parent) if parent is not None and parent in inventory else None
        if pf is not None and pf.get("mac_address"):
            missing.append("vf_num (no virtfn link of the PF names this VF)")
        else:
            missing.append(f"pf_mac_address and vf_num (the PF {parent} has no netdev with a "
                           f"MAC address, and Nova reports the VF number only with it)")
    return missing


def binding_profile(inventory: Inventory, address: str | PciAddress, *,
                    physical_network: str | None = None,
                    remote_managed: bool = False) -> dict[str, Any]:
    """The ``binding:profile`` Nova 34 builds for a port on the PCI device at ``address``
    (``API._get_pci_device_profile``): keys in Nova's order and present when Nova has them.

    A VF adds ``card_serial_number``, ``pf_mac_address`` and ``vf_num`` (VF 0 included); a PF
    its own MAC as ``device_mac_address``. With ``remote_managed=True`` (Neutron's
    ``remote-managed`` VNIC type) the device must be a VF with all three, or `ProfileError`
    lists every missing piece. Unknown address: `DeviceNotFound`. Reads nothing: the profile
    comes from the device's Nova dict (`Inventory.nova_dict`).
    """
    if physical_network is not None and not isinstance(physical_network, str):
        raise TypeError(f"physical_network must be str or None, not "
                        f"{type(physical_network).__name__}")
    d = _nova_dict(inventory, address)
    if remote_managed:
        missing = _missing_for_remote_managed(inventory, d)
        if missing:
            raise ProfileError("cannot bind a remote-managed port: missing "
                               + "; ".join(missing), d["address"])
    profile: dict[str, Any] = {
        "pci_vendor_info": f"{d['vendor_id']}:{d['product_id']}",
        "pci_slot": d["address"],
        "physical_network": physical_network,
    }
    if d["dev_type"] == TYPE_VF:
        serial, sriov = _facts(d)
        if serial:
            profile["card_serial_number"] = serial
        if sriov is not None:
            profile["pf_mac_address"], profile["vf_num"] = sriov
    elif d["dev_type"] == TYPE_PF and d.get("mac_address"):
        profile["device_mac_address"] = d["mac_address"]
    return profile


_REFRESHED = ("card_serial_number", "pf_mac_address", "vf_num")


def migration_profile(profile: Mapping[str, Any], inventory: Inventory,
                      address: str | PciAddress) -> dict[str, Any]:
    """A port's ``binding:profile`` rebuilt for the device it moves to (live migration).

    As Nova's ``ComputeManager._update_migrate_vifs_profile_with_pci``: the source profile is
    copied, ``pci_slot`` and ``pci_vendor_info`` become the destination's, and so do
    ``card_serial_number``, ``pf_mac_address`` and ``vf_num`` — but wherever the source has the
    key, where Nova refreshes only truthy values and so keeps ``vf_num: 0`` of a port leaving
    VF 0. A destination PF's MAC becomes ``device_mac_address``. A destination that lacks a value
    the source profile carries raises `ProfileError`: a stale serial, MAC or VF number would make
    the DPU plug the wrong representor.
    """
    d = _nova_dict(inventory, address)
    out = copy.deepcopy(dict(profile))
    out["pci_slot"] = d["address"]
    out["pci_vendor_info"] = f"{d['vendor_id']}:{d['product_id']}"
    serial, sriov = _facts(d)
    fresh = {"card_serial_number": serial or None,
             "pf_mac_address": sriov[0] if sriov else None,
             "vf_num": sriov[1] if sriov else None}
    missing = [key for key in _REFRESHED if key in out and fresh[key] is None]
    if missing:
        raise ProfileError(f"the destination has no {', '.join(missing)} for this port",
                           d["address"])
    for key in _REFRESHED:
        if key in out:
            out[key] = fresh[key]
    if d["dev_type"] == TYPE_PF and d.get("mac_address"):
        out["device_mac_address"] = d["mac_address"]
    return out


# -- [pci] device_spec -----------------------------------------------------------------------------

_ANY = "*"
_TRUE = ("1", "t", "true", "on", "y", "yes")
_FALSE = ("0", "f", "false", "off", "n", "no")
_NOT_TAGS = ("vendor_id", "product_id", "devname", "address")
_BOOL_TAGS = ("managed", "live_migratable", "one_time_use")
_CANONICAL = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\Z")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _truthy(value: Any) -> bool:
    """Nova's ``strutils.bool_from_string``: a bool as it is, anything else as text."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def _hex_field(value: Any, maximum: int, width: int, what: str) -> str:
    """A hex ID or address part the way Nova reads it: ``*`` kept, else ``int(value, 16)``
    (spaces, a ``0x`` prefix, a sign and underscores pass, as they do in Nova) at most
    `maximum`, formatted to `width` digits."""
    if value == _ANY:
        return _ANY
    try:
        number = int(value, 16)
    except (TypeError, ValueError):
        raise DeviceSpecError(f"{what} {value!r} is not a hex number") from None
    if number > maximum:
        raise DeviceSpecError(f"{what} {value!r} is above the maximum {maximum:X}")
    return "%0*x" % (width, number)


def _address_fields(address: str) -> tuple[str, str, str, str]:
    domain, bus, rest = address.split(":")
    slot, _, function = rest.partition(".")
    return domain, bus, slot, function


@dataclass(frozen=True, slots=True)
class _Glob:
    """``[[[[domain]:]bus]:][slot][.[function]]`` with ``*`` (or nothing) for any part."""

    domain: str
    bus: str
    slot: str
    function: str
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> _Glob:
        dbs, _, function = text.partition(".")
        parts = [_ANY, _ANY, _ANY, _ANY]
        if function:
            parts[3] = _hex_field(function.strip(), 0x7, 1, "address function")
        if dbs:
            fields = dbs.split(":")
            if len(fields) > 3:
                raise DeviceSpecError(f"address {text!r} has more than three ':' parts")
            fields = [_ANY] * (3 - len(fields)) + fields
            for k, (raw, maximum, width, what) in enumerate(zip(
                    fields, (0xFFFF, 0xFF, 0x1F), (4, 2, 2), ("domain", "bus", "slot"))):
                parts[k] = _hex_field(raw.strip() or _ANY, maximum, width, f"address {what}")
        return cls(*parts)

    def single(self) -> str | None:
        """The address when every part is given (Nova's ``is_single_address``)."""
        if all(all(c in _HEX_DIGITS for c in p) for p in (self.domain, self.bus, self.slot,
                                                          self.function)):
            return f"{self.domain}:{self.bus}:{self.slot}.{self.function}"
        return None

    def __post_init__(self) -> None:
        # One regular expression for the whole address (None: every address), so that a match
        # is one call: devices are matched by the thousand.
        parts = (self.domain, self.bus, self.slot, self.function)
        pattern = None
        if any(p != _ANY for p in parts):
            d, b, s, f = (any_ if p == _ANY else re.escape(p)
                          for p, any_ in zip(parts, ("[^:]+", "[^:]+", "[^.]+", ".+")))
            pattern = re.compile(f"{d}:{b}:{s}\\.{f}\\Z")
        object.__setattr__(self, "_pattern", pattern)

    def matches(self, address: str) -> bool:
        return self._pattern is None or self._pattern.match(address) is not None


@dataclass(frozen=True, slots=True)
class _Regex:
    """``{"domain": re, "bus": re, "slot": re, "function": re}``, each matched from the start
    of the zero-padded part (``re.match``, as Nova)."""

    raw: tuple[str, str, str, str]
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> _Regex:
        raw = tuple(spec.get(k, ".*") for k in ("domain", "bus", "slot", "function"))
        patterns = []
        for key, value in zip(("domain", "bus", "slot", "function"), raw):
            if not isinstance(value, str):
                raise DeviceSpecError(f"address {key} {value!r} is not a regular expression")
            try:
                patterns.append(re.compile(value))
            except re.error as e:
                raise DeviceSpecError(f"address {key} {value!r} is not a valid regular "
                                      f"expression ({e})") from None
        return cls(raw, tuple(patterns))  # type: ignore[arg-type]

    def single(self) -> str | None:
        if all(all(c in _HEX_DIGITS for c in p) for p in self.raw):
            return "%s:%s:%s.%s" % self.raw
        return None

    def matches(self, address: str) -> bool:
        domain, bus, slot, function = _address_fields(address)
        d, b, s, f = self.patterns
        return bool(d.match(domain) and b.match(bus) and s.match(slot) and f.match(function))


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One ``[pci] device_spec`` entry, validated as Nova 34 validates it.

    ``tags`` are Nova's (``PciDeviceSpec.get_tags()``): every key but ``vendor_id``,
    ``product_id``, ``address`` and ``devname``, with ``managed``, ``live_migratable`` and
    ``one_time_use`` turned into ``"true"``/``"false"``. A spec whose address (or ``devname``)
    names one PF matches that PF's VFs too, through their parent. A ``devname`` spec must be bound
    to a host (`load_device_specs` with an inventory, or `bind`) before it can match.
    """

    entry: Mapping[str, Any]
    vendor_id: str
    product_id: str
    tags: Mapping[str, Any]
    remote_managed: bool
    devname: str | None = None
    _address: _Glob | _Regex | None = field(default=None, repr=False)
    # the single function the spec names and whether it is a PF; None: not known (unbound)
    _single: str | None = field(default=None, repr=False)
    _single_is_pf: bool | None = field(default=None, repr=False)
    _bound: bool = field(default=False, repr=False)

    # -- parsing ----------------------------------------------------------------------------------
    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], *,
                   report_in_placement: bool = False) -> DeviceSpec:
        """Validate one entry (a dict, as one item of the JSON); `DeviceSpecError` names the
        entry and the field that is wrong."""
        if not isinstance(entry, Mapping):
            raise DeviceSpecError(f"device_spec entry {_show(entry)}: expected a dict")
        try:
            return cls._parse(entry, report_in_placement)
        except DeviceSpecError as e:
            raise DeviceSpecError(f"device_spec entry {_show(entry)}: {e}") from None

    @classmethod
    def _parse(cls, entry: Mapping[str, Any], report_in_placement: bool) -> DeviceSpec:
        tags = {k: copy.deepcopy(v) for k, v in entry.items() if k not in _NOT_TAGS}
        vendor_id = entry.get("vendor_id", _ANY)
        if not isinstance(vendor_id, str):
            raise DeviceSpecError(f"vendor_id {vendor_id!r} is not a string")
        vendor_id = _hex_field(vendor_id.strip(), 0xFFFF, 4, "vendor_id")
        product_id = _hex_field(entry.get("product_id", _ANY), 0xFFFF, 4, "product_id")
        devname = entry.get("devname") or None
        address = entry.get("address")
        if address and devname:
            raise DeviceSpecError("give devname or address, not both")
        matcher: _Glob | _Regex | None = None
        if devname is None:
            given = address or "*:*:*.*"
            if isinstance(given, str):
                matcher = _Glob.parse(given)
            elif isinstance(given, Mapping):
                matcher = _Regex.parse(given)
            else:
                raise DeviceSpecError(f"address {given!r} is neither a glob string nor a "
                                      f"dict of regular expressions")
        for tag in _BOOL_TAGS:
            value = tags.get(tag)
            if value is not None:
                if not isinstance(value, bool) and str(value).strip().lower() not in (
                        _TRUE + _FALSE):
                    raise DeviceSpecError(f"tag {tag} {value!r} is not a boolean "
                                          f"({', '.join(_TRUE + _FALSE)})")
                tags[tag] = "true" if _truthy(value) else "false"
        if tags.get("one_time_use") == "true" and not report_in_placement:
            raise DeviceSpecError("one_time_use=true needs [pci] report_in_placement")
        single = matcher.single() if matcher is not None else None
        return cls(entry=copy.deepcopy(dict(entry)), vendor_id=vendor_id, product_id=product_id,
                   tags=tags, remote_managed=_truthy(tags.get("remote_managed")),
                   devname=None if devname is None else str(devname),  # Nova formats it in
                   _address=matcher, _single=single)

    # -- the host ---------------------------------------------------------------------------------
    def bind(self, inventory: Inventory) -> DeviceSpec:
        """This spec resolved against a host: its ``devname`` and whether its single address is
        a PF (Nova reads both from sysfs). Raises `DeviceSpecError` for what Nova rejects on
        this host: a ``remote_managed`` spec whose netdev is not there, or one naming a PF
        (allowed only with the PF's VF product ID, meaning its VFs)."""
        single, matcher = self._single, self._address
        if self.devname is not None:
            try:
                owner = inventory.by_netdev(self.devname)
            except DeviceNotFound:
                owner = None
            if owner is None:
                if self.remote_managed:
                    raise DeviceSpecError(f"device_spec entry {_show(self.entry)}: devname: "
                                          f"remote_managed device {self.devname!r} is not "
                                          f"present on the host")
                return replace(self, _bound=True, _single=None, _single_is_pf=False,
                               _address=None)
            single = owner.address
            matcher = _Glob(*_address_fields(single))
        is_pf = False
        if single is not None and _CANONICAL.match(single) and single in inventory:
            function = inventory[single]
            is_pf = function.total_vfs is not None and function.total_vfs > 0
            if self.remote_managed and is_pf:
                self._check_remote_managed_pf(function)
        return replace(self, _bound=True, _single=single, _single_is_pf=is_pf, _address=matcher)

    def _check_remote_managed_pf(self, pf: PciDevice) -> None:
        """Nova's intended rule for remote_managed on a PF address: the IDs must be the VFs'."""
        vendor_ok = self.vendor_id in (_ANY, pf.vendor_id)
        if vendor_ok and pf.vf_product_id is not None and self.product_id == pf.vf_product_id:
            return  # "the VFs of this PF"
        where = f"device_spec entry {_show(self.entry)}: "
        if vendor_ok and self.product_id in (_ANY, pf.product_id):
            raise DeviceSpecError(where + f"PFs must not be remote_managed ({pf.address} is a "
                                  f"PF; give its VF product_id {pf.vf_product_id or '?'} to "
                                  f"mean its VFs)")
        raise DeviceSpecError(where + f"vendor_id {self.vendor_id} / product_id "
                              f"{self.product_id} do not match the VFs of PF {pf.address} "
                              f"({pf.vendor_id}:{pf.vf_product_id or '?'})")

    # -- matching ---------------------------------------------------------------------------------
    def match(self, device: PciDevice | Mapping[str, Any]) -> bool:
        """Whether Nova would match this device (a `PciDevice` or a Nova device dict) to the
        spec. Reads no sysfs. An unbound spec with a single address treats it as a PF exactly
        when the device is a VF whose parent it names."""
        if isinstance(device, PciDevice):
            vendor, product = device.vendor_id, device.product_id
            address, parent = device.address, device.parent_addr
        else:
            vendor, product = device["vendor_id"], device["product_id"]
            address, parent = device["address"], device.get("parent_addr")
        if ((self.vendor_id != _ANY and self.vendor_id != vendor)
                or (self.product_id != _ANY and self.product_id != product)):
            return False
        if self.remote_managed and not _serial_of(device):
            return False  # Neutron could not find the DPU: Nova leaves such devices out
        matcher = self._address
        if matcher is None:
            if self.devname is not None and not self._bound:
                raise DeviceSpecError(f"device_spec entry {_show(self.entry)}: devname "
                                      f"{self.devname!r} is resolved on a host: load the specs "
                                      f"with an inventory, or bind(inventory)")
            return False  # its netdev is not on this host
        if parent and self._single is not None and parent == self._single:
            if self._single_is_pf or (self._single_is_pf is None and _CANONICAL.match(parent)):
                return True  # a PF's address means its VFs too
        return matcher.matches(address)

    @property
    def names_one_pf(self) -> bool | None:
        """Whether the spec's address or ``devname`` names one PF of the host it is bound to
        (it then means that PF's VFs too); None for a spec not bound to a host."""
        return self._single_is_pf if self._bound else None

    @property
    def nova_trait_value(self) -> bool:
        """Whether Nova 34 reports COMPUTE_REMOTE_MANAGED_PORTS for devices of this spec: only
        when ``remote_managed`` is the text ``true`` (any case); a spec saying ``yes``, ``1`` or
        JSON ``true`` still takes its VFs out of the normal pools (the trait trap)."""
        value = self.tags.get("remote_managed")
        return isinstance(value, str) and value.lower() == "true"


def _serial_of(device: PciDevice | Mapping[str, Any]) -> str | None:
    if isinstance(device, PciDevice):
        return device.card_serial_number
    serial: str | None = device.get("capabilities", {}).get("vpd", {}).get("card_serial_number")
    return serial


def _show(entry: Any) -> str:
    try:
        return json.dumps(entry, sort_keys=False)
    except (TypeError, ValueError):
        return repr(entry)


def _entries(item: Any) -> list[Any]:
    """One configured value: a JSON string (a dict or a list of dicts) or a dict."""
    if isinstance(item, str):
        try:
            value = json.loads(item)
        except ValueError:
            raise DeviceSpecError(f"device_spec entry {item!r}: not valid JSON") from None
    else:
        value = item
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return value
    raise DeviceSpecError(f"device_spec entry {_show(value)}: expected a dict or a list of dicts")


def load_device_specs(entries: Iterable[str | Mapping[str, Any]],
                      inventory: Inventory | None = None, *,
                      report_in_placement: bool = False) -> list[DeviceSpec]:
    """Parse and validate ``[pci] device_spec`` values (JSON text or dicts) as Nova 34 does.

    With an inventory the specs are bound to that host (`DeviceSpec.bind`) and validated against
    it. A bad entry fails the whole load (`DeviceSpecError`): an agent must not start with half a
    device list.
    """
    specs = []
    for item in entries:
        for entry in _entries(item):
            spec = DeviceSpec.from_entry(entry, report_in_placement=report_in_placement)
            specs.append(spec.bind(inventory) if inventory is not None else spec)
    return specs


def assignable_devices(inventory: Inventory, specs: Iterable[DeviceSpec],
                       ) -> list[tuple[PciDevice, DeviceSpec]]:
    """Every device Nova would track, with the first spec that matches it, in address order.

    Devices without vendor or product ID are left out, as in `Inventory.to_nova`.
    """
    bound = [s if s._bound else s.bind(inventory) for s in specs]
    chosen = []
    for d in inventory.to_nova():  # what Nova matches, and no VF details to read
        for spec in bound:
            if spec.match(d):
                chosen.append((d["address"], spec))
                break
    return [(inventory[address], spec) for address, spec in chosen]


def exposes_remote_managed_trait(inventory: Inventory, specs: Iterable[DeviceSpec]) -> bool:
    """Whether the host can serve remote-managed ports: some assignable device's spec is
    ``remote_managed`` (any truthy value: what Nova intends; Nova 34 itself only counts the text
    ``true``, see `DeviceSpec.nova_trait_value`)."""
    bound = [s if s._bound else s.bind(inventory) for s in specs]
    for d in inventory.to_nova():
        spec = next((s for s in bound if s.match(d)), None)
        if spec is not None and spec.remote_managed:
            return True
    return False


# -- nova.conf ---------------------------------------------------------------------------------

# The names Nova 34 reads the option under; oslo.config joins the values of all of them, the
# deprecated ones first, in this order.
_DEVICE_SPEC_NAMES = (("DEFAULT", "pci_passthrough_whitelist"), ("pci", "passthrough_whitelist"),
                      ("pci", "device_spec"))


def device_specs_from_nova_conf(text: str) -> list[str]:
    """The ``[pci] device_spec`` values of a nova.conf, read the way oslo.config reads a
    multi-valued option: every occurrence in order, an indented line continuing the value
    before it (joined with a newline), quotes around a whole value removed, ``#``/``;``
    comments; section names but ``DEFAULT`` in any case; the values of the deprecated names
    (``[pci] passthrough_whitelist``, ``[DEFAULT] pci_passthrough_whitelist``) first. Raises
    `DeviceSpecError` for a line oslo.config would refuse."""
    values: dict[tuple[str, str], list[str]] = {}
    section: str | None = None
    key: str | None = None
    parts: list[str] = []

    def flush() -> None:
        nonlocal key, parts
        if key is not None and section is not None:
            values.setdefault((section, key), []).append("\n".join(parts))
        key, parts = None, []

    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.rstrip()
        if not line:
            flush()
            continue
        if line.startswith((" ", "\t")):
            if key is None:
                raise DeviceSpecError(f"nova.conf line {lineno}: unexpected continuation line")
            parts.append(line.lstrip())
            continue
        flush()
        if line.startswith("["):
            if not line.endswith("]") or len(line) <= 2:
                raise DeviceSpecError(f"nova.conf line {lineno}: invalid section {line!r}")
            section = line[1:-1]
            section = section if section == "DEFAULT" else section.lower()
        elif not line.startswith(("#", ";")):
            colon, equal = line.find(":"), line.find("=")
            if colon < 0 and equal < 0:
                raise DeviceSpecError(f"nova.conf line {lineno}: no '=' or ':' in {line!r}")
            at = equal if colon < 0 or 0 <= equal < colon else colon
            key, value = line[:at].strip(), line[at + 1:].strip()
            if not key:
                raise DeviceSpecError(f"nova.conf line {lineno}: empty key in {line!r}")
            if value and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            parts = [value]
    flush()
    return [v for name in _DEVICE_SPEC_NAMES for v in values.get(name, ())]
