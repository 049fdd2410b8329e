"""``fastvpd profile`` and ``fastvpd devspec``, run as the console script is run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastvpd
from fastvpd import testing


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastvpd", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> testing.BuiltHost:
    """Card 0 has PF netdevs, card 1's PF has none (vfio-pci)."""
    spec = testing.HostSpec(dpus=[
        testing.DpuSpec(pfs=1, vfs_per_pf=3, vf_driver="vfio-pci", vf_netdevs=False),
        testing.DpuSpec(pfs=1, vfs_per_pf=2, pf_driver="vfio-pci", pf_netdevs=False,
                        vf_netdevs=False)])
    return testing.build_host(tmp_path_factory.mktemp("cli") / "sys", spec)


def test_profile_prints_the_binding_profile_json(host: testing.BuiltHost) -> None:
    vf0 = host.vfs[0]
    proc = run("profile", vf0, "--sysfs", host.root, "--physnet", "physnet1", "--remote-managed")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == fastvpd.binding_profile(
        fastvpd.scan(host), vf0, physical_network="physnet1", remote_managed=True)
    assert json.loads(proc.stdout)["vf_num"] == 0


def test_profile_errors_are_one_line_with_the_right_status(host: testing.BuiltHost) -> None:
    no_mac = next(a for a in host.vfs if host.functions[a].card == 1)
    proc = run("profile", no_mac, "--sysfs", host.root, "--remote-managed")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"fastvpd: error: {no_mac}: cannot bind a remote-managed port")
    assert "pf_mac_address" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("profile", "0000:99:00.0", "--sysfs", host.root)
    assert proc.returncode == 1 and "no PCI function 0000:99:00.0" in proc.stderr
    proc = run("profile", "99:00.0", "--sysfs", host.root)
    assert proc.returncode == 2 and "not a PCI address" in proc.stderr
    assert "usage: fastvpd profile" in proc.stderr


def test_devspec_lists_assignable_devices_and_warns_about_the_trait_trap(
        host: testing.BuiltHost) -> None:
    entry = '{"vendor_id": "15b3", "product_id": "101e", "remote_managed": "yes"}'
    proc = run("devspec", "--sysfs", host.root, "--spec", entry, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [d["address"] for d in out["assignable"]] == host.vfs
    assert out["remote_managed_trait"] is True and out["nova_34_reports_trait"] is False
    assert "serve no port at all" in proc.stderr and 'write "remote_managed": "true"' in proc.stderr
    text = run("devspec", "--sysfs", host.root, "--spec", entry)
    assert text.returncode == 0
    assert "COMPUTE_REMOTE_MANAGED_PORTS: reported (Nova 34: NOT reported)" in text.stdout
    fine = run("devspec", "--sysfs", host.root, "--spec",
               '{"product_id": "101e", "remote_managed": "true"}')
    assert fine.returncode == 0 and fine.stderr == ""
    assert "COMPUTE_REMOTE_MANAGED_PORTS: reported\n" in fine.stdout


def test_devspec_rejects_an_invalid_entry(host: testing.BuiltHost) -> None:
    proc = run("devspec", "--sysfs", host.root, "--spec", '{"product_id": "101e"}',
               "--spec", '{"address": "0000:03:00.8"}')
    assert proc.returncode == 1 and proc.stdout == ""
    assert "invalid device_spec" in proc.stderr and "address function" in proc.stderr
    pf = host.pfs[0]
    proc = run("devspec", "--sysfs", host.root, "--spec",
               json.dumps({"address": pf, "remote_managed": "true"}))
    assert proc.returncode == 1 and "PFs must not be remote_managed" in proc.stderr
    assert run("devspec", "--sysfs", host.root).returncode == 2  # --spec or --config


def test_devspec_reads_a_nova_conf(host: testing.BuiltHost, tmp_path: Path) -> None:
    conf = tmp_path / "nova.conf"
    conf.write_text('[DEFAULT]\ndebug = true\n\n[pci]\n'
                    'device_spec = {"vendor_id": "15b3",\n'
                    '  "product_id": "101e", "physical_network": null}\n'
                    'device_spec = {"product_id": "a2d6"}\n')
    proc = run("devspec", "--sysfs", host.root, "--config", str(conf), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [s["entry"] for s in out["specs"]] == [
        {"vendor_id": "15b3", "product_id": "101e", "physical_network": None},
        {"product_id": "a2d6"}]
    assert {d["address"] for d in out["assignable"]} == set(host.vfs) | set(host.pfs)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = run("devspec", "--sysfs", host.root, "--config", str(fifo))
    assert proc.returncode == 1 and "not a regular file" in proc.stderr
    proc = run("devspec", "--sysfs", host.root, "--config", str(tmp_path / "none.conf"))
    assert proc.returncode == 1 and "No such file" in proc.stderr


def test_demo_shows_profiles_of_a_few_vfs_vf0_among_them() -> None:
    proc = run("demo", "--synthetic", "--vfs", "4")
    assert proc.returncode == 0, proc.stderr
    section = proc.stdout.split("the binding:profile Nova sends Neutron", 1)[1]
    lines = [line for line in section.splitlines()[1:4]]
    profiles = [json.loads(line.split(": ", 1)[1]) for line in lines]
    assert profiles[0]["vf_num"] == 0 and profiles[1]["vf_num"] == 1
    assert all(p["card_serial_number"].startswith("MT2113X") for p in profiles)
