"""``fastvpd doctor``: can each VF back a remote-managed port, and if not, why not?

Nova drops a VF it cannot use silently, Neutron answers "Chassis ... does not exist", the DPU's
agent "No representor port found": each long after the cause. `check` names the cause up front.
It takes a scan and, optionally, the ``[pci] device_spec`` entries of nova.conf, and returns a
`Report`: per card, PF and VF whether it is ready and every reason it is not, each a `Reason`
with a stable code (`CODES`; the table with what each means is docs/doctor.md), in the words of
the component that would fail.

Nothing here reads sysfs: the facts come from the `Inventory` (its Nova dicts, which need no VF
details) and from `fastvpd.profile` (device specs and their matching), so a check of a host with
thousands of VFs costs little more than its scan.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TextIO

from ._walk import shown
from .errors import DeviceSpecError
from .model import TYPE_VF, VPD_DENIED, VPD_NOT_USED, Inventory, PciDevice
from .profile import TRAIT_REMOTE_MANAGED_PORTS, DeviceSpec, load_device_specs

__all__ = [
    "check",
    "format_report",
    "Report",
    "CardVerdict",
    "PfVerdict",
    "VfVerdict",
    "SpecVerdict",
    "Reason",
    "CODES",
    "NOVA",
    "LIBVIRT",
    "NEUTRON_OVN",
    "OVN_VIF",
    "FASTVPD",
]

# The components whose failure a reason predicts.
NOVA = "Nova"
LIBVIRT = "libvirt"
NEUTRON_OVN = "Neutron's OVN driver"
OVN_VIF = "ovn-vif on the DPU"
FASTVPD = "fastvpd"  # what fastvpd itself could not establish, and the notes

#: Every reason code: (the component that would fail, what it means in one line). The same
#: table, with more words, is docs/doctor.md.
CODES: Mapping[str, tuple[str, str]] = MappingProxyType({
    # the card serial number (from the PF's VPD)
    "vpd-missing": (NOVA, "the PF has no vpd file (no VPD capability), so no card serial number"),
    "vpd-unreadable": (NOVA, "the PF's vpd file exists but cannot be read, by libvirt either"),
    "vpd-needs-root": (FASTVPD, "reading the PF's VPD was refused: it needs root, so the serial "
                                "is unknown"),
    "no-card-serial": (NOVA, "the PF's VPD has no serial number (no SN, SN not text, or no VPD "
                             "at all)"),
    "vpd-empty-serial": (NOVA, "the PF's VPD serial number (SN) is empty, which counts as none"),
    "vpd-rejected-by-libvirt": (LIBVIRT, "libvirt rejects the VPD blob, so Nova sees no serial"),
    "card-two-serials": (NEUTRON_OVN, "the PFs of one card (PCI slot) report different serial "
                                      "numbers"),
    "serial-shared": (NEUTRON_OVN, "one serial number is reported by two cards"),
    # the PF MAC address
    "pf-no-netdev": (NEUTRON_OVN, "the PF has no netdev, so Nova reports no pf_mac_address or "
                                  "vf_num"),
    "pf-no-mac": (NEUTRON_OVN, "the PF's netdev has no readable MAC, so Nova reports no "
                               "pf_mac_address"),
    "pf-mac-zero": (OVN_VIF, "the PF's MAC is 00:00:00:00:00:00"),
    "pf-mac-duplicate": (OVN_VIF, "two PFs have the same MAC"),
    # the VF
    "virtfn-missing": (NOVA, "no virtfn link names a VF: Nova 34 then reports no PCI device at "
                             "all"),
    "vf-ids-unreadable": (NOVA, "the VF's vendor or device ID cannot be read: Nova does not "
                                "track it"),
    "vf-without-pf": (NOVA, "the VF's PF is not in the scan: Nova reports no serial, PF MAC or "
                            "VF number for it"),
    # [pci] device_spec
    "no-matching-spec": (NOVA, "no device_spec entry matches the VF"),
    "spec-not-remote-managed": (NOVA, "the first entry matching the VF does not tag it "
                                      "remote_managed"),
    "trait-trap": (NOVA, "remote_managed is truthy but not \"true\": on Nova 34 the VF serves no "
                         "port"),
    "spec-invalid": (NOVA, "Nova rejects a device_spec entry, and with it the whole "
                           "[pci] device_spec"),
    # the whole host
    "no-remote-managed-vf": (NOVA, "no device_spec entry tags any VF of the host remote_managed"),
    "no-vfs": (NOVA, "the host has no SR-IOV VF"),
    # notes: worth knowing, no reason for exit status 1
    "no-device-spec": (FASTVPD, "note: no device_spec given, so only the hardware facts were "
                                "checked"),
    "spec-matches-no-vf": (FASTVPD, "note: a device_spec entry is the first match of no VF"),
})

_ZERO_MAC = "00:00:00:00:00:00"
_SOME_SERIAL = {"card_serial_number": "?"}  # stands in for a serial when matching intent


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason a device cannot back a remote-managed port (or, in `Report.notes`, a note).

    ``code`` is stable (`CODES`, docs/doctor.md); ``component`` is the one that would fail
    (`NOVA`, `LIBVIRT`, `NEUTRON_OVN`, `OVN_VIF`; `FASTVPD` for what fastvpd could not find
    out); ``message`` says it in that component's terms; ``subject`` is the device, file or
    ``device_spec`` entry it is about. The same reason object is shared by every device it
    concerns (a PF's reasons are in each of its VFs' reasons).
    """

    code: str
    component: str
    message: str
    subject: str

    def __post_init__(self) -> None:
        known = CODES.get(self.code)
        if known is None:
            raise ValueError(f"unknown doctor reason code {self.code!r}")
        if known[0] != self.component:
            raise ValueError(f"reason {self.code} is about {known[0]}, not {self.component}")

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "component": self.component, "message": self.message,
                "subject": self.subject}


