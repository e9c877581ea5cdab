"""The pipeline's summary: held-out accuracy and format rate after each stage (a table and
``results.json``) and a PNG of the training curves."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def stage_results(results: dict[str, dict]) -> list[dict]:
    rows = []
    for name, outputs in results.items():
        metrics = outputs.get("metrics", {})
        if "val/accuracy" in metrics or "val/format" in metrics:
            rows.append({"name": name, "accuracy": metrics.get("val/accuracy"),
                         "format": metrics.get("val/format")})
    return rows


def _pct(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{100 * value:5.1f}%"


def format_table(rows: list[dict]) -> str:
    width = max([len(r["name"]) for r in rows] + [5])
    lines = [f"{'stage'.ljust(width)}  accuracy  format", f"{'-' * width}  --------  ------"]
    lines += [f"{r['name'].ljust(width)}  {_pct(r['accuracy']):>8}  {_pct(r['format']):>6}"
              for r in rows]
    return "\n".join(lines)


def _read_curve(path: Path, key: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    if not path.exists():
        return steps, values
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if row.get(key) not in (None, ""):
                steps.append(int(float(row["step"])))
                values.append(float(row[key]))
    return steps, values


def plot_curves(run_dir: Path, stage_names: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    for name in stage_names:
        metrics = run_dir / name / "metrics.csv"
        for axis, key, label, style in ((axes[0], "reward/mean", "train reward", "-"),
                                        (axes[1], "val/accuracy", "held-out accuracy", "o-"),
                                        (axes[1], "accuracy", "train accuracy", "-")):
            steps, values = _read_curve(metrics, key)
            if steps:
                axis.plot([s + offset for s in steps], values, style, label=f"{name}: {label}",
                          markersize=4, linewidth=1)
        steps, _ = _read_curve(metrics, "time/step_s")
        offset += max(steps, default=0)
    for axis, title in zip(axes, ("reward", "accuracy")):
        axis.set_title(title)
        axis.set_xlabel("optimizer step (stages back to back)")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def write_report(run_dir: Path, results: dict[str, dict]) -> list[dict]:
    rows = stage_results(results)
    (run_dir / "results.json").write_text(json.dumps({"stages": rows}, indent=2))
    if rows:
        print(format_table(rows))
    plot_curves(run_dir, list(results), run_dir / "curves.png")
    return rows
