"""fastvpd: PCI VPD and SR-IOV facts for compute agents on hosts with SmartNIC DPUs.

``parse_vpd``/``build_vpd`` decode and encode PCI Vital Product Data; ``scan`` walks a host's
sysfs in one pass into an `Inventory`, whose ``to_nova()`` gives Nova's device dicts;
``binding_profile`` the Neutron port profile (`fastvpd.profile` also has the ``device_spec``
entries); the errors all derive from `FastVpdError`.
"""

from .errors import (
    DeviceNotFound,
    DeviceSpecError,
    FastVpdError,
    LibvirtError,
    NetdevNotFound,
    ProfileError,
    SysfsError,
    VpdFormatError,
)
from .model import DeviceFacts, Inventory, PciAddress, PciDevice
from .profile import binding_profile
from .scanner import ScanResult, Scanner, scan
from .vpd import Vpd, build_vpd, parse_vpd

__version__ = "0.1.0"

__all__ = [
    "DeviceFacts",
    "DeviceNotFound",
    "DeviceSpecError",
    "FastVpdError",
    "Inventory",
    "LibvirtError",
    "NetdevNotFound",
    "PciAddress",
    "PciDevice",
    "ProfileError",
    "ScanResult",
    "Scanner",
    "SysfsError",
    "Vpd",
    "VpdFormatError",
    "binding_profile",
    "build_vpd",
    "parse_vpd",
    "scan",
]
