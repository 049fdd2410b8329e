"""Realistic sample VPD blobs for the demo, documentation and tests.

Built with `build_vpd` from keyword sets seen on real cards (the captures in tests/data/lspci and
tests/data/vpd); serial numbers are made up.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .vpd import build_vpd

__all__ = ["SAMPLES", "dpu_vpd"]


def dpu_vpd(serial: str, *, part_number: str = "MBF2M516A-CEEOT",
            name: str = "BlueField-2 DPU 100GbE Dual-Port QSFP56, Crypto Enabled, 16GB DDR") -> bytes:
    """VPD of a BlueField-2-like DPU card: the keyword layout Mellanox/NVIDIA cards carry."""
    return build_vpd(name, [
        ("PN", part_number),
        ("EC", "B3"),
        ("V2", part_number),
        ("SN", serial),
        ("V3", "a4c6bd2fb00c2e1180000c42a1c4e3f8"),
        ("VA", "MLX:MN=MLNX:CSKU=V2:UUID=V3:PCI=V0:MODL=BF2M516A"),
        ("V0", "PCIeGen4 x16"),
        ("RV", b"\0"),
    ])


def _nic_with_vpd_w() -> bytes:
    # Intel E810-like: vendor fields in VPD-R (one with a NUL, as real ones carry), a Dell system
    # field and an asset tag in VPD-W.
    return build_vpd("E810-XXV 25GbE Controller", [
        ("V0", b"FFV20.5.13\0"), ("PN", "VK88G"), ("MN", "1028"), ("SN", "TW0VK88G1234560ABC"),
        ("V1", "DSV1028VPDR.VER2.2"), ("V3", "DTINIC"), ("RV", b"\0\0\0"),
    ], [("Y0", "CCF1"), ("YA", "RACK12-U07"), ("RW", bytes(32))])


def _damaged() -> bytes:
    # A ConnectX-4 Lx-like blob whose EEPROM image was cut short: bad checksum, no end tag.
    blob = bytearray(build_vpd("CX4421A- ConnectX-4 LX SFP28", [
        ("PN", "MCX4421A-ACQN        "), ("EC", "AE"), ("SN", "MT2042X16761            "),
        ("V0", "PCIeGen3 x8     "),
    ]))
    blob[-2] ^= 0x5A  # the RV checksum byte, just before the end tag
    return bytes(blob[:-1])  # drop the end tag


SAMPLES: Mapping[str, bytes] = MappingProxyType({
    "dpu": dpu_vpd("MT2113X00042"),
    "nic-with-vpd-w": _nic_with_vpd_w(),
    "damaged": _damaged(),
})
