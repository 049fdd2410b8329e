"""fastvpd.profile on its own: errors that name what is wrong, specs without a host, nova.conf.

What Nova itself does with the same profiles and specs is in tests/test_nova_profiles.py.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import pytest

import fastvpd
from fastvpd import DeviceSpecError, ProfileError, testing
from fastvpd.profile import (TRAIT_REMOTE_MANAGED_PORTS, VNIC_TYPE_REMOTE_MANAGED, DeviceSpec,
                             assignable_devices, binding_profile, device_specs_from_nova_conf,
                             exposes_remote_managed_trait, load_device_specs, migration_profile)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> testing.BuiltHost:
    return testing.dpu_host(tmp_path_factory.mktemp("profile") / "sys", cards=2,
                            pfs_per_card=1, vfs_per_pf=3, nics=[testing.NicSpec()])


@pytest.fixture(scope="module")
def inv(host: testing.BuiltHost) -> fastvpd.Inventory:
    return fastvpd.scan(host)


def test_names_of_the_contract() -> None:
    assert VNIC_TYPE_REMOTE_MANAGED == "remote-managed"
    assert TRAIT_REMOTE_MANAGED_PORTS == "COMPUTE_REMOTE_MANAGED_PORTS"
    assert fastvpd.binding_profile is binding_profile


def test_profile_of_a_vf_pf_and_plain_function(inv: fastvpd.Inventory,
                                               host: testing.BuiltHost) -> None:
    vf = inv.vfs()[0]
    assert binding_profile(inv, vf.address, physical_network="physnet1") == {
        "pci_vendor_info": "15b3:101e", "pci_slot": vf.address, "physical_network": "physnet1",
        "card_serial_number": testing.dpu_serial(0), "pf_mac_address": vf.pf_mac_address,
        "vf_num": 0}
    pf = inv.pfs()[0]
    assert binding_profile(inv, pf.address)["device_mac_address"] == pf.mac_address
    nic = next(d for d in inv.values() if d.dev_type == "type-PCI" and d.netdevs)
    assert list(binding_profile(inv, nic.address)) == ["pci_vendor_info", "pci_slot",
                                                       "physical_network"]


def test_profile_errors(inv: fastvpd.Inventory, tmp_path: Path) -> None:
    with pytest.raises(fastvpd.DeviceNotFound) as e:
        binding_profile(inv, "0000:99:00.0")
    assert e.value.address == "0000:99:00.0"
    with pytest.raises(TypeError, match="physical_network"):
        binding_profile(inv, inv.vfs()[0].address, physical_network=5)  # type: ignore[arg-type]
    bare = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=1, vpd=False,
                            pf_netdevs=False)
    vf = bare.vfs[0]
    with pytest.raises(ProfileError) as err:
        binding_profile(fastvpd.scan(bare), vf, remote_managed=True)
    message = str(err.value)
    assert err.value.address == vf and message.startswith(f"{vf}: cannot bind")
    assert "card_serial_number" in message and "pf_mac_address" in message  # both, at once
    assert "no netdev with a MAC address" in message


def test_profiles_read_no_vf_details(tmp_path: Path) -> None:
    """A profile comes from the scan alone: the VF's directory may be gone by now."""
    host = testing.dpu_host(tmp_path / "sys", cards=1, pfs_per_card=1, vfs_per_pf=4)
    inv = fastvpd.scan(host)
    vf = host.vfs[2]
    testing.dangling_device_link(host, vf)
    assert binding_profile(inv, vf, remote_managed=True)["vf_num"] == 2
    specs = load_device_specs([{"product_id": "101e", "remote_managed": "true"}], inv)
    assert exposes_remote_managed_trait(inv, specs)
    assert any(p.startswith("entry: dangling link") for p in inv[vf].problems)  # read only now


def test_migration_profile_keeps_foreign_keys_and_refreshes_present_ones(
        inv: fastvpd.Inventory) -> None:
    src, dst = inv.vfs()[0], inv.vfs()[4]
    source = {**binding_profile(inv, src.address), "trusted": "true"}
    moved = migration_profile(source, inv, dst.address)
    assert moved["trusted"] == "true" and moved["vf_num"] == dst.vf_num
    assert moved["card_serial_number"] == dst.card_serial_number
    assert list(moved)[:3] == list(source)[:3]  # Nova updates the copy in place
    assert source["vf_num"] == 0  # the input is not touched


# -- device specs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("entry, field", [
    ({"vendor_id": "zz"}, "vendor_id"),
    ({"vendor_id": 5555}, "vendor_id"),
    ({"product_id": "10000"}, "product_id"),
    ({"address": "0000:03:00.8"}, "address function"),
    ({"address": "0000:03:20.0"}, "address slot"),
    ({"address": "1:2:3:4"}, "more than three"),
    ({"address": {"bus": "("}}, "address bus"),
    ({"address": 5}, "neither a glob"),
    ({"address": "0000:03:00.0", "devname": "eth0"}, "devname or address"),
    ({"managed": "maybe"}, "tag managed"),
    ({"one_time_use": "true"}, "report_in_placement"),
])
def test_spec_errors_name_the_entry_and_the_field(entry: dict, field: str) -> None:
    with pytest.raises(DeviceSpecError) as e:
        load_device_specs([entry])
    assert str(e.value).startswith("device_spec entry {") and field in str(e.value)


def test_a_bad_entry_fails_the_whole_load() -> None:
    with pytest.raises(DeviceSpecError, match="not valid JSON"):
        load_device_specs(['{"vendor_id": "15b3"}', "{nope"])
    with pytest.raises(DeviceSpecError, match="a dict or a list"):
        load_device_specs(["5"])
    with pytest.raises(DeviceSpecError, match="expected a dict"):
        load_device_specs(['[{"vendor_id": "15b3"}, 5]'])
    assert len(load_device_specs(['[{"vendor_id": "15b3"}, {}]', {"product_id": "1533"}])) == 3
    assert load_device_specs([{"one_time_use": "true"}], report_in_placement=True)[0].tags == {
        "one_time_use": "true"}


def test_specs_match_without_a_host(inv: fastvpd.Inventory) -> None:
    """Unbound: an address naming a PF matches its VFs through their parent; devname needs one."""
    pf = inv.pfs()[0]
    spec = load_device_specs([{"address": pf.address}])[0]
    matched = {d.address for d in inv.values() if spec.match(d)}
    assert matched == {pf.address} | {v.address for v in inv.vfs(pf.address)}
    assert matched == {d.address for d in inv.values() if spec.bind(inv).match(d)}
    named = load_device_specs([{"devname": pf.netdevs[0]}])[0]
    with pytest.raises(DeviceSpecError, match="resolved on a host"):
        named.match(pf)
    assert {d.address for d in inv.values() if named.bind(inv).match(d)} == matched
    gone = load_device_specs([{"devname": "nope0"}], inv)[0]
    assert not any(gone.match(d) for d in inv.values())
    assert spec.names_one_pf is None and named.names_one_pf is None  # unbound: not known
    assert spec.bind(inv).names_one_pf is True and named.bind(inv).names_one_pf is True
    vf = inv.vfs(pf.address)[0]
    assert load_device_specs([{"address": vf.address}], inv)[0].names_one_pf is False
    assert gone.names_one_pf is False
    with pytest.raises(DeviceSpecError, match="not present on the host"):
        load_device_specs([{"devname": "nope0", "remote_managed": "yes"}], inv)


