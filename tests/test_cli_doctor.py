"""``fastvpd doctor`` as an operator and a script run it: the real console script in a subprocess
with a timeout (tests/support.py), on synthetic hosts broken the way real hosts break."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import fastvpd
from fastvpd import testing
from fastvpd.doctor import CODES, check
from fastvpd.testing import DpuSpec, HostSpec
from tests.support import cli, scratch_dir, without_dac_override

RM = '{"vendor_id": "15b3", "product_id": "101e", "remote_managed": "true"}'


@pytest.fixture(scope="module")
def healthy() -> Iterator[testing.BuiltHost]:
    """Two DPUs x 2 PFs x 4 VFs, VFs on vfio-pci as on a DPU host."""
    with scratch_dir("doctor") as d:
        yield testing.dpu_host(os.path.join(d, "sys"), cards=2, pfs_per_card=2, vfs_per_pf=4,
                               vf_driver="vfio-pci", vf_netdevs=False)


@pytest.fixture
def broken() -> Iterator[testing.BuiltHost]:
    """Card 0 fine; card 1 without VPD; card 2's PF without netdev."""
    with scratch_dir("doctor-broken") as d:
        yield testing.build_host(os.path.join(d, "sys"), HostSpec(dpus=[
            DpuSpec(pfs=1, vfs_per_pf=3), DpuSpec(pfs=1, vfs_per_pf=2, vpd=False),
            DpuSpec(pfs=1, vfs_per_pf=2, pf_driver="vfio-pci", pf_netdevs=False,
                    vf_netdevs=False)]))


def doctor(*argv: str, status: int, **kw: object) -> str:
    proc = cli("doctor", *argv, **kw)  # type: ignore[arg-type]
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr == "" and "Traceback" not in proc.stdout
    return proc.stdout


def test_a_ready_host_exits_0_with_a_summary_line_per_card(healthy: testing.BuiltHost) -> None:
    out = doctor("--sysfs", healthy.root, "--spec", RM, status=0)
    lines = out.splitlines()
    assert lines[0] == f"fastvpd doctor: {healthy.root}; 1 device_spec entry from --spec"
    cards = [line for line in lines if line.startswith("card ")]
    assert [c.split()[1] for c in cards] == ["0000:03:00", "0000:04:00"]
    for line, card in zip(cards, healthy.cards):
        assert line.startswith(f"card {line.split()[1]}  serial {card.serial}: ready, 8/8 VFs  (")
    for pf in healthy.pfs:
        f = healthy.functions[pf]
        (pf_line,) = [line for line in lines if line.startswith(f"  PF {pf} ")]
        assert pf_line == f"  PF {pf}  {f.netdevs[0]}  {f.mac_address}: ready, 4/4 VFs"
        assert f"    VFs 0-3 ({f.vfs[0]} .. {f.vfs[-1]}): ready, device_spec [0]" in lines
    assert lines[-1] == ("ready: 16 of 16 VFs that device_spec tags remote_managed can back a "
                         "remote-managed port (exit status 0)")
    bare = doctor("--sysfs", healthy.root, status=0)
    assert "no device_spec given, hardware facts only" in bare.splitlines()[0]
    assert "note: no device_spec given" in bare
    assert bare.splitlines()[-1].startswith("ready: 16 of 16 VFs can back")


def test_a_broken_host_exits_1_and_names_each_reason(broken: testing.BuiltHost) -> None:
    out = doctor("--sysfs", broken.root, "--spec", RM, status=1)
    lines = out.splitlines()
    assert "card 0000:03:00  serial MT2113X00000: ready, 3/3 VFs" in out
    assert "card 0000:04:00  no serial number: NOT READY, 0/2 VFs" in lines
    no_vpd, no_netdev = broken.pfs[1], broken.pfs[2]
    assert any(line.startswith(f"    vpd-missing (Nova): {no_vpd} has no VPD") for line in lines)
    assert any(line.startswith(f"    pf-no-netdev (Neutron's OVN driver): {no_netdev} has no "
                               "netdev") for line in lines)
    assert f"  PF {no_netdev}  no netdev  no MAC: NOT READY, 0/2 VFs" in lines
    assert lines[-1] == ("NOT READY: 3 of 7 VFs that device_spec tags remote_managed can back a "
                         "remote-managed port (exit status 1)")


