"""Runs Nova 34's own code for the oracle tests (tests/nova_oracle.py starts it; never import it).

Started as ``unshare --mount --propagation private python tests/nova_worker.py``: in its own
mount namespace it bind-mounts a synthetic sysfs tree on /sys for each request, because
``nova.pci.utils`` reads hard-coded /sys paths. It refuses to mount anything unless its mount
namespace differs from the one its parent named (``FASTVPD_PARENT_MNTNS``), so it can never cover
the real /sys of the machine.

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout. A request is
``{"sysfs": root | null, "uri": "test:///..." | null, "device_spec": [json, ...], "ops": [...]}``
and each op ``{"op": name, ...}``; the answer holds one result per op, where a Nova exception is
``{"raises": class name, "message": text}``. Nova is used unmodified: objects registered, config
set with ``CONF.set_override``, no eventlet monkey patching.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

warnings.simplefilter("ignore")  # eventlet's deprecation notice, oslo's policy warnings
logging.disable(logging.CRITICAL)

import libvirt  # noqa: E402

from nova import objects  # noqa: E402

objects.register_all()

import nova.conf  # noqa: E402
import nova.version  # noqa: E402
from nova.compute import manager  # noqa: E402
from nova.network import model as network_model  # noqa: E402
from nova.network import neutron  # noqa: E402
from nova.objects import migrate_data  # noqa: E402
from nova.pci import devspec, stats, utils, whitelist  # noqa: E402
from nova.virt import fake  # noqa: E402
from nova.virt.libvirt import driver  # noqa: E402

CONF = nova.conf.CONF
CONF([], project="nova", default_config_files=[])
libvirt.virEventRegisterDefaultImpl()
libvirt.registerErrorHandler(lambda *_: None, None)  # errors come back as exceptions


def _raised(e: BaseException) -> dict[str, str]:
    return {"raises": type(e).__name__, "message": str(e)}


@contextlib.contextmanager
def _sysfs(root: str | None) -> Iterator[None]:
    if root is None:
        yield
        return
    if os.readlink("/proc/self/ns/mnt") == os.environ.get("FASTVPD_PARENT_MNTNS"):
        raise RuntimeError("not in a private mount namespace: refusing to mount over /sys")
    subprocess.run(["mount", "--bind", root, "/sys"], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "/sys"], check=True)


def _pci_device(dev_dict: dict[str, Any]) -> objects.PciDevice:
    return objects.PciDevice.create(None, dict(dev_dict))


def _devices(op: dict[str, Any]) -> Any:
    """LibvirtDriver._get_pci_passthrough_devices -> Host._get_pcidev_info, as the resource
    tracker calls it (a new driver each time: the method is cached per instance)."""
    d = driver.LibvirtDriver(fake.FakeVirtAPI(), False)
    return json.loads(d._get_pci_passthrough_devices())


def _extra_info(op: dict[str, Any]) -> Any:
    return [_pci_device(d).extra_info for d in op["devices"]]


def _profiles(op: dict[str, Any]) -> Any:
    api = neutron.API()  # its Whitelist comes from CONF.pci.device_spec
    out = []
    for d in op["devices"]:
        try:
            out.append(api._get_pci_device_profile(_pci_device(d)))
        except Exception as e:  # noqa: BLE001 - Nova's own failure is the answer
            out.append(_raised(e))
    return out


def _devspec(op: dict[str, Any]) -> Any:
    """PciDeviceSpec(dict): accepted (its tags, IDs, remote_managed, and what it matches) or the
    exception Nova raises."""
    try:
        spec = devspec.PciDeviceSpec(json.loads(json.dumps(op["spec"])))
    except Exception as e:  # noqa: BLE001
        return _raised(e)
    matches = []
    for d in op.get("devices", ()):
        try:
            matches.append(spec.match(d))
        except Exception as e:  # noqa: BLE001
            matches.append(_raised(e))
    return {"tags": spec.get_tags(), "vendor_id": spec.vendor_id, "product_id": spec.product_id,
            "remote_managed": spec._remote_managed, "matches": matches}


def _whitelist(op: dict[str, Any]) -> Any:
    """Whitelist(list of JSON strings): which spec (by index) each device is assignable by."""
    try:
        wl = whitelist.Whitelist(op["entries"])
    except Exception as e:  # noqa: BLE001
        return _raised(e)
    out = []
    for d in op.get("devices", ()):
        spec = wl.device_assignable(d)
        out.append(None if spec is None else wl.specs.index(spec))
    return {"specs": len(wl.specs), "assignable": out}


def _stats(op: dict[str, Any]) -> Any:
    """PciDeviceStats over the devices: the pools (without their device objects) and whether
    Nova would report COMPUTE_REMOTE_MANAGED_PORTS."""
    try:
        wl = whitelist.Whitelist(op["entries"])
    except Exception as e:  # noqa: BLE001
        return _raised(e)
    s = stats.PciDeviceStats(None, dev_filter=wl)
    for d in op["devices"]:
        s.add_device(_pci_device(d))
    pools = [{k: v for k, v in p.items() if k != "devices"} for p in s.pools]
    return {"pools": pools, "remote_managed_trait": s.has_remote_managed_device_pools()}


def _migrate(op: dict[str, Any]) -> Any:
    """ComputeManager._update_migrate_vifs_profile_with_pci for one port moving to a device."""
    vif = migrate_data.VIFMigrateData(
        port_id="port", source_vif=network_model.VIF(id="port", profile=op["profile"]))
    manager.ComputeManager._update_migrate_vifs_profile_with_pci(
        None, [vif], {"port": _pci_device(op["device"])})
    return vif.profile


def _pci_utils(op: dict[str, Any]) -> Any:
    """nova.pci.utils functions by name, each with its arguments."""
    out = []
    for name, args in op["calls"]:
        try:
            out.append(getattr(utils, name)(*args))
        except Exception as e:  # noqa: BLE001
            out.append(_raised(e))
    return out


OPS = {"devices": _devices, "extra_info": _extra_info, "profiles": _profiles,
       "devspec": _devspec, "whitelist": _whitelist, "stats": _stats, "migrate": _migrate,
       "pci_utils": _pci_utils}


def handle(request: dict[str, Any]) -> list[Any]:
    CONF.set_override("device_spec", request.get("device_spec", []), group="pci")
    if request.get("uri"):
        CONF.set_override("connection_uri", request["uri"], group="libvirt")
    results = []
    with _sysfs(request.get("sysfs")):
        for op in request["ops"]:
            try:
                results.append(OPS[op["op"]](op))
            except Exception as e:  # noqa: BLE001 - e.g. Nova 34 raising out of the driver
                results.append(_raised(e))
    return results


def main() -> None:
    out = sys.stdout
    sys.stdout = sys.stderr  # anything Nova prints must not break the protocol
    out.write(json.dumps({"ready": nova.version.version_string()}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            answer: Any = {"results": handle(json.loads(line))}
        except Exception as e:  # noqa: BLE001
            answer = {"error": _raised(e)}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
