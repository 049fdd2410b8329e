"""How problems read: a link target or a file's content is shown whole or marked as cut, and bytes
that are not printable ASCII show as ``\\xNN`` (never as surrogates such as ``\\udcff``), so that a
problem text always prints, in one line, under any locale."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from fastvpd import _walk, testing
from fastvpd.scanner import scan
from tests.support import cli, scratch_dir


@pytest.fixture
def host() -> Iterator[testing.BuiltHost]:
    with scratch_dir("texts") as d:
        yield testing.dpu_host(os.path.join(d, "sys"), cards=1, pfs_per_card=1, vfs_per_pf=2)


def _physfn_problem(host: testing.BuiltHost, target: bytes) -> str:
    """The problem of a VF that no PF lists (its virtfn link is gone) and whose physfn link points
    to ``target``, nowhere."""
    vf = host.vfs[1]
    testing.remove_attribute(host, host.pfs[0], "virtfn1")
    link = os.fsencode(host.device_path(vf)) + b"/physfn"
    os.unlink(link)
    os.symlink(target, link)  # dangles: no such directory
    (problem,) = [p for p in scan(host)[vf].problems if p.startswith("physfn: ")]
    return problem


@pytest.mark.parametrize("length", [49, 100, _walk.DETAIL_SHOWN])
def test_a_link_target_is_shown_whole(host: testing.BuiltHost, length: int) -> None:
    target = b"../" + b"x" * (length - 3)
    problem = _physfn_problem(host, target)
    assert f"dangling link -> '{target.decode()}' (target missing" in problem
    assert "bytes)" not in problem


@pytest.mark.parametrize("length", [_walk.DETAIL_SHOWN + 1, 1000, 4000])
def test_a_longer_link_target_is_marked_as_cut_with_its_length(host: testing.BuiltHost,
                                                               length: int) -> None:
    target = b"../" + b"y" * (length - 3)
    problem = _physfn_problem(host, target)
    shown = target[:_walk.DETAIL_SHOWN].decode()
    assert f"dangling link -> '{shown}'...({length} bytes) (target missing" in problem


def test_bytes_above_0x7f_show_as_hex_escapes(host: testing.BuiltHost) -> None:
    problem = _physfn_problem(host, b"../\xff\xfe-\xc3\xa9")
    assert "dangling link -> '../\\xff\\xfe-\\xc3\\xa9'" in problem
    assert "\\udc" not in problem and problem.isascii()
    b = testing.garbage_attribute(host, host.pfs[0], "vendor")  # b"\xff\xfeno such value\x00\n"
    (garbage,) = [p for p in scan(host)[host.pfs[0]].problems if p.startswith("vendor: ")]
    assert garbage == f"vendor: garbage content '\\xff\\xfeno such value\\x00\\n' ({b.path})"


def test_paths_with_undecodable_bytes_are_escaped() -> None:
    with scratch_dir("texts-path") as d:
        root = os.path.join(os.fsencode(d), b"h\xffst", b"sys")
        host = testing.dpu_host(os.fsdecode(root), cards=1, pfs_per_card=1, vfs_per_pf=2)
        testing.garbage_attribute(host, host.pfs[0], "numa_node")
        testing.non_pci_entry(host, "bad\nname")
        inv = scan(host)
        problems = list(inv[host.pfs[0]].problems) + list(inv.problems)
        assert any(p.startswith("numa_node: garbage") for p in problems) and len(inv.problems) == 1
        for p in problems:
            assert p.isascii() and p.isprintable(), p
            assert f"{d}/h\\xffst/sys/bus/pci/devices/" in p
        assert any("bad\\x0aname" in p for p in inv.problems)
        proc = cli("scan", "--sysfs", host.root, env={"LC_ALL": "C.UTF-8"})
        assert proc.returncode == 0, proc.stderr
        assert all(p in proc.stdout for p in problems)
        proc = cli("scan", "--sysfs", os.path.join(host.root, "nope"))
        assert proc.returncode == 1 and "h\\xffst" in proc.stderr and "Traceback" not in proc.stderr


def test_shown() -> None:
    assert _walk.shown("eth0") == "eth0"
    assert _walk.shown(os.fsdecode(b"eth\xff0")) == "eth\\xff0"
    assert _walk.shown("tab\there é") == "tab\\x09here \\xc3\\xa9"
