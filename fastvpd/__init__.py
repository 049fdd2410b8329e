"""fastvpd: PCI VPD and SR-IOV facts for compute agents on hosts with SmartNIC DPUs.

``parse_vpd``/``build_vpd`` decode and encode PCI Vital Product Data; the errors all derive
from `FastVpdError`.
"""

from .errors import (
    DeviceNotFound,
    DeviceSpecError,
    FastVpdError,
    ProfileError,
    SysfsError,
    VpdFormatError,
)
from .vpd import Vpd, build_vpd, parse_vpd

__version__ = "0.1.0"

__all__ = [
    "DeviceNotFound",
    "DeviceSpecError",
    "FastVpdError",
    "ProfileError",
    "SysfsError",
    "Vpd",
    "VpdFormatError",
    "build_vpd",
    "parse_vpd",
]
