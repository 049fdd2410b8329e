"""Run the benchmarks and write benchmarks/RESULTS.md: medians, ratios to fastvpd, extra facts.

Usage (from the repository root, in the test environment):
    python benchmarks/report.py [bench_vpd.py bench_scan.py ...]
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
DEFAULT = ["bench_vpd.py", "bench_scan.py"]


def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


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
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print((HERE / "RESULTS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
