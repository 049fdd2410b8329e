"""Nova 34's own code as a test oracle: a client for tests/nova_worker.py.

One worker process per test session runs Nova unmodified inside a private mount namespace
(``unshare --mount``), bind-mounting each synthetic tree on /sys for the calls that read sysfs,
and libvirt's test driver (``test:///path/node.xml``) serves the node-device XML that
`fastvpd.testing.node_device_xml` writes for the same tree. Nova's answers are compared with
fastvpd's exactly; the known differences are listed once, in tests/test_nova_contract.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("nova_worker.py")
NOVA_VERSION = "34.0.0"
_TIMEOUT = 300  # seconds for one answer: importing Nova, or a host of thousands of VFs


def unavailable() -> str | None:
    """Why Nova cannot be run as an oracle here, or None when it can."""
    for module, what in (("nova", f"nova=={NOVA_VERSION}"), ("libvirt", "libvirt-python")):
        if importlib.util.find_spec(module) is None:
            return f"{what} is not installed (the README's test command installs it)"
    if os.geteuid() != 0:
        return ("needs root: Nova reads hard-coded /sys paths, so the oracle bind-mounts the "
                "synthetic tree on /sys in a private mount namespace")
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare and mount (util-linux) for a private mount namespace"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a mount namespace here: {probe.stderr.strip()}"
    return None


#: Every way fastvpd deliberately differs from Nova 34, by name (also in the README).
KNOWN_DIFFERENCES = {
    "device-order": "to_nova() lists devices in address order; Nova in libvirt's listing order.",
    "vf-vpd": "By default fastvpd reads VPD from PFs and plain functions only, and a VF reports "
              "its PF's serial; Nova, through libvirt, reads every VF's own VPD. "
              "scan(vf_vpd=True) reads it too.",
    "tolerant-vpd": "By default a VPD blob that breaks the format (bad checksum, stray bytes) "
                    "still gives its serial, with the problem on the device; libvirt drops such "
                    "a blob whole, so Nova reports no serial. scan(strict_vpd=True) does the same.",
    "netdev-choice": "A function with several netdevs: fastvpd takes the first name in sorted "
                     "order; Nova takes os.listdir(...).pop(), which depends on the file system.",
    "network-capabilities": "Nova copies libvirt's netdev features into capabilities.network of "
                            "a VF that owns a netdev; they are not in sysfs and fastvpd does not "
                            "report them.",
    "missing-virtfn": "A VF whose PF has no virtfn link to it makes Nova 34 raise out of "
                      "_get_pci_passthrough_devices and report no device at all; fastvpd reports "
                      "every device, that VF without capabilities.sriov and with a problem.",
    "remote-managed-pf-spec": "A remote_managed device_spec naming one PF (address or devname) "
                              "fails on Nova 34 with PciDeviceNotFoundById (it formats the "
                              "address as an object repr and reads a 'product' file sysfs does "
                              "not have); fastvpd applies the intended check: the PF's VF "
                              "product ID means its VFs, the PF's own IDs are an error.",
    "migration-vf0": "Nova refreshes vf_num, pf_mac_address and card_serial_number of a migrating "
                     "port only when the source value is truthy, so a port leaving VF 0 keeps "
                     "vf_num 0; migration_profile refreshes every key the profile has.",
    "trait-truthy": "Nova 34 reports COMPUTE_REMOTE_MANAGED_PORTS only when remote_managed is the "
                    "text 'true', though 'yes', '1', 'on' or JSON true also take the VFs out of "
                    "the normal pools; exposes_remote_managed_trait takes any truthy value, and "
                    "DeviceSpec.nova_trait_value says what Nova 34 will do.",
    "unescaped-vpd": "libvirt writes VPD field text into the node-device XML unescaped, so a "
                     "card whose VPD text holds '&' or '<' makes Nova 34's XML parser raise and "
                     "Nova report no device at all; fastvpd reports every device (and "
                     "fastvpd.libvirt reads that XML too).",
    "vmd-domain": "Nova 34 reports a function in a PCI domain above ffff (Intel VMD, "
                  "10000:e1:00.0) but raises PciConfigInvalidSpec when any device_spec is "
                  "matched against it, so its PCI tracker fails; DeviceSpec.match answers (such a "
                  "domain matches only a spec whose domain is '*').",
}



class NovaError(AssertionError):
    """The worker failed (not Nova raising: that is an answer)."""


class Nova:
    """The worker process; `call` sends one request and returns one result per op."""

    def __init__(self) -> None:
        env = dict(os.environ, FASTVPD_PARENT_MNTNS=os.readlink("/proc/self/ns/mnt"),
                   PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", sys.executable, str(WORKER)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        self.version = self._read()["ready"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], _TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise NovaError(f"the Nova worker died or hung: {err[-4000:]}")
        return json.loads(line)

    def call(self, ops: list[dict[str, Any]], *, sysfs: str | os.PathLike[str] | None = None,
             uri: str | None = None, device_spec: list[str] = ()) -> list[Any]:
        assert self.proc.stdin is not None
        request = {"sysfs": None if sysfs is None else os.path.abspath(os.fspath(sysfs)),
                   "uri": uri, "device_spec": list(device_spec), "ops": ops}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise NovaError(f"worker error: {answer['error']}")
        return answer["results"]

    def one(self, op: dict[str, Any], **kw: Any) -> Any:
        return self.call([op], **kw)[0]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def nova() -> Iterator[Nova]:
    """The Nova worker of the session (tests import this fixture from here); in CI it must run."""
    reason = unavailable()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the Nova oracle must run in CI: {reason}")
        pytest.skip(reason)
    worker = Nova()
    assert worker.version == NOVA_VERSION
    yield worker
    worker.close()
