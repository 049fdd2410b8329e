"""The core works without the integrations' libraries: libvirt-python and pyudev are imported
only when `fastvpd.libvirt` or `fastvpd.udev` needs them, and their absence is said plainly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent("""
    import sys
    sys.modules["libvirt"] = None   # as if not installed: importing it raises ImportError
    sys.modules["pyudev"] = None
    import fastvpd, fastvpd.libvirt, fastvpd.udev, fastvpd.profile
    from fastvpd import testing
    host = testing.dpu_host(sys.argv[1], cards=1, pfs_per_card=1, vfs_per_pf=2)
    inv = fastvpd.scan(host)
    assert len(inv.to_nova()) == 3 and fastvpd.binding_profile(inv, host.vfs[0])["vf_num"] == 0
    assert fastvpd.udev.event_addresses("add", "pci", "/devices/pci0000:00/0000:03:00.2") == {
        "0000:03:00.2"}
    for call, name in ((lambda: fastvpd.libvirt.inventory_from_libvirt(object()), "libvirt-python"),
                       (fastvpd.udev.enumerate_pci, "pyudev")):
        try:
            call()
        except ImportError as e:
            assert name in str(e), e
        else:
            raise AssertionError(f"no ImportError without {name}")
    # the Watcher without pyudev: it says why it hears no event, and rescans on its interval
    with fastvpd.Scanner("/sys", read_vpd=False) as scanner:
        watcher = fastvpd.udev.Watcher(scanner, interval=60).start()
        assert watcher.source is None and "pyudev" in watcher.fallback, watcher.fallback
        assert watcher.stop()
    assert "libvirt" not in {m for m, v in sys.modules.items() if v is not None}
    print("ok")
""")


def test_fastvpd_works_without_libvirt_and_pyudev(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path / "sys")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr
