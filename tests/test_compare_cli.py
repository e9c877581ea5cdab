"""``python -m r1kit compare``: one PNG and one table that put runs side by side, a sweep's
runs labelled by their swept values, seeds of one configuration averaged with their spread."""

import csv
import json
import statistics
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from r1kit.cli.compare import compare, group_lines, load_run
from tests.conftest import run_cli
from tests.run.wandb_records import offline_run

SHRUNK = ["pipeline=grpo", "model=tiny", "data=arithmetic", "trainer.max_steps=3",
          "data.batch_size=2", "data.val_size=2", "eval.k=1", "eval.every=1",
          "algo.group_size=2", "sampler.max_new_tokens=8", "reward=[sevens,accuracy]",
          "trainer.enable_progress_bar=false", "logger.backends=[wandb]"]


def _fake_run(path: Path, *, seed: int, epsilon: float, algo: str = "grpo",
              rewards=(0.1, 0.2, 0.3), accuracy=(0.0, 0.5)) -> Path:
    """A run directory as r1kit leaves one: config.yaml, a GRPO stage's metrics and manifest."""
    (path / "rl").mkdir(parents=True)
    OmegaConf.save({"seed": seed, "run_dir": str(path), "algo": {"name": algo,
                    "epsilon": epsilon, "aggregation": "grpo" if algo == "grpo" else "token"},
                    "logger": {"backends": []}, "pipeline": {"stages": {"rl": {"kind": "grpo"}}}},
                   path / "config.yaml")
    with (path / "rl" / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "reward/mean", "time/step_s",
                                                    "val/accuracy"])
        writer.writeheader()
        for step, reward in enumerate(rewards):
            writer.writerow({"step": step, "reward/mean": reward, "time/step_s": 2.0,
                             "val/accuracy": accuracy[0] if step == 0 else ""})
    (path / "rl" / "manifest.json").write_text(json.dumps(
        {"metrics": {"val/accuracy": accuracy[1]}}))
    return path


def test_runs_differing_only_by_seed_are_one_line_with_mean_and_spread(tmp_path):
    a = _fake_run(tmp_path / "a", seed=0, epsilon=0.1, rewards=(0.1, 0.2, 0.3), accuracy=(0, .5))
    b = _fake_run(tmp_path / "b", seed=1, epsilon=0.1, rewards=(0.3, 0.4, 0.5), accuracy=(0, .7))
    c = _fake_run(tmp_path / "c", seed=0, epsilon=0.2, algo="dapo")
    run = load_run(a)
    assert run.reward.steps == [1, 2, 3] and run.reward.times == [2.0, 4.0, 6.0]
    assert run.accuracy.steps == [1, 3] and run.accuracy.values == [0.0, 0.5]  # + the final
    lines = group_lines([load_run(p) for p in (a, b, c)])
    # algo.name differs: "algo=dapo" stands for every option that came with it...
    assert [line.label for line in lines] == ["algo=grpo (2 seeds)", "algo=dapo"]
    d = _fake_run(tmp_path / "d", seed=0, epsilon=0.3, algo="dapo")
    lines = group_lines([load_run(p) for p in (a, b, c, d)])
    # ... unless an option also differs between runs of the same choice
    assert [line.label for line in lines] == ["algo=grpo algo.epsilon=0.1 (2 seeds)",
                                              "algo=dapo algo.epsilon=0.2",
                                              "algo=dapo algo.epsilon=0.3"]
    rows = compare([tmp_path], tmp_path / "out")
    assert (rows[0]["seeds"], rows[0]["runs"]) == ("0 1", 2)
    assert rows[0]["accuracy"] == pytest.approx(0.6)
    assert rows[0]["accuracy_std"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert rows[0]["reward"] == pytest.approx(statistics.fmean([0.2, 0.4]))  # last-10 means
    assert rows[1]["accuracy_std"] is None and rows[0]["time_s"] == 6.0
    assert (tmp_path / "out" / "compare.png").stat().st_size > 10_000


def test_compare_a_two_by_two_sweep(tmp_path):
    sweep = run_cli("-m", "optim.lr=1e-4,3e-3", "seed=0,1", "algo.beta=0", *SHRUNK,
                    cwd=tmp_path, module="tests.distributed.learnable_main",
                    env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    result = run_cli("compare", str(sweep_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote {sweep_dir / 'compare.png'}" in result.stdout
    with (sweep_dir / "compare.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["label"], r["optim.lr"], r["seeds"], r["runs"]) for r in rows] == [
        ("optim.lr=0.0001 (2 seeds)", "0.0001", "0 1", "2"),
        ("optim.lr=0.003 (2 seeds)", "0.003", "0 1", "2")]
    for row in rows:  # the mean over seeds of each run's final reward (its last steps)
        finals = []
        for run_dir in row["run_dirs"].split():
            with (Path(run_dir) / "rl" / "metrics.csv").open() as handle:
                rewards = [float(r["reward/mean"]) for r in csv.DictReader(handle)
                           if r["reward/mean"]]
            finals.append(statistics.fmean(rewards))
        assert float(row["reward"]) == pytest.approx(statistics.fmean(finals))
        assert float(row["steps"]) == 3
    assert "optim.lr=0.003 (2 seeds)" in result.stdout
    png = (sweep_dir / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000

    # the jobs of one sweep are one W&B group; each job's card has its own exact command
    run_dirs = [Path(d) for row in rows for d in row["run_dirs"].split()]
    assert {offline_run(d / "rl")["group"] for d in run_dirs} == {sweep_dir.name}
    card = (run_dirs[0] / "rl" / "model" / "README.md").read_text()
    assert "python -m r1kit" in card and "optim.lr=0.0001" in card and "seed=0" in card
