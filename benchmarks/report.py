"""Run the benchmarks; write benchmarks/RESULTS.md (medians, ratios, the goals of issue #12 as
measured against goal) and benchmarks/results.png (time per VF against VF count, log scale, and
the memory per VF).

Usage (from the repository root, in the environment of the ``test`` and ``benchmarks`` extras):
    python benchmarks/report.py [bench_vpd.py bench_scan.py ...]   (default: every bench_*.py)
    python benchmarks/report.py bench_scan.py -k 8x512 --min-rounds 3 --output /tmp/report
``-k`` selects cases as pytest's ``-k`` does, ``--output`` writes RESULTS.md and results.png
elsewhere (to try a subset without replacing the committed results). Every baseline runs in the
same pytest session as fastvpd, so the ratios compare like with like on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT = sorted(p.name for p in HERE.glob("bench_*.py"))
# The lines of the plot: scan implementations (extra_info "impl") and how they are drawn.
LINES = {"nova-like": "#b0b0b0", "python-linear": "#7f7f7f", "fastvpd": "#2a7ab0",
         "fastvpd-bare": "#9ec9e6", "floor": "#d62728"}
# Shown in the notes column of the per-group tables; the rest of extra_info is in the scan tables.
HIDDEN = {"impl", "shape", "vfs", "heap"}


def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def _short(name: str) -> str:
    return name.split("[")[-1].rstrip("]") if "[" in name else name


def _is_fastvpd(b: dict[str, Any]) -> bool:
    impl = b.get("extra_info", {}).get("impl")
    return impl == "fastvpd" if impl else "fastvpd" in _short(b["name"])


# -- the scan benchmarks, shape by shape ---------------------------------------------------------

def scan_sizes(benches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per scan shape, smallest first: its VF count, the median of each implementation,
    the floor (the cheaper C variant plus the builder) and the extra facts."""
    by_shape: dict[str, dict[str, Any]] = {}
    for b in benches:
        info = b.get("extra_info", {})
        if "impl" not in info or "vfs" not in info:
            continue
        s = by_shape.setdefault(info["shape"], {"shape": info["shape"], "vfs": info["vfs"],
                                                "median": {}, "info": {}})
        s["median"][info["impl"]] = b["stats"]["median"]
        s["info"][info["impl"]] = info
    out = sorted(by_shape.values(), key=lambda s: s["vfs"])
    for s in out:
        m = s["median"]
        c_parts = [m[k] for k in ("floor-list", "floor-probe") if k in m]
        if c_parts and "floor-builder" in m:
            s["floor_c"] = min((k for k in ("floor-list", "floor-probe") if k in m), key=m.get)
            m["floor"] = min(c_parts) + m["floor-builder"]
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def goals(sizes: list[dict[str, Any]]) -> list[tuple[str, str, str, bool | None]]:
    """Issue #12's goals: (goal, measured, goal value, met). Only those the run measured."""
    out: list[tuple[str, str, str, bool | None]] = []
    for s in sizes:
        m = s["median"]
        if s["shape"] in ("8x512", "16x1024"):
            r = _ratio(m.get("python-linear"), m.get("fastvpd"))
            if r is not None:
                out.append((f"fastvpd vs python-linear at {s['shape']}", f"{r:.1f}x faster",
                            "≥ 40x", r >= 40))
    for s in sizes:
        r = _ratio(s["median"].get("fastvpd"), s["median"].get("floor"))
        if r is not None:
            out.append((f"fastvpd vs the floor at {s['shape']}", f"{r:.2f}x the floor's time",
                        "≤ 1.5x", r <= 1.5))
    per_vf = [(s, s["median"]["fastvpd"] / s["vfs"]) for s in sizes if "fastvpd" in s["median"]]
    if len(per_vf) >= 2:
        (first, t0), (last, t1) = per_vf[0], per_vf[-1]
        out.append((f"growth of fastvpd's time per VF, {first['shape']} to {last['shape']}",
                    f"{t1 / t0:.2f}x", "≤ 1.25x", t1 / t0 <= 1.25))
    for s in sizes:
        info = s["info"].get("fastvpd", {})
        if "Inventory B/VF" in info:
            v = info["Inventory B/VF"]
            out.append((f"Inventory at {s['shape']}", f"{v:.0f} B/VF", "≤ 150 B/VF", v <= 150))
        builder = s["info"].get("floor-builder", {}).get("builder B/VF")
        if "to_nova B/VF" in info and builder is not None:
            v = info["to_nova B/VF"]
            out.append((f"to_nova() vs the floor builder at {s['shape']}",
                        f"{v:.0f} vs {builder:.0f} B/VF", "≤ the builder's", v <= builder))
        if "syscalls per VF" in info:
            v = info["syscalls per VF"]
            floor = s["info"].get(s.get("floor_c", ""), {}).get("syscalls per VF")
            seen = f"{v:.3f}" + (f" (floor {floor:.3f})" if floor is not None else "")
            out.append((f"syscalls per VF at {s['shape']}", seen, "< 0.1", v < 0.1))
    return out


