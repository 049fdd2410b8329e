"""Hypothesis strategies for synthetic host shapes (`fastvpd.testing.HostSpec`); shared by the scan
tests and the Nova contract tests.

`host_specs` draws whole hosts: DPU cards (PF count, VFs, SR-IOV layout or none, VPD or none or a
blob with a bad checksum, drivers, netdevs on PFs and VFs, NUMA), plain NICs and NVMe drives,
two PCI domains, bridges.
"""

from __future__ import annotations

from hypothesis import strategies as st

import fastvpd
from fastvpd.testing import DpuSpec, HostSpec, NicSpec, OtherSpec

BAD_CHECKSUM_VPD = fastvpd.build_vpd("Odd card", [("PN", "X1"), ("SN", "BADSUM0001")])
BAD_CHECKSUM_VPD = BAD_CHECKSUM_VPD[:-2] + bytes([(BAD_CHECKSUM_VPD[-2] + 1) & 0xFF]) + b"\x78"


@st.composite
def dpu_specs(draw: st.DrawFn) -> DpuSpec:
    vfs = draw(st.integers(0, 5))
    # total_vfs lays out the RIDs: up to 64 x stride 4 spills the later PFs' VFs onto higher
    # buses; total 0 (with no VF) is a function with SR-IOV files that is no PF.
    total = draw(st.one_of(st.none(), st.integers(vfs, 64)))
    return DpuSpec(
        pfs=draw(st.integers(1, 3)),
        vfs_per_pf=vfs,
        total_vfs=total,
        vpd=draw(st.booleans()),
        vpd_blob=draw(st.sampled_from([None, None, None, BAD_CHECKSUM_VPD])),
        vf_vpd=draw(st.booleans()),
        sriov_files=draw(st.booleans()),
        vf_stride=draw(st.integers(1, 4)),
        numa_node=draw(st.sampled_from([None, None, -1, 0, 1])),
        pf_driver=draw(st.sampled_from(["mlx5_core", "vfio-pci", None])),
        vf_driver=draw(st.sampled_from(["mlx5_core", None])),
        pf_netdevs=draw(st.booleans()),
        vf_netdevs=draw(st.booleans()),
    )


nic_specs = st.builds(NicSpec, functions=st.integers(1, 2), vpd=st.booleans(),
                      netdevs=st.booleans(), driver=st.sampled_from(["igb", None]),
                      numa_node=st.sampled_from([None, 0]))
other_specs = st.builds(OtherSpec, functions=st.integers(1, 2),
                        driver=st.sampled_from(["nvme", None]))
host_specs = st.builds(
    HostSpec,
    dpus=st.lists(dpu_specs(), max_size=3),
    nics=st.lists(nic_specs, max_size=2),
    others=st.lists(other_specs, max_size=1),
    numa_nodes=st.integers(0, 2),
    domain=st.sampled_from([0, 0x10, 0x10000]),  # 0x10000: an Intel VMD domain
    first_bus=st.sampled_from([0x03, 0x80]),
    bridges=st.booleans(),
)
