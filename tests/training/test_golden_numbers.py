"""Golden numbers: the first steps of seeded tiny GRPO runs, in one thread and deterministic
mode, give these exact metrics. A change that alters the math (the loss, the advantages, the
sampling, the data order) fails here; a refactor that does not, passes. Update the numbers only
with a reason in the commit message."""

import csv

import pytest

from tests.conftest import run_cli
from tests.recipes.conftest import oracle_dist

COMMON = [
    "pipeline=grpo", "model=tiny", "data=arithmetic", "reward=[sevens,format]",
    "data.batch_size=4", "algo.group_size=8", "algo.micro_batch_size=8",
    "sampler.max_new_tokens=24", "sampler.temperature=1.2", "optim.lr=1e-3", "seed=3",
    "eval.every=0", "data.val_size=4", "eval.k=1", "logger=csv", "deterministic=true",
    "trainer.enable_progress_bar=false"]

CONFIGS = {
    # GRPO as the papers define it: μ = 1 (π_old = current policy), k3 KL to the reference
    "grpo": ["algo.beta=0.04", "trainer.max_steps=3"],
    # μ = 2 (π_old from the sampler's own log-probs), DAPO's clip-higher and token mean, β = 0
    # (zero-advantage groups skipped); two optimizer steps per training step
    "mu2_dapo": ["algo.beta=0", "algo.iterations=2", "algo.epsilon_high=0.28",
                 "algo.aggregation=token_mean", "trainer.max_steps=6"],
}

#: training step -> metrics, as measured at commit 5cb0f2d (+ the test itself)
GOLDEN = {
    "grpo": {
        0: {"train/loss": 1.862645149230957e-09, "train/kl": 0.0,
            "reward/mean": 0.005081248469650745, "completion/length": 21.90625},
        1: {"train/loss": 0.000819315537228249, "train/kl": 0.020482912426814437,
            "reward/mean": 0.01268601231276989, "completion/length": 22.8125},
        2: {"train/loss": 0.0016856192669365555, "train/kl": 0.04214052949100733,
            "reward/mean": 0.013568427413702011, "completion/length": 22.03125},
    },
    "mu2_dapo": {
        0: {"reward/mean": 0.005081248469650745, "completion/length": 21.90625},
        1: {"reward/mean": 0.01231398805975914, "completion/length": 22.8125},
        2: {"reward/mean": 0.013471363112330437, "completion/length": 22.03125},
    },
}
#: what each config pins: the μ = 2 run's per-update terms are not pinned (which update's
#: terms a step logs is bookkeeping, not math); its rewards depend on both updates' math
PINNED = {"grpo": ("train/loss", "train/kl", "reward/mean", "completion/length"),
          "mu2_dapo": ("reward/mean", "completion/length")}


@pytest.mark.parametrize("name", CONFIGS)
def test_first_steps_of_a_seeded_run_match_the_golden_numbers(name, tmp_path):
    env = {**oracle_dist(tmp_path / "dist", extra={"sevens": "tests.training.learnable_reward"}),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = run_cli(*COMMON, *CONFIGS[name], f"run_dir={tmp_path}", env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with (tmp_path / "rl" / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("reward/mean")]
    measured = {i: {key: float(row[key]) for key in PINNED[name]} for i, row in enumerate(rows)}
    assert sorted(measured) == sorted(GOLDEN[name])
    for step, values in GOLDEN[name].items():
        assert measured[step] == pytest.approx(values, rel=1e-5, abs=1e-7), step
