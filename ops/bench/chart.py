"""bench/results.png: throughput per scenario and fleet size, with each scenario's limit.

matplotlib (Agg backend, no display) is an optional dependency (the ``bench``
extra); without it the run still writes results.json and results.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ops.bench.report import chart_series, limit_lines


def _label(size: int) -> str:
    return "1 app" if size == 1 else f"{size:,} apps"


def write_png(path: Path, doc: dict[str, Any]) -> str | None:
    """Draw the chart; returns why not, if it could not be drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install '.[bench]'); no chart"
    names, sizes, rates = chart_series(doc)
    if not names:
        return "no HTTP scenario was measured; no chart"
    limits = limit_lines(doc, names)
    fig, (ax, ax_lat) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / max(1, len(sizes))
    for i, size in enumerate(sizes):
        xs = [x + (i - (len(sizes) - 1) / 2) * width for x in range(len(names))]
        ax.bar(xs, [max(r, 0.1) for r in rates[size]], width, label=_label(size))
    for x, limit in enumerate(limits):
        if limit:
            ax.hlines(limit, x - 0.45, x + 0.45, colors="black", linestyles="dashed", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20)
    ax.set_ylabel("requests/s (log)")
    ax.set_title("throughput; dashed: the limit it is compared with")
    ax.axhline(1000, color="red", linewidth=0.8, alpha=0.5)
    ax.legend(fontsize=8)

    p99 = {size: [0.0] * len(names) for size in sizes}
    for s in doc.get("scenarios", []):
        if s.get("status") == "ok" and s["scenario"] in names:
            p99[s["apps"]][names.index(s["scenario"])] = float(s["p99_ms"])
    for i, size in enumerate(sizes):
        xs = [x + (i - (len(sizes) - 1) / 2) * width for x in range(len(names))]
        ax_lat.bar(xs, [max(v, 0.01) for v in p99[size]], width, label=_label(size))
    ax_lat.axhline(50, color="red", linewidth=0.8, alpha=0.5)
    ax_lat.set_yscale("log")
    ax_lat.set_xticks(range(len(names)))
    ax_lat.set_xticklabels(names, rotation=20)
    ax_lat.set_ylabel("p99 latency, ms (log)")
    ax_lat.set_title("p99 latency (red: 50 ms)")
    machine = doc.get("machine", {})
    fig.suptitle(
        f"oneauth on {machine.get('cores')} cores ({machine.get('cpu_model')}), "
        f"{doc.get('config', {}).get('connections')} connections"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