@dataclass(frozen=True, slots=True)
class VfVerdict:
    """One VF: ``ready`` when ``reasons`` is empty. ``reasons`` is complete: the host's, the
    card's, the PF's and the VF's own. ``spec`` is the index of the first ``device_spec`` entry
    that matches it (as Nova would if the VF had a serial number; None: none, or no specs given)
    and ``remote_managed`` whether that entry tags it so."""

    address: str
    pf_address: str | None
    vf_num: int | None
    reasons: tuple[Reason, ...]
    spec: int | None = None
    remote_managed: bool = False

    @property
    def ready(self) -> bool:
        return not self.reasons

    def to_dict(self, card: str | None = None) -> dict[str, Any]:
        return {"address": self.address, "dev_type": TYPE_VF, "card": card, "pf": self.pf_address,
                "vf_num": self.vf_num, "ready": self.ready, "spec": self.spec,
                "remote_managed": self.remote_managed,
                "reasons": [r.to_dict() for r in self.reasons]}


@dataclass(frozen=True, slots=True)
class PfVerdict:
    """One PF and its VFs (in VF number order, those without one last). ``reasons`` are the
    card's and the PF's own; ``ready`` when it has VFs and every one is ready."""

    address: str
    netdev: str | None
    mac_address: str | None
    card_serial_number: str | None
    reasons: tuple[Reason, ...]
    vfs: tuple[VfVerdict, ...]

    @property
    def ready(self) -> bool:
        return bool(self.vfs) and all(vf.ready for vf in self.vfs)

    @property
    def ready_vfs(self) -> int:
        return sum(1 for vf in self.vfs if vf.ready)


@dataclass(frozen=True, slots=True)
class CardVerdict:
    """One card: the PFs of one PCI slot (``DDDD:BB:SS``), which share the card's VPD.
    ``serials`` are the serial numbers its PFs report (fastvpd's tolerant reading); ``ready``
    when it has VFs and every one is ready."""

    slot: str
    serials: tuple[str, ...]
    name: str | None
    reasons: tuple[Reason, ...]
    pfs: tuple[PfVerdict, ...]

    @property
    def vfs(self) -> tuple[VfVerdict, ...]:
        return tuple(vf for pf in self.pfs for vf in pf.vfs)

    @property
    def ready(self) -> bool:
        return any(pf.vfs for pf in self.pfs) and all(
            vf.ready for pf in self.pfs for vf in pf.vfs)


@dataclass(frozen=True, slots=True)
class SpecVerdict:
    """One ``device_spec`` entry: ``spec`` is None when fastvpd (as Nova) rejects it; ``reasons``
    holds its ``spec-invalid`` reason (also for an entry fastvpd accepts but Nova 34 rejects);
    ``vfs`` counts the VFs it is the first match for."""

    index: int
    entry: Any
    spec: DeviceSpec | None
    reasons: tuple[Reason, ...]
    vfs: int = 0