def plot(sizes: list[dict[str, Any]], path: pathlib.Path) -> None:
    """Time per VF against VF count (log-log) and memory per VF, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for impl, colour in LINES.items():
        pts = [(s["vfs"], s["median"][impl] / s["vfs"] * 1e9) for s in sizes if impl in s["median"]]
        if pts:
            label = "floor (C syscalls + dict builder)" if impl == "floor" else impl
            style = "--" if impl in ("floor", "fastvpd-bare") else "-"
            left.plot(*zip(*pts), style, marker="o", color=colour, label=label)
    left.set(xscale="log", yscale="log", xlabel="VFs on the host", ylabel="ns per VF",
             title="scan().to_nova(): time per VF (median)")
    left.set_xticks([s["vfs"] for s in sizes], [f"{s['shape']}\n{s['vfs']}" for s in sizes])
    left.minorticks_off()
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    series = (("Inventory", "fastvpd", "Inventory B/VF"), ("to_nova()", "fastvpd", "to_nova B/VF"),
              ("floor builder", "floor-builder", "builder B/VF"))
    width = 0.8 / len(series)
    for k, (label, impl, key) in enumerate(series):
        xs, ys = [], []
        for i, s in enumerate(sizes):
            v = s["info"].get(impl, {}).get(key)
            if v is not None:
                xs.append(i + (k - 1) * width)
                ys.append(v)
        bars = right.bar(xs, ys, width, label=label)
        blocks = [s["info"].get(impl, {}).get(key.replace("B/VF", "blocks/VF")) for s in sizes
                  if s["info"].get(impl, {}).get(key) is not None]
        right.bar_label(bars, [f"{v:.0f} B, {b:.2f} blocks" if b is not None else f"{v:.0f} B"
                               for v, b in zip(ys, blocks)], fontsize=7, rotation=90, padding=3)
    right.set_xticks(range(len(sizes)), [s["shape"] for s in sizes])
    right.set(ylabel="bytes per VF still allocated (tracemalloc)", title="memory per VF")
    right.axhline(150, color="#2a7ab0", linestyle=":", linewidth=1, label="Inventory goal")
    right.set_ylim(0, 1.8 * max([150] + [p.get_height() for p in right.patches]))
    right.legend(fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scan_section(sizes: list[dict[str, Any]], png: str | None) -> list[str]:
    if not sizes:
        return []
    impls = [i for i in ("nova-like", "python-linear", "fastvpd", "fastvpd-bare", "fastvpd-scan",
                         "fastvpd-to_nova", "floor-list", "floor-probe", "floor-builder", "floor")
             if any(i in s["median"] for s in sizes)]
    lines = ["## Scan: time per VF", "",
             "Median time divided by the VFs of the host. The floor is the cheaper of floor-list "
             "and floor-probe plus floor-builder, all measured in this run.", "",
             "| host | VFs | " + " | ".join(impls)
             + " | fastvpd / python-linear | fastvpd / floor |",
             "|---|---|" + "---|" * (len(impls) + 2)]
    for s in sizes:
        m = s["median"]
        cells = [_fmt(m[i] / s["vfs"]) if i in m else "-" for i in impls]
        lin = _ratio(m.get("fastvpd"), m.get("python-linear"))
        flo = _ratio(m.get("fastvpd"), m.get("floor"))
        lines.append(f"| {s['shape']} | {s['vfs']} | " + " | ".join(cells) +
                     f" | {'-' if lin is None else f'{lin:.3f} (1/{1 / lin:.1f})'}"
                     f" | {'-' if flo is None else f'{flo:.2f}'} |")
    per_vf = {i: [s["median"][i] / s["vfs"] for s in sizes if i in s["median"]] for i in impls}
    grow = [f"{i} {v[-1] / v[0]:.2f}x" for i, v in per_vf.items() if len(v) >= 2]
    if grow:
        lines += ["", f"Growth of the time per VF from {sizes[0]['shape']} to "
                      f"{sizes[-1]['shape']}: " + ", ".join(grow) + "."]
    halves = [s for s in sizes if "floor" in s["median"] and "fastvpd-scan" in s["median"]
              and "fastvpd-to_nova" in s["median"]]
    if halves:
        lines += ["", "## Scan: where fastvpd's time goes, half by half against the floor's", "",
                  "| host | scan() | floor C part | ratio | to_nova() | floor builder | ratio |",
                  "|---|---|---|---|---|---|---|"]
        for s in halves:
            m, n = s["median"], s["vfs"]
            c = m[s["floor_c"]]
            lines.append(f"| {s['shape']} | {_fmt(m['fastvpd-scan'] / n)}/VF | {_fmt(c / n)}/VF "
                         f"({s['floor_c']}) | {m['fastvpd-scan'] / c:.2f} | "
                         f"{_fmt(m['fastvpd-to_nova'] / n)}/VF | {_fmt(m['floor-builder'] / n)}/VF "
                         f"| {m['fastvpd-to_nova'] / m['floor-builder']:.2f} |")
    lines += ["", "## Scan: memory and system calls per VF", "",
              "| host | Inventory B/VF (blocks) | to_nova() B/VF (blocks) | floor builder B/VF "
              "(blocks) | fastvpd syscalls/VF | floor-list | floor-probe |",
              "|---|---|---|---|---|---|---|"]
    for s in sizes:
        inf = s["info"]
        f, b = inf.get("fastvpd", {}), inf.get("floor-builder", {})

        def pair(d: dict[str, Any], key: str) -> str:
            if key + " B/VF" not in d:
                return "-"
            return f"{d[key + ' B/VF']:.0f} ({d[key + ' blocks/VF']:.2f})"

        sc = [str(inf.get(i, {}).get("syscalls per VF", "-"))
              for i in ("fastvpd", "floor-list", "floor-probe")]
        lines.append(f"| {s['shape']} | {pair(f, 'Inventory')} | {pair(f, 'to_nova')} | "
                     f"{pair(b, 'builder')} | " + " | ".join(sc) + " |")
    table = goals(sizes)
    if table:
        lines += ["", "## Goals (issue #12)", "", "| goal | measured | goal | |",
                  "|---|---|---|---|"]
        for name, measured, want, met in table:
            lines.append(f"| {name} | {measured} | {want} | {'met' if met else 'MISSED'} |")
    if png:
        lines += ["", f"![time per VF against VF count, log scale; memory per VF]({png})"]
    return lines + [""]


def vpd_section(benches: list[dict[str, Any]]) -> list[str]:
    """Issue #12's VPD goal: ``parse_vpd(blob).serial_number`` on the typical DPU blob."""
    m = {_short(b["name"]): b["stats"]["median"] for b in benches}
    ours, ref = m.get("fastvpd"), m.get("reference")
    if not ours or not ref:
        return []
    return ["## VPD goals (issue #12)", "", "| goal | measured | goal | |", "|---|---|---|---|",
            f"| typical DPU blob, fastvpd vs the reference parser | {ref / ours:.1f}x faster | "
            f"≥ 40x | {'met' if ref / ours >= 40 else 'MISSED'} |",
            f"| typical DPU blob, time per parse | {_fmt(ours)} | < 350 ns | "
            f"{'met' if ours < 350e-9 else 'MISSED'} |", ""]