def test_json_has_one_object_per_device_with_stable_codes(broken: testing.BuiltHost) -> None:
    data = json.loads(doctor("--sysfs", broken.root, "--spec", RM, "--json", status=1))
    assert data == json.loads(json.dumps(check(fastvpd.scan(broken), [RM]).to_dict()))
    assert data["ready"] is False and data["exit_status"] == 1
    devices = {d["address"]: d for d in data["devices"]}
    assert sorted(devices) == sorted(broken.pfs + broken.vfs)
    for address, d in devices.items():
        assert set(d) >= {"address", "dev_type", "card", "ready", "reasons"}
        assert d["ready"] == (d["reasons"] == [])
        for r in d["reasons"]:
            assert r["code"] in CODES and r["component"] == CODES[r["code"]][0]
    by_code = {address: [r["code"] for r in d["reasons"]] for address, d in devices.items()}
    card1, card2 = broken.cards[1], broken.cards[2]
    assert all(by_code[a] == ["vpd-missing"] for a in card1.pfs + card1.vfs)
    assert all(by_code[a] == ["pf-no-netdev"] for a in card2.pfs + card2.vfs)
    assert all(by_code[a] == [] for a in broken.cards[0].pfs + broken.cards[0].vfs)
    vf = devices[card2.vfs[0]]
    assert (vf["pf"], vf["vf_num"], vf["spec"], vf["remote_managed"]) == (
        card2.pfs[0], 0, 0, True)


def test_usage_errors_exit_2_with_the_doctor_usage(healthy: testing.BuiltHost) -> None:
    for argv in (["--spec", RM, "--config", "/etc/nova/nova.conf"], ["--bogus"], ["--spec"],
                 ["--sysfs"]):
        proc = cli("doctor", "--sysfs", healthy.root, *argv)
        assert proc.returncode == 2 and proc.stdout == "", argv
        assert proc.stderr.startswith("usage: fastvpd doctor") and "Traceback" not in proc.stderr
        assert "\nfastvpd doctor: error: " in proc.stderr