@dataclass(frozen=True, slots=True)
class Report:
    """What `check` found. ``reasons`` concern the whole host: an invalid ``device_spec``
    entry or a missing ``virtfn`` link (those are in every VF's reasons too), no VF at all, no
    VF tagged ``remote_managed``;
    ``notes`` are worth knowing but no reason for failure; ``specs`` is None when no
    ``device_spec`` was given; ``stray_vfs`` are VFs whose PF is not in the scan."""

    sysfs: str | None
    cards: tuple[CardVerdict, ...]
    reasons: tuple[Reason, ...]
    notes: tuple[Reason, ...]
    specs: tuple[SpecVerdict, ...] | None
    stray_vfs: tuple[VfVerdict, ...] = ()

    def vfs(self) -> Iterator[VfVerdict]:
        """Every VF, card by card and PF by PF, then the stray ones."""
        for card in self.cards:
            for pf in card.pfs:
                yield from pf.vfs
        yield from self.stray_vfs

    def counted_vfs(self) -> list[VfVerdict]:
        """The VFs the verdict is about: those a ``device_spec`` entry tags ``remote_managed``,
        or every VF when no ``device_spec`` was given."""
        if self.specs is None:
            return list(self.vfs())
        return [vf for vf in self.vfs() if vf.remote_managed]

    @property
    def ready(self) -> bool:
        """Whether every counted VF can back a remote-managed port (and there is one)."""
        return not self.reasons and all(vf.ready for vf in self.counted_vfs())

    @property
    def exit_status(self) -> int:
        return 0 if self.ready else 1

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: ``devices`` holds one object per PF and VF, in address
        order, each with ``ready`` and its ``reasons`` (docs/doctor.md)."""
        devices: list[dict[str, Any]] = []
        cards = []
        for card in self.cards:
            vfs = card.vfs
            cards.append({"card": card.slot, "serials": list(card.serials), "name": card.name,
                          "ready": card.ready, "vfs": len(vfs),
                          "ready_vfs": sum(1 for vf in vfs if vf.ready),
                          "pfs": [pf.address for pf in card.pfs],
                          "reasons": [r.to_dict() for r in card.reasons]})
            for pf in card.pfs:
                devices.append({
                    "address": pf.address, "dev_type": "type-PF", "card": card.slot,
                    "ready": pf.ready, "netdev": pf.netdev, "mac_address": pf.mac_address,
                    "card_serial_number": pf.card_serial_number, "vfs": len(pf.vfs),
                    "ready_vfs": pf.ready_vfs, "reasons": [r.to_dict() for r in pf.reasons]})
                devices.extend(vf.to_dict(card.slot) for vf in pf.vfs)
        devices.extend(vf.to_dict() for vf in self.stray_vfs)
        devices.sort(key=lambda d: d["address"])
        specs = None if self.specs is None else [
            {"index": s.index, "entry": s.entry, "valid": not s.reasons,
             "remote_managed": None if s.spec is None else s.spec.remote_managed,
             "nova_trait_value": None if s.spec is None else s.spec.nova_trait_value,
             "vfs": s.vfs, "reasons": [r.to_dict() for r in s.reasons]} for s in self.specs]
        counted = self.counted_vfs()
        return {"sysfs": self.sysfs, "ready": self.ready, "exit_status": self.exit_status,
                "counted_vfs": len(counted), "ready_vfs": sum(1 for vf in counted if vf.ready),
                "specs": specs, "reasons": [r.to_dict() for r in self.reasons],
                "notes": [r.to_dict() for r in self.notes], "cards": cards, "devices": devices}


# -- the checks ------------------------------------------------------------------------------------

_NO_SERIAL = ("Nova matches remote_managed device_spec entries only to devices with a card "
              "serial number (Neutron's OVN driver finds the DPU by it), so it never gives "
              "this PF's VFs to a remote-managed port")


def _vpd_path(inventory: Inventory, address: str) -> str:
    if inventory.sysfs is None:
        return f"{address}/vpd"
    return os.path.join(inventory.sysfs, "bus", "pci", "devices", address, "vpd")


def _serial_reasons(inventory: Inventory, pf: PciDevice) -> list[Reason]:
    """Why Nova would see no card serial number on this PF (and so on its VFs)."""
    a, path = pf.address, _vpd_path(inventory, pf.address)
    vpd = pf.vpd
    if vpd is None:
        vpd_problems = [p for p in pf.problems if p.startswith("vpd: ")]
        if any(p.startswith(VPD_NOT_USED) for p in vpd_problems):
            return [Reason("vpd-rejected-by-libvirt", LIBVIRT, f"libvirt rejects the VPD of {a} "
                           f"(it breaks the format; the problems are on the device) and reports "
                           f"none, so Nova sees no card serial number: {_NO_SERIAL}", path)]
        if any(p.startswith(VPD_DENIED) for p in vpd_problems):
            return [Reason("vpd-needs-root", FASTVPD, f"reading the VPD of {a} was refused "
                           "(permission denied): reading VPD needs root, so whether Nova sees a "
                           "card serial number is unknown; run fastvpd doctor as root", path)]
        if vpd_problems:
            return [Reason("vpd-unreadable", NOVA, f"the VPD of {a} cannot be read "
                           f"({vpd_problems[0][5:]}); libvirt reads the same file, so Nova sees "
                           f"no card serial number: {_NO_SERIAL}", path)]
        return [Reason("vpd-missing", NOVA, f"{a} has no VPD (no vpd file: the function has no "
                       f"VPD capability), so no card serial number: {_NO_SERIAL}", path)]
    serial = vpd.serial_number
    if serial == "":
        return [Reason("vpd-empty-serial", NOVA, f"the serial number (SN) in the VPD of {a} is "
                       f"empty, and Nova counts an empty serial as none: {_NO_SERIAL}", path)]
    if serial is None:
        if "SN" in vpd.read_only:
            why = "its SN is not printable ASCII"
        elif vpd.problems:
            why = vpd.problems[0]
        else:
            why = "VPD-R has no SN field"
        return [Reason("no-card-serial", NOVA, f"the VPD of {a} has no serial number ({why}): "
                       f"{_NO_SERIAL}", path)]
    fatal = vpd.fatal_problems
    if fatal:
        more = f" and {len(fatal) - 1} more" if len(fatal) > 1 else ""
        return [Reason("vpd-rejected-by-libvirt", LIBVIRT, f"libvirt rejects the VPD of {a} "
                       f"({fatal[0]}{more}) and reports none, so Nova sees no card serial number "
                       f"although fastvpd reads {serial!r}: {_NO_SERIAL}", path)]
    return []


def _is_zero_mac(mac: str) -> bool:
    return not mac.replace(":", "").strip("0")


def _mac_reasons(pf: PciDevice, owners: Mapping[str, list[str]]) -> list[Reason]:
    a = pf.address
    if not pf.netdevs:
        return [Reason("pf-no-netdev", NEUTRON_OVN, f"{a} has no netdev (driver "
                       f"{pf.driver or 'none'}), so Nova reports no pf_mac_address and no vf_num "
                       f"for its VFs: Neutron's OVN driver rejects a remote-managed port's "
                       f"binding:profile without them (card_serial_number, pf_mac_address and "
                       f"vf_num are all required)", a)]
    ifname, mac = pf.netdevs[0], pf.mac_address
    if mac is None:
        return [Reason("pf-no-mac", NEUTRON_OVN, f"the netdev {ifname} of {a} has no readable MAC "
                       f"address, so Nova reports no pf_mac_address and no vf_num for its VFs: "
                       f"Neutron's OVN driver rejects a remote-managed port's binding:profile "
                       f"without them", a)]
    if _is_zero_mac(mac):
        return [Reason("pf-mac-zero", OVN_VIF, f"{a} ({ifname}) has the MAC {mac}: the DPU's "
                       f"agent finds a VF's representor by the PF MAC and the VF number and finds "
                       f"none for this PF (\"No representor port found\")", a)]
    others = [o for o in owners.get(mac.lower(), ()) if o != a]
    if others:
        return [Reason("pf-mac-duplicate", OVN_VIF, f"{a} ({ifname}) has the MAC {mac}, as "
                       f"{', '.join(others)} {'does' if len(others) == 1 else 'do'}: the DPU's "
                       f"agent finds a VF's representor by the PF MAC and the VF number and "
                       f"cannot tell these PFs' VFs apart", a)]
    return []


def _card_reasons(slot: str, pfs: list[PciDevice],
                  slots_of: Mapping[str, list[str]]) -> list[Reason]:
    reasons = []
    serials = {pf.address: pf.card_serial_number for pf in pfs if pf.card_serial_number}
    if len(set(serials.values())) > 1:
        listed = ", ".join(f"{a} {s!r}" for a, s in serials.items())
        reasons.append(Reason("card-two-serials", NEUTRON_OVN, f"the PFs of card {slot} report "
                              f"different serial numbers ({listed}): the DPU's OVN chassis "
                              f"carries one card-serial-number, and Neutron's OVN driver finds "
                              f"no chassis for ports on the others (\"Chassis with ... "
                              f"card-serial-number ... does not exist\")", slot))
    for serial in dict.fromkeys(serials.values()):
        others = [s for s in slots_of[serial] if s != slot]
        if others:
            reasons.append(Reason("serial-shared", NEUTRON_OVN, f"the serial number {serial!r} "
                                  f"of card {slot} is also reported by card "
                                  f"{', '.join(others)}: Neutron's OVN driver picks the DPU whose "
                                  f"OVN chassis carries card-serial-number={serial} (exact match), "
                                  f"so the ports of one card are sent to the other's DPU", slot))
    return reasons


def _split_entries(item: Any) -> list[Any]:
    """One configured value as the entries it holds, each to load on its own (so that every bad
    entry is reported); a value that is no JSON list stays whole, for the loader to judge."""
    value = item
    if isinstance(item, str):
        try:
            value = json.loads(item)
        except ValueError:
            return [item]
    return [[element] for element in value] if isinstance(value, list) else [item]


def _load_specs(inventory: Inventory,
                specs: Iterable[str | Mapping[str, Any] | DeviceSpec]) -> list[SpecVerdict]:
    out: list[SpecVerdict] = []
    for item in specs:
        for part in [item] if isinstance(item, DeviceSpec) else _split_entries(item):
            index = len(out)
            try:
                spec = (part.bind(inventory) if isinstance(part, DeviceSpec)
                        else load_device_specs([part], inventory)[0])
            except DeviceSpecError as e:
                shown_entry = part[0] if isinstance(part, list) else part
                out.append(SpecVerdict(index, shown_entry, None, (Reason(
                    "spec-invalid", NOVA, f"Nova rejects device_spec entry [{index}], and with it "
                    f"the whole [pci] device_spec, so it tracks no PCI device: {e}",
                    f"device_spec entry [{index}]"),)))
                continue
            reasons: tuple[Reason, ...] = ()
            if spec.remote_managed and spec.names_one_pf:
                reasons = (Reason(
                    "spec-invalid", NOVA, f"Nova 34 rejects device_spec entry [{index}] "
                    f"{json.dumps(spec.entry)}, and with it the whole [pci] device_spec: a "
                    f"remote_managed entry naming one PF fails there with "
                    f"PciDeviceNotFoundById (a Nova 34 bug; fastvpd reads it as that PF's VFs); "
                    f"match the VFs by vendor_id, product_id and an address glob instead",
                    f"device_spec entry [{index}]"),)
            out.append(SpecVerdict(index, dict(spec.entry), spec, reasons))
    return out


def _with_serial(d: dict[str, Any]) -> dict[str, Any]:
    """A Nova dict as it would be with a card serial: which entry the operator meant for the
    device, whatever stops Nova from seeing its serial (that has its own reason)."""
    caps = d.get("capabilities", {})
    if caps.get("vpd", {}).get("card_serial_number"):
        return d
    return {**d, "capabilities": {**caps, "vpd": _SOME_SERIAL}}


# A VF to judge: (address, vf_num, its Nova dict; None when Nova does not track it)
_Row = tuple[str, "int | None", "dict[str, Any] | None"]


def _vf_rows(inventory: Inventory, pfs: tuple[PciDevice, ...],
             ) -> tuple[dict[str, list[_Row]], list[tuple[str | None, _Row]]]:
    """The VFs of each PF from the Nova dicts (no VF details read), and the VFs whose PF is not
    in the scan. A VF's number is in its dict when its PF has a MAC; for a PF without one, its
    VFs are built (once, in bulk) to learn their numbers."""
    by_pf: dict[str | None, list[dict[str, Any]]] = {}
    tracked = set()
    for d in inventory.to_nova():
        tracked.add(d["address"])
        if d["dev_type"] == TYPE_VF:
            by_pf.setdefault(d["parent_addr"], []).append(d)
    untracked = [dev for dev in (inventory[a] for a in inventory if a not in tracked)
                 if dev.is_vf]
    rows: dict[str, list[_Row]] = {}
    for pf in pfs:
        numbers: dict[str, int | None] = {}
        if pf.mac_address is None and pf.address in by_pf:
            numbers = {vf.address: vf.vf_num for vf in inventory.vfs(pf.address)}
        mine: list[_Row] = []
        for d in by_pf.pop(pf.address, ()):
            sriov = d.get("capabilities", {}).get("sriov")
            number = sriov["vf_num"] if sriov else numbers.get(d["address"])
            mine.append((d["address"], number, d))
        rows[pf.address] = mine
    stray: list[tuple[str | None, _Row]] = [
        (parent, (d["address"], None, d)) for parent, ds in by_pf.items() for d in ds]
    for vf in untracked:
        row: _Row = (vf.address, vf.vf_num, None)
        if vf.parent_addr in rows:
            rows[vf.parent_addr].append(row)
        else:
            stray.append((vf.parent_addr, row))
    for mine in rows.values():
        mine.sort(key=lambda r: (r[1] is None, r[1] or 0, r[0]))
    return rows, stray


def _virtfn_reason(vf: str, pf: str | None) -> Reason:
    return Reason("virtfn-missing", NOVA, f"its PF {pf} has no virtfn link to {vf} (as while "
                  f"sriov_numvfs is being changed), so its VF number is unknown: Nova 34 raises "
                  f"PciDeviceNotFoundById for it and reports no PCI device at all on this host; "
                  f"check again when the VFs have settled", vf)


def _host_virtfn_reason(missing: list[str]) -> list[Reason]:
    """One VF without its number hides every device of the host from Nova 34."""
    if not missing:
        return []
    listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return [Reason("virtfn-missing", NOVA, f"{len(missing)} VF{'s' if len(missing) > 1 else ''} "
                   f"without a virtfn link ({listed}): Nova 34 reports no PCI device at all on "
                   f"this host while that lasts, so no VF here can back any port", "host")]


class _VfJudge:
    """Judges VFs: the host's reasons every VF shares, the spec reasons (one object per entry,
    shared by every VF it concerns), and how many VFs each entry is the first match of."""

    def __init__(self, entries: list[SpecVerdict] | None, every_vf: tuple[Reason, ...]) -> None:
        self.every_vf = every_vf
        # a VF with its own virtfn-missing reason does not repeat the host's
        self.unnumbered = tuple(r for r in every_vf if r.code != "virtfn-missing")
        self.specs = None if entries is None else [(e.index, e.spec) for e in entries
                                                   if e.spec is not None]
        self.counts = [0] * len(entries or ())
        self.cache: dict[tuple[str, int], Reason] = {}
        self.no_match = Reason("no-matching-spec", NOVA, "no [pci] device_spec entry matches "
                               "this VF: Nova does not track it", "[pci] device_spec")

    def verdict(self, row: _Row, pf: str | None, base: tuple[Reason, ...],
                stray: bool = False) -> VfVerdict:
        address, vf_num, d = row
        own: list[Reason] = []
        if d is None:
            own.append(Reason("vf-ids-unreadable", NOVA, f"the vendor or device ID of {address} "
                              f"cannot be read, and Nova does not track such a device "
                              f"(fastvpd scan shows the problem)", address))
        if stray:
            own.append(Reason("vf-without-pf", NOVA, f"the PF of {address} "
                              f"({pf or 'unknown'}) is not in the scan (gone, or its physfn "
                              f"link leads nowhere): Nova reports the VF without a card serial "
                              f"number, pf_mac_address or vf_num, so it never gives it to a "
                              f"remote-managed port", address))
        elif vf_num is None:
            own.append(_virtfn_reason(address, pf))
        index, remote_managed = None, False
        if self.specs is not None and d is not None:
            probe = _with_serial(d)
            found = next(((i, s) for i, s in self.specs if s.match(probe)), None)
            if found is None:
                own.append(self.no_match)
            else:
                index, spec = found
                self.counts[index] += 1
                remote_managed = spec.remote_managed
                if not remote_managed:
                    own.append(self._spec_reason("spec-not-remote-managed", index, spec))
                elif not spec.nova_trait_value:
                    own.append(self._spec_reason("trait-trap", index, spec))
        host = self.unnumbered if vf_num is None and not stray else self.every_vf
        return VfVerdict(address, pf, vf_num, host + base + tuple(own), index, remote_managed)

    def _spec_reason(self, code: str, index: int, spec: DeviceSpec) -> Reason:
        r = self.cache.get((code, index))
        if r is None:
            where = f"device_spec entry [{index}]"
            if code == "spec-not-remote-managed":
                message = (f"{where} {json.dumps(spec.entry)} is the first to match this VF and "
                           f"does not tag it remote_managed: Nova pools it for ordinary ports "
                           f"and never gives it to a remote-managed port")
            else:
                message = (f"{where} has remote_managed {spec.tags.get('remote_managed')!r}: "
                           f"Nova 34 takes its VFs out of the ordinary pools but reports "
                           f"{TRAIT_REMOTE_MANAGED_PORTS} only for the text \"true\", so they "
                           f"serve no port at all; write \"remote_managed\": \"true\"")
            r = self.cache[(code, index)] = Reason(code, NOVA, message, where)
        return r


def _cards(inventory: Inventory, pfs: tuple[PciDevice, ...], rows: dict[str, list[_Row]],
           judge: _VfJudge) -> list[CardVerdict]:
    """The PFs grouped by PCI slot, each card with its reasons, its PFs' and their VFs'."""
    mac_owners: dict[str, list[str]] = {}
    by_slot: dict[str, list[PciDevice]] = {}
    for pf in pfs:
        if pf.mac_address and not _is_zero_mac(pf.mac_address):
            mac_owners.setdefault(pf.mac_address.lower(), []).append(pf.address)
        by_slot.setdefault(pf.address.rpartition(".")[0], []).append(pf)
    slots_of: dict[str, list[str]] = {}
    for slot, members in by_slot.items():
        for serial in dict.fromkeys(pf.card_serial_number for pf in members):
            if serial:
                slots_of.setdefault(serial, []).append(slot)
    cards = []
    for slot, members in by_slot.items():
        card_reasons = tuple(_card_reasons(slot, members, slots_of))
        verdicts = []
        for pf in members:
            base = card_reasons + tuple(_serial_reasons(inventory, pf)
                                        + _mac_reasons(pf, mac_owners))
            vfs = tuple(judge.verdict(row, pf.address, base) for row in rows[pf.address])
            verdicts.append(PfVerdict(pf.address, pf.netdevs[0] if pf.netdevs else None,
                                      pf.mac_address, pf.card_serial_number, base, vfs))
        serials = tuple(dict.fromkeys(pf.card_serial_number for pf in members
                                      if pf.card_serial_number))
        name = next((pf.vpd.name for pf in members if pf.vpd is not None and pf.vpd.name), None)
        cards.append(CardVerdict(slot, serials, name, card_reasons, tuple(verdicts)))
    return cards


def check(inventory: Inventory,
          specs: Iterable[str | Mapping[str, Any] | DeviceSpec] | None = None) -> Report:
    """Whether each VF of a scanned host can back a remote-managed port, and every reason not.

    ``inventory`` is a `fastvpd.scan` with VPD read (the default; a tolerant scan also tells
    where libvirt would reject a blob). ``specs`` are the ``[pci] device_spec`` values, as
    nova.conf holds them (JSON text, dicts, or `DeviceSpec` objects): each entry is checked on
    its own, so every invalid one is reported; None checks the hardware facts only. The facts
    come from the inventory alone: no VF details are read unless a PF has no MAC address
    (docs/doctor.md says what each reason means and when the verdict is "ready").
    """
    entries = None if specs is None else _load_specs(inventory, specs)
    pfs = inventory.pfs()
    rows, stray = _vf_rows(inventory, pfs)
    missing = [r[0] for mine in rows.values() for r in mine if r[1] is None]
    every_vf = tuple(r for e in entries or () for r in e.reasons) + tuple(
        _host_virtfn_reason(missing))
    judge = _VfJudge(entries, every_vf)
    cards = _cards(inventory, pfs, rows, judge)
    strays = tuple(judge.verdict(row, parent, (), stray=True) for parent, row in stray)

    host_reasons = list(every_vf)
    notes: list[Reason] = []
    all_vfs = [vf for card in cards for pf in card.pfs for vf in pf.vfs] + list(strays)
    if not all_vfs:
        host_reasons.append(Reason("no-vfs", NOVA, "this host has no SR-IOV VF (no PF has a "
                                   "virtfn link): nothing here can back a remote-managed port",
                                   "host"))
    if entries is None:
        notes.append(Reason("no-device-spec", FASTVPD, "no device_spec given: only the hardware "
                            "facts were checked; give nova.conf (--config) or the entries "
                            "(--spec) to check what Nova makes of them", "[pci] device_spec"))
    else:
        if all_vfs and not any(vf.remote_managed for vf in all_vfs):
            host_reasons.append(Reason(
                "no-remote-managed-vf", NOVA, "no device_spec entry tags a VF of this host "
                f"remote_managed: Nova reports no {TRAIT_REMOTE_MANAGED_PORTS} here and "
                "schedules no remote-managed port to this host", "[pci] device_spec"))
        entries = [SpecVerdict(e.index, e.entry, e.spec, e.reasons, n)
                   for e, n in zip(entries, judge.counts)]
        notes += [Reason("spec-matches-no-vf", FASTVPD, f"device_spec entry [{e.index}] "
                         f"{json.dumps(e.entry)} is the first match of no VF on this host",
                         f"device_spec entry [{e.index}]")
                  for e in entries if e.spec is not None and e.vfs == 0]
    return Report(inventory.sysfs, tuple(cards), tuple(host_reasons), tuple(notes),
                  None if entries is None else tuple(entries), strays)


# -- text ------------------------------------------------------------------------------------------

def _status(ready: bool, good: int, total: int) -> str:
    return f"{'ready' if ready else 'NOT READY'}, {good}/{total} VFs"


def _write_reasons(w: Callable[[str], Any], reasons: Iterable[Reason], indent: str,
                   printed: set[int]) -> None:
    """Each reason in full the first time the output shows it; by its code after that."""
    for r in reasons:
        if id(r) in printed:
            w(f"{indent}{r.code}: as above\n")
        else:
            printed.add(id(r))
            w(f"{indent}{r.code} ({r.component}): {shown(r.message)}\n")


def _vf_groups(vfs: tuple[VfVerdict, ...]) -> list[list[VfVerdict]]:
    """Runs of VFs with consecutive numbers, the same verdict and the same entry."""
    groups: list[list[VfVerdict]] = []
    for vf in vfs:
        last = groups[-1][-1] if groups else None
        if (last is not None and vf.vf_num is not None and last.vf_num is not None
                and vf.vf_num == last.vf_num + 1 and vf.reasons == last.reasons
                and vf.spec == last.spec):
            groups[-1].append(vf)
        else:
            groups.append([vf])
    return groups


def _write_vfs(w: Callable[[str], Any], vfs: tuple[VfVerdict, ...], above: set[int],
               indent: str, printed: set[int]) -> None:
    for group in _vf_groups(vfs):
        first, last = group[0], group[-1]
        if first.vf_num is None:
            label = f"VF ? ({first.address})"
        elif len(group) == 1:
            label = f"VF {first.vf_num} ({first.address})"
        else:
            label = f"VFs {first.vf_num}-{last.vf_num} ({first.address} .. {last.address})"
        if first.ready:
            spec = "" if first.spec is None else f", device_spec [{first.spec}]"
            w(f"{indent}{label}: ready{spec}\n")
            continue
        own = [r for r in first.reasons if id(r) not in above]
        if not own:
            w(f"{indent}{label}: NOT READY (the reasons above)\n")
        elif all(id(r) in printed for r in own):
            w(f"{indent}{label}: NOT READY: {', '.join(r.code for r in own)} (as above)\n")
        else:
            w(f"{indent}{label}: NOT READY\n")
            _write_reasons(w, own, indent + "  ", printed)


def format_report(report: Report, out: TextIO, *, source: str | None = None) -> None:
    """The report as an operator reads it: the host's reasons, then per card a summary line, its
    PFs and their VFs in runs that share a verdict, then a last line with the verdict.
    ``source`` says where the ``device_spec`` entries came from."""
    w = out.write
    where = shown(report.sysfs or "the inventory")
    if report.specs is None:
        w(f"fastvpd doctor: {where}; no device_spec given, hardware facts only\n")
    else:
        n = len(report.specs)
        w(f"fastvpd doctor: {where}; {n} device_spec entr{'y' if n == 1 else 'ies'}"
          + (f" from {shown(source)}" if source else "") + "\n")
    printed: set[int] = set()
    host = {id(r) for r in report.reasons}
    if report.reasons:
        w("\nhost: NOT READY\n")
        _write_reasons(w, report.reasons, "  ", printed)
    for card in report.cards:
        vfs = card.vfs
        serial = (f"serial {', '.join(shown(s) for s in card.serials)}" if card.serials
                  else "no serial number")
        name = f"  ({shown(card.name)})" if card.name else ""
        w(f"\ncard {card.slot}  {serial}: "
          f"{_status(card.ready, sum(1 for vf in vfs if vf.ready), len(vfs))}{name}\n")
        _write_reasons(w, card.reasons, "  ", printed)
        card_ids = host | {id(r) for r in card.reasons}
        for pf in card.pfs:
            netdev = shown(pf.netdev) if pf.netdev else "no netdev"
            w(f"  PF {pf.address}  {netdev}  {pf.mac_address or 'no MAC'}: "
              f"{_status(pf.ready, pf.ready_vfs, len(pf.vfs))}\n")
            _write_reasons(w, [r for r in pf.reasons if id(r) not in card_ids], "    ", printed)
            if not pf.vfs:
                w("    no VFs (no virtfn link)\n")
            _write_vfs(w, pf.vfs, host | {id(r) for r in pf.reasons}, "    ", printed)
    if report.stray_vfs:
        w("\nVFs whose PF is not in the scan\n")
        _write_vfs(w, report.stray_vfs, host, "  ", printed)
    if report.notes:
        w("\n")
        for r in report.notes:
            w(f"note: {shown(r.message)}\n")
    counted = report.counted_vfs()
    what = "VFs" if report.specs is None else "VFs that device_spec tags remote_managed"
    verdict = "ready" if report.ready else "NOT READY"
    w(f"\n{verdict}: {sum(1 for vf in counted if vf.ready)} of {len(counted)} {what} can back "
      f"a remote-managed port (exit status {report.exit_status})\n")
