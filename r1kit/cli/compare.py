"""``python -m r1kit compare RUN_OR_SWEEP_DIR... [--out DIR]``: put runs side by side.

Reads run directories (``config.yaml``, and per stage ``metrics.csv`` and ``manifest.json``),
sweep directories (their ``summary.csv`` names every job's run directory) or a directory of run
directories (``runs/``), and writes ``compare.png`` — held-out accuracy and reward against
optimizer step and against training time, one line per run — and ``compare.csv``, one row per
line with its final numbers (also printed).

A run is labelled by the config values that differ between the runs compared (a sweep's runs
by their swept values); runs that differ only by ``seed`` are one line: the mean over seeds,
with a band from the lowest to the highest seed, and ``_std`` columns in the table. A run's
stages are laid back to back (the steps and times of the second stage follow the first's).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

#: Keys that say where and how a run logs or checkpoints, not what it computes: never a label,
#: never a reason to keep runs apart. ``seed`` is how runs of one configuration are told apart.
IGNORED = ("run_dir", "logger.", "hub.", "checkpoint_every", "trainer.enable_progress_bar")
SEED = "seed"
ACCURACY, REWARD, STEP_TIME = "val/accuracy", "reward/mean", "time/step_s"
#: the final reward of a run: the mean of its last this many logged steps (one is too noisy)
REWARD_WINDOW = 10
PNG, TABLE = "compare.png", "compare.csv"


@dataclass
class Curve:
    steps: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # training time (s) at each step
    values: list[float] = field(default_factory=list)


@dataclass
class Run:
    path: Path
    config: dict  # flattened: "algo.epsilon" -> 0.2
    accuracy: Curve
    reward: Curve
    final_accuracy: float | None
    final_reward: float | None
    steps: int
    time_s: float


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node) if isinstance(node, list) else node}


def _ignored(key: str) -> bool:
    return any(key == i or (i.endswith(".") and key.startswith(i)) for i in IGNORED)


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _csv_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if _number(row.get("step")) is not None]


def load_run(path: Path) -> Run:
    """One run directory: its curves with the stages back to back."""
    config = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"), resolve=False)
    stages = list((config.get("pipeline") or {}).get("stages") or {})
    accuracy, reward = Curve(), Curve()
    offset, clock, final_accuracy, rewards = 0, 0.0, None, []
    for stage in stages:
        rows = _csv_rows(path / stage / "metrics.csv")
        last_step = offset
        for row in sorted(rows, key=lambda r: float(r["step"])):
            step = offset + int(float(row["step"])) + 1  # the step's count once it is done
            clock += _number(row.get(STEP_TIME)) or 0.0
            last_step = max(last_step, step)
            for key, curve in ((ACCURACY, accuracy), (REWARD, reward)):
                value = _number(row.get(key))
                if value is not None:
                    curve.steps.append(step)
                    curve.times.append(clock)
                    curve.values.append(value)
            if _number(row.get(REWARD)) is not None:
                rewards.append(float(row[REWARD]))
        manifest = path / stage / "manifest.json"
        metrics = json.loads(manifest.read_text()).get("metrics", {}) if manifest.exists() \
            else {}
        value = _number(metrics.get(ACCURACY))
        if value is not None:  # the stage's final held-out score, after its last step
            accuracy.steps.append(last_step)
            accuracy.times.append(clock)
            accuracy.values.append(value)
            final_accuracy = value
        offset = last_step
    final_reward = statistics.fmean(rewards[-REWARD_WINDOW:]) if rewards else None
    return Run(path, _flatten(config), accuracy, reward, final_accuracy, final_reward,
               offset, clock)


def run_dirs(path: Path) -> list[Path]:
    """The run directories a command-line argument names: a run, a sweep, or a folder of
    runs."""
    if (path / "config.yaml").exists():
        return [path]
    if (path / "summary.csv").exists():
        with (path / "summary.csv").open(newline="") as handle:
            return [Path(row["run_dir"]) for row in csv.DictReader(handle) if row.get("run_dir")]
    runs = sorted(p for p in path.iterdir() if (p / "config.yaml").exists()) \
        if path.is_dir() else []
    if not runs:
        raise SystemExit(f"r1kit compare: {path} is not a run directory (config.yaml), a sweep "
                         "directory (summary.csv) or a directory of runs")
    return runs


@dataclass
class Line:
    """The runs drawn as one line: one run, or the seeds of one configuration."""

    label: str
    values: dict  # the differing config values that name it
    runs: list[Run]

    @property
    def seeds(self) -> list:
        return [run.config.get(SEED) for run in self.runs]


def _differing(runs: list[Run]) -> list[str]:
    keys = list(dict.fromkeys(k for run in runs for k in run.config))
    keys = [k for k in keys if not _ignored(k) and k != SEED
            and len({json.dumps(run.config.get(k), sort_keys=True) for run in runs}) > 1]
    # a plugin or preset switch (algo.name, data.name) names itself: "algo=dapo" rather than
    # every option that came with it; an option is kept if it also varies between runs of
    # the same choice (two dapo runs with different epsilons)
    named = {k[:-len(".name")] for k in keys if k.endswith(".name")}

    def varies_within(key: str) -> bool:
        choice = key.rsplit(".", 1)[0] + ".name"
        seen: dict = {}
        for run in runs:
            seen.setdefault(run.config.get(choice), set()).add(json.dumps(run.config.get(key)))
        return any(len(values) > 1 for values in seen.values())

    return [k for k in keys if k.endswith(".name") or k.rsplit(".", 1)[0] not in named
            or varies_within(k)]


def group_lines(runs: list[Run]) -> list[Line]:
    keys = _differing(runs)
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.config.items() if not _ignored(k) and k != SEED},
                         sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
    lines = []
    for members in groups.values():
        values = {(k[:-len(".name")] if k.endswith(".name") else k): members[0].config.get(k)
                  for k in keys}
        label = " ".join(f"{k}={v}" for k, v in values.items()) or members[0].path.name
        if len(members) > 1:
            label += f" ({len(members)} seeds)"
        lines.append(Line(label, values, members))
    return lines


def _mean_curve(curves: list[Curve]):
    """Mean, min and max over the seeds at the steps every seed has, and the mean time."""
    common = sorted(set.intersection(*(set(c.steps) for c in curves)))
    at = [dict(zip(c.steps, zip(c.times, c.values))) for c in curves]
    times = [statistics.fmean(a[s][0] for a in at) for s in common]
    values = [[a[s][1] for a in at] for s in common]
    return (common, times, [statistics.fmean(v) for v in values],
            [min(v) for v in values], [max(v) for v in values])


def plot(lines: list[Line], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, line in enumerate(lines):
        colour = colours[index % len(colours)]
        for row, attr in enumerate(("accuracy", "reward")):
            curves = [getattr(run, attr) for run in line.runs if getattr(run, attr).steps]
            if not curves:
                continue
            steps, times, mean, low, high = _mean_curve(curves)
            for col, x in enumerate((steps, times)):
                axis = axes[row][col]
                axis.plot(x, mean, "o-" if attr == "accuracy" else "-", color=colour,
                          markersize=3, linewidth=1.2, label=line.label)
                if len(curves) > 1:
                    axis.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
    steps, times = "training step (stages back to back)", "training time (s, sum of step times)"
    titles = (("held-out accuracy (val/accuracy)", steps), ("held-out accuracy", times),
              ("train reward (reward/mean)", steps), ("train reward", times))
    for axis, (title, xlabel) in zip(axes.flat, titles):
        axis.set_title(title)
        axis.set_xlabel(xlabel)
        axis.grid(alpha=0.3)
    for axis in axes[0]:
        axis.set_ylim(-0.03, 1.03)  # a fraction: runs compare at a glance on one scale
    for axis in axes[:, 0]:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = [], []
    for axis in axes.flat:
        for h, lab in zip(*axis.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8,
                   title="shaded: lowest to highest seed" if any(
                       len(line.runs) > 1 for line in lines) else None, title_fontsize=8)
    fig.tight_layout(rect=(0, 0.06 + 0.025 * math.ceil(len(labels) / 3), 1, 1))
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _spread(values: list) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def table_rows(lines: list[Line]) -> list[dict]:
    rows = []
    for line in lines:
        accuracy, accuracy_std = _spread([r.final_accuracy for r in line.runs])
        reward, reward_std = _spread([r.final_reward for r in line.runs])
        rows.append({"label": line.label, **line.values,
                     "seeds": " ".join(str(s) for s in line.seeds), "runs": len(line.runs),
                     "accuracy": accuracy, "accuracy_std": accuracy_std,
                     "reward": reward, "reward_std": reward_std,
                     "steps": statistics.fmean(r.steps for r in line.runs),
                     "time_s": statistics.fmean(r.time_s for r in line.runs),
                     "run_dirs": " ".join(str(r.path) for r in line.runs)})
    return rows


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: list[dict]) -> str:
    # the CSV has every column; the printed table leaves out the empty ones and the paths
    columns = [c for c in rows[0] if c != "run_dirs"
               and any(row.get(c) is not None for row in rows)]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    def line(values) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def compare(paths: list[Path], out: Path) -> list[dict]:
    found = dict.fromkeys(p.resolve() for path in paths for p in run_dirs(path))  # once each
    runs = [load_run(p) for p in found]
    if not runs:
        raise SystemExit("r1kit compare: no runs found")
    lines = group_lines(runs)
    out.mkdir(parents=True, exist_ok=True)
    plot(lines, out / PNG)
    rows = table_rows(lines)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with (out / TABLE).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r1kit compare", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path, metavar="RUN_OR_SWEEP_DIR",
                        help="run directories, sweep directories (with summary.csv), or "
                             "directories of runs")
    parser.add_argument("--out", type=Path, default=None,
                        help="where compare.png and compare.csv go (default: the one "
                             "directory given, else ./compare)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    out = args.out or (args.dirs[0] if len(args.dirs) == 1 else Path("compare"))
    rows = compare(args.dirs, out)
    print(format_table(rows))
    print(f"r1kit compare: wrote {out / PNG} and {out / TABLE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