def test_remote_managed_specs_and_the_trait(inv: fastvpd.Inventory) -> None:
    vf = inv.vfs()[0]
    yes = load_device_specs([{"vendor_id": "15b3", "product_id": "101e",
                              "remote_managed": "yes"}], inv)
    assert yes[0].remote_managed and not yes[0].nova_trait_value  # the trait trap
    assert exposes_remote_managed_trait(inv, yes)
    assigned = assignable_devices(inv, yes)
    assert [d.address for d, _ in assigned] == [d.address for d in inv.vfs()]
    true = load_device_specs([{"product_id": "101e", "remote_managed": "TRUE"}], inv)
    assert true[0].nova_trait_value and exposes_remote_managed_trait(inv, true)
    plain = load_device_specs([{"product_id": "101e"}], inv)
    assert not exposes_remote_managed_trait(inv, plain)
    assert yes[0].match(vf) and yes[0].match(vf.nova_dict())
    pf = vf.parent_addr
    with pytest.raises(DeviceSpecError, match="PFs must not be remote_managed"):
        load_device_specs([{"address": pf, "remote_managed": "true"}], inv)
    ok = load_device_specs([{"address": pf, "product_id": "101e", "remote_managed": "true"}], inv)
    assert {d.address for d in inv.values() if ok[0].match(d)} == {
        v.address for v in inv.vfs(pf)}
    # without a host the PF check cannot be made: it is made when the spec is bound
    unbound = load_device_specs([{"address": pf, "remote_managed": "true"}])[0]
    with pytest.raises(DeviceSpecError, match="PFs must not be remote_managed"):
        unbound.bind(inv)


def test_spec_is_immutable_and_keeps_the_entry_apart() -> None:
    entry = {"vendor_id": "15b3", "physical_network": "p1", "extra": {"a": 1}}
    spec = DeviceSpec.from_entry(entry)
    entry["extra"]["a"] = 2
    assert spec.tags == {"physical_network": "p1", "extra": {"a": 1}}
    assert spec.entry["vendor_id"] == "15b3"
    with pytest.raises(AttributeError):
        spec.vendor_id = "8086"  # type: ignore[misc]


# -- nova.conf -------------------------------------------------------------------------------------

CONFS = {
    "two values": '[pci]\ndevice_spec = {"vendor_id": "15b3"}\ndevice_spec={"address": "0000:03:00.*"}\n',
    "continuation": '[pci]\ndevice_spec = {"vendor_id": "15b3",\n  "product_id": "101e"}\n\n[DEFAULT]\ndebug=true\n',
    "quoted": "[pci]\ndevice_spec = '{\"vendor_id\": \"15b3\"}'\n",
    "section case": '[PCI]\ndevice_spec = {"vendor_id": "15b3"}\n[Default]\npci_passthrough_whitelist = {}\n',
    "deprecated first": '[pci]\ndevice_spec = {"vendor_id": "2"}\npassthrough_whitelist = {"vendor_id": "1"}\n'
                        '[DEFAULT]\npci_passthrough_whitelist = {"vendor_id": "4"}\n',
    "colon": '[pci]\ndevice_spec: {"vendor_id": "15b3"}\n',
    "key case": '[pci]\nDevice_Spec = {"vendor_id": "15b3"}\n',
    "comments": '[pci]\n# device_spec = {"x": 1}\n; y\ndevice_spec = {"a": 1} # kept\n',
    "empty": '[pci]\ndevice_spec =\n',
    "none": '[DEFAULT]\ndebug = true\n',
}


@pytest.mark.parametrize("name", sorted(CONFS))
def test_nova_conf_is_read_as_oslo_config_reads_it(name: str) -> None:
    """The real thing: oslo.config (installed with Nova for the tests) on the same file."""
    if importlib.util.find_spec("oslo_config") is None:
        reason = "oslo.config is not installed (the README's test command installs it with nova)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from oslo_config import cfg

    text = CONFS[name]
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(text)
        f.flush()
        conf = cfg.ConfigOpts()
        conf.register_opts([cfg.MultiStrOpt("device_spec", default=[], deprecated_opts=[
            cfg.DeprecatedOpt("passthrough_whitelist", group="pci"),
            cfg.DeprecatedOpt("pci_passthrough_whitelist", group="DEFAULT")])], group="pci")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conf(["--config-file", f.name], project="nova", default_config_files=[])
            theirs = list(conf.pci.device_spec)
    assert device_specs_from_nova_conf(text) == theirs


@pytest.mark.parametrize("text, message", [
    ("[pci\n", "invalid section"), ("[]\n", "invalid section"),
    ("[pci]\njust words\n", "no '=' or ':'"), ("[pci]\n= x\n", "empty key"),
    ("  indented first\n", "unexpected continuation"),
])
def test_nova_conf_errors(text: str, message: str) -> None:
    with pytest.raises(DeviceSpecError, match=message):
        device_specs_from_nova_conf(text)
