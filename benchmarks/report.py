"""Run the benchmarks; write benchmarks/RESULTS.md (medians, ratios to fastvpd, extra facts) and
benchmarks/results.svg (the same medians as bars, log scale).

Usage (from the repository root, in the test environment):
    python benchmarks/report.py [bench_vpd.py bench_scan.py ...]   (default: every bench_*.py)
Every baseline runs in the same pytest session as fastvpd, so the ratios compare like with like on
a shared, noisy machine.
"""

from __future__ import annotations

import json
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT = sorted(p.name for p in HERE.glob("bench_*.py"))


def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def _svg(groups: dict[str, list[dict]]) -> str:
    """Horizontal bars of each case's median on a log scale; no plotting library needed."""
    import math
    from html import escape

    rows: list[tuple[str, str, float]] = []
    for group, benches in groups.items():
        for b in sorted(benches, key=lambda b: b["stats"]["median"]):
            name = b["name"].split("[")[-1].rstrip("]") if "[" in b["name"] else b["name"]
            rows.append((group, name, b["stats"]["median"]))
    lo = math.floor(math.log10(min(r[2] for r in rows)))
    hi = math.ceil(math.log10(max(r[2] for r in rows)))
    left, width, bar_h = 330, 520, 16
    height, y, out = 40 + 22 * len(rows) + 18 * len(groups), 30, []
    scale = width / max(hi - lo, 1)
    for decade in range(lo, hi + 1):
        x = left + (decade - lo) * scale
        out.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 10}" stroke="#ddd"/>'
                   f'<text x="{x:.1f}" y="14" font-size="10" text-anchor="middle">'
                   f"{_fmt(10.0 ** decade)}</text>")
    previous = None
    for group, name, median in rows:
        if group != previous:
            y += 18
            out.append(f'<text x="4" y="{y}" font-size="12" font-weight="bold">{escape(group)}</text>')
            y += 4
            previous = group
        w = max((math.log10(median) - lo) * scale, 1)
        colour = "#2a7ab0" if "fastvpd" in name else "#b0b0b0"
        out.append(f'<text x="{left - 6}" y="{y + 12}" font-size="11" text-anchor="end">'
                   f"{escape(name)}</text>"
                   f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>'
                   f'<text x="{left + w + 4:.1f}" y="{y + 12}" font-size="11">{_fmt(median)}</text>')
        y += 22
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 80}" height="{y + 10}" '
            f'font-family="sans-serif">{"".join(out)}</svg>\n')


def main(argv: list[str]) -> int:
    files = [f for f in (argv or DEFAULT) if (HERE / f).exists()]
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only",
               f"--benchmark-json={out}", "--benchmark-min-rounds=7", *[str(HERE / f) for f in files]]
        subprocess.run(cmd, check=True, cwd=HERE.parent)
        data = json.loads(out.read_text())
    groups: dict[str, list[dict]] = defaultdict(list)
    for b in data["benchmarks"]:
        groups[b["group"] or b["name"]].append(b)
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `python benchmarks/report.py {' '.join(files)}` on "
        f"{time.strftime('%Y-%m-%d')} ({platform.machine()}, {data['machine_info'].get('cpu', {}).get('brand_raw', '?')}, "
        f"Python {platform.python_version()}). Medians of at least 7 rounds; every baseline ran in "
        "the same session. The machine is shared and noisy: read the ratios, not the absolute times.",
        "",
    ]
    for group, benches in groups.items():
        ours = [b for b in benches if "fastvpd" in b["name"]]
        base = ours[0]["stats"]["median"] if ours else None
        lines += [f"## {group}", "", "| implementation | median | ratio to fastvpd | notes |", "|---|---|---|---|"]
        for b in sorted(benches, key=lambda b: b["stats"]["median"]):
            median = b["stats"]["median"]
            ratio = f"{median / base:.1f}x" if base else "-"
            notes = ", ".join(f"{k} {v}" for k, v in b.get("extra_info", {}).items())
            name = b["name"].split("[")[-1].rstrip("]") if "[" in b["name"] else b["name"]
            lines.append(f"| {name} | {_fmt(median)} | {ratio} | {notes} |")
        lines.append("")
    (HERE / "results.svg").write_text(_svg(groups))
    lines += ["![medians per case, log scale](results.svg)", ""]
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print((HERE / "RESULTS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