def scanner_section(benches: list[dict[str, Any]]) -> list[str]:
    """Issue #8's goals for the Scanner (bench_scanner.py), as ratios to a cold scan."""
    m = {b["name"]: b["stats"]["median"] for b in benches}
    cold, none, empty = (m.get("test_cold[scan]"), m.get("test_refresh_unchanged[None]"),
                         m.get("test_refresh_unchanged[set()]"))
    if not cold:
        return []
    rows: list[tuple[str, str, str, bool]] = []
    if none:
        rows.append(("unchanged host, `refresh(changed=None)`",
                     f"{cold / none:.1f}x cheaper than `scan()`", "≥ 5x", cold / none >= 5))
    if empty:
        rows.append(("unchanged host, `refresh(changed=set())`",
                     f"{cold / empty:.0f}x cheaper than `scan()`", "≥ 100x", cold / empty >= 100))
    slow = [b for b in benches if b["name"] == "test_first_refresh_with_a_slow_vpd_reader"]
    if slow:
        worst = slow[0]["stats"]["max"]
        rows.append(("first refresh, VPD reader taking 2 s, deadline 0.5 s",
                     f"{worst:.3f} s at worst", "≤ 0.55 s", worst <= 0.55))
    lines = ["## Scanner goals (issue #8)", "", "| goal | measured | goal | |", "|---|---|---|---|"]
    lines += [f"| {g} | {measured} | {want} | {'met' if met else 'MISSED'} |"
              for g, measured, want, met in rows]
    listing = m.get("test_listing_floor")
    if listing and none:
        lines += ["", f"Listing `bus/pci/devices` alone (getdents64 in C, nothing else) takes "
                      f"{_fmt(listing)}, {listing / cold:.0%} of a cold `scan()`: a refresh that "
                      f"re-lists can be at most {cold / listing:.1f}x cheaper than a cold scan on "
                      f"this machine; `refresh(changed=None)` takes {none / listing:.2f}x that "
                      "listing."]
    return lines + [""]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="bench_*.py files (default: all)")
    ap.add_argument("-k", dest="select", help="run only the cases pytest -k selects")
    ap.add_argument("--min-rounds", type=int, default=7)
    ap.add_argument("--output", type=pathlib.Path, default=HERE,
                    help="where RESULTS.md and results.png go (default: benchmarks/)")
    args = ap.parse_args(argv)
    files = [f for f in (args.files or DEFAULT) if (HERE / f).exists()]
    # One interpreter per file: a nanosecond benchmark (VPD) must not inherit the heap and the
    # caches the 32x2048 scans leave behind. Each file's baselines run in its own session.
    data: dict = {"benchmarks": [], "machine_info": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            out = pathlib.Path(tmp) / f"{f}.json"
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "--benchmark-only", f"--benchmark-json={out}",
                   f"--benchmark-min-rounds={args.min_rounds}",
                   *(["-k", args.select] if args.select else []), str(HERE / f)]
            rc = subprocess.run(cmd, cwd=HERE.parent).returncode
            if rc not in (0, 5):  # 5: -k selected nothing in this file
                raise SystemExit(f"benchmarks of {f} failed (pytest exit status {rc})")
            if out.exists():
                part = json.loads(out.read_text())
                data["benchmarks"] += part["benchmarks"]
                data["machine_info"] = data["machine_info"] or part["machine_info"]
    groups: dict[str, list[dict]] = defaultdict(list)
    for b in data["benchmarks"]:
        groups[b["group"] or b["name"]].append(b)
    command = " ".join(["python benchmarks/report.py", *files,
                        *([f"-k '{args.select}'"] if args.select else []),
                        *([f"--min-rounds {args.min_rounds}"] if args.min_rounds != 7 else [])])
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{command}` on {time.strftime('%Y-%m-%d')} ({platform.machine()}, "
        f"{data['machine_info'].get('cpu', {}).get('brand_raw', '?')}, Python "
        f"{platform.python_version()}). Medians of at least {args.min_rounds} rounds (3 for the "
        "slow baselines); every baseline ran in the same session as what it is compared with. The machine is shared and "
        "noisy: read the ratios, not the absolute times. Each file runs in its own interpreter.",
        "",
    ]
    args.output.mkdir(parents=True, exist_ok=True)
    sizes = scan_sizes(data["benchmarks"])
    png = None
    if sizes:
        plot(sizes, args.output / "results.png")
        png = "results.png"
    lines += scan_section(sizes, png)
    for group, benches in groups.items():
        if group.startswith("refresh of a"):
            lines += scanner_section(benches)
        elif group.startswith("vpd typical"):
            lines += vpd_section(benches)
    for group, benches in groups.items():
        ours = [b for b in benches if _is_fastvpd(b)]
        base = ours[0]["stats"]["median"] if ours else None
        lines += [f"## {group}", "", "| implementation | median | ratio to fastvpd | notes |",
                  "|---|---|---|---|"]
        for b in sorted(benches, key=lambda b: b["stats"]["median"]):
            median = b["stats"]["median"]
            ratio = f"{median / base:.2f}x" if base else "-"
            notes = ", ".join(f"{k} {v}" for k, v in b.get("extra_info", {}).items()
                              if k not in HIDDEN)
            lines.append(f"| {_short(b['name'])} | {_fmt(median)} | {ratio} | {notes} |")
        lines.append("")
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    (args.output / "RESULTS.md").write_text("\n".join(lines))
    print((args.output / "RESULTS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