def test_runtime_errors_are_one_line_and_exit_1(healthy: testing.BuiltHost,
                                               tmp_path: Path) -> None:
    def one_line(*argv: str) -> str:
        proc = cli("doctor", *argv)
        assert proc.returncode == 1 and proc.stdout == "", (proc.stdout, proc.stderr)
        (line,) = proc.stderr.splitlines()
        assert line.startswith("fastvpd: error: ")
        return line

    assert "not a sysfs tree" in one_line("--sysfs", str(tmp_path))
    assert "No such file" in one_line("--sysfs", healthy.root, "--config",
                                      str(tmp_path / "none.conf"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # never waited on
    assert "not a regular file" in one_line("--sysfs", healthy.root, "--config", str(fifo))
    conf = tmp_path / "bad.conf"
    conf.write_text("[pci]\n  continued\n")
    assert f"{conf}: nova.conf line 2" in one_line("--sysfs", healthy.root, "--config", str(conf))


def test_a_nova_conf_is_read_as_nova_reads_it(healthy: testing.BuiltHost, tmp_path: Path) -> None:
    conf = tmp_path / "nova.conf"
    conf.write_text('[DEFAULT]\ndebug = true\n\n[pci]\n'
                    'device_spec = {"vendor_id": "15b3", "product_id": "101e",\n'
                    '  "remote_managed": "yes"}\n'
                    'device_spec = {"address": "0000:03:00.8"}\n')
    out = doctor("--sysfs", healthy.root, "--config", str(conf), status=1)
    lines = out.splitlines()
    assert lines[0] == (f"fastvpd doctor: {healthy.root}; 2 device_spec entries from {conf} "
                        "[pci] device_spec")
    assert lines[2] == "host: NOT READY"
    assert lines[3].startswith("  spec-invalid (Nova): Nova rejects device_spec entry [1]")
    assert sum(line.lstrip().startswith("trait-trap (Nova): ") for line in lines) == 1
    assert sum(line.endswith("NOT READY: trait-trap (as above)") for line in lines) == 3
    data = json.loads(doctor("--sysfs", healthy.root, "--config", str(conf), "--json", status=1))
    assert [s["valid"] for s in data["specs"]] == [True, False]
    assert data["specs"][0]["remote_managed"] is True
    assert data["specs"][0]["nova_trait_value"] is False
    assert {tuple(r["code"] for r in d["reasons"]) for d in data["devices"]
            if d["dev_type"] == "type-VF"} == {("spec-invalid", "trait-trap")}
    empty = tmp_path / "empty.conf"
    empty.write_text("[pci]\n")
    data = json.loads(doctor("--sysfs", healthy.root, "--config", str(empty), "--json", status=1))
    assert data["specs"] == [] and [r["code"] for r in data["reasons"]] == ["no-remote-managed-vf"]


def test_vpd_that_needs_root_is_named_as_such() -> None:
    """As a user who is not root every vpd read is refused: the doctor cannot know the serials,
    and says that it needs root rather than that the cards have none."""
    with scratch_dir("doctor-noroot") as d:
        h = testing.dpu_host(os.path.join(d, "sys"), cards=1, pfs_per_card=2, vfs_per_pf=2)
        for pf in h.pfs:
            testing.unreadable_attribute(h, pf, "vpd")
        proc = cli("doctor", "--sysfs", h.root, "--json", prefix=without_dac_override())
        assert proc.returncode == 1, proc.stderr
        data = json.loads(proc.stdout)
        for dev in data["devices"]:
            assert [(r["code"], r["component"]) for r in dev["reasons"]] == [
                ("vpd-needs-root", "fastvpd")]
            assert "run fastvpd doctor as root" in dev["reasons"][0]["message"]


def test_non_ascii_names_are_escaped() -> None:
    with scratch_dir("doctor-names") as d:
        h = testing.dpu_host(os.path.join(d, "sys"), cards=1, pfs_per_card=1, vfs_per_pf=1,
                             pf_driver=None)
        pf = h.pfs[0]
        net = os.fsencode(h.device_path(pf)) + b"/net/"
        os.rename(net + os.fsencode(h.functions[pf].netdevs[0]), net + b"eth\xfe0")
        testing.set_attribute(h, pf, "net/" + os.fsdecode(b"eth\xfe0") + "/address",
                              "00:00:00:00:00:00\n")
        for env in ({"LC_ALL": "C.UTF-8"}, {"LC_ALL": "C", "PYTHONIOENCODING": "ascii"}):
            out = doctor("--sysfs", h.root, status=1, env=env)
            assert f"  PF {pf}  eth\\xfe0  00:00:00:00:00:00: NOT READY, 0/1 VFs" in out
            assert f"pf-mac-zero (ovn-vif on the DPU): {pf} (eth\\xfe0) has the MAC" in out


def test_a_host_of_16_pfs_with_1024_vfs_each_gives_a_few_lines(tmp_path: Path) -> None:
    """16384 VFs: runs of VFs, not one line each; the JSON still has every device."""
    with scratch_dir("doctor-big") as d:
        h = testing.dpu_host(os.path.join(d, "sys"), cards=8, pfs_per_card=2, vfs_per_pf=1024,
                             vf_driver="vfio-pci", vf_netdevs=False)
        testing.remove_attribute(h, h.pfs[3], "virtfn700")
        out = doctor("--sysfs", h.root, "--spec", RM, status=1)
        lines = out.splitlines()
        assert len(lines) < 80
        pf = h.functions[h.pfs[3]]
        block = lines[lines.index(next(x for x in lines if x.startswith(f"  PF {pf.address} "))):]
        assert block[1] == (f"    VFs 0-699 ({pf.vfs[0]} .. {pf.vfs[699]}): NOT READY (the "
                            "reasons above)")
        assert block[2] == (f"    VFs 701-1023 ({pf.vfs[701]} .. {pf.vfs[1023]}): NOT READY (the "
                            "reasons above)")
        assert block[3] == f"    VF ? ({pf.vfs[700]}): NOT READY"
        assert block[4].startswith(f"      virtfn-missing (Nova): its PF {pf.address} has no "
                                   f"virtfn link to {pf.vfs[700]}")
        host = lines[lines.index("host: NOT READY") + 1]
        assert host.startswith(f"  virtfn-missing (Nova): 1 VF without a virtfn link "
                               f"({pf.vfs[700]}): Nova 34 reports no PCI device at all")
        data = json.loads(doctor("--sysfs", h.root, "--spec", RM, "--json", status=1))
        assert len(data["devices"]) == 16 + 16384 and data["counted_vfs"] == 16384
        assert {r["code"] for d in data["devices"] for r in d["reasons"]} == {"virtfn-missing"}
        assert re.fullmatch(r"NOT READY: 0 of 16384 VFs .* \(exit status 1\)", lines[-1])
