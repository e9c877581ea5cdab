"""``algo.async_rollouts``: step k+1's rollout is sampled while step k trains, from weights one
step old; π_old is the sampler's own; a kill mid-run resumes to the uninterrupted result."""

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1kit.rollout.batch import Rollout
from r1kit.rollout.pipelined import PipelinedRollouts, PolicyCopy
from tests.conftest import REPO, SHRINK


class _Collector:
    """Records, for each collect, the weight value its sampler saw and the thread it ran in."""

    def __init__(self, weights):
        self.weights, self.seen = weights, []

    def collect(self, stream, num_prompts, group_size, max_refill_rounds):
        time.sleep(0.05)  # long enough for the trainer's work to overlap it
        self.seen.append((float(self.weights.model.weight), threading.current_thread().name))
        name = f"rollout {len(self.seen)}"
        return Rollout(examples=[{}], prompts=["p"], completions=[name], prompt_ids=[[1]],
                       completion_ids=[[2]], group_ids=torch.zeros(1, dtype=torch.long),
                       truncated=torch.zeros(1, dtype=torch.bool)), {
            "rollout/kept_groups": num_prompts}


def test_each_rollout_is_sampled_one_step_behind_in_the_background():
    policy = torch.nn.Linear(1, 1, bias=False)
    weights = PolicyCopy(policy)
    collector = _Collector(weights)
    pipeline = PipelinedRollouts(collector, weights.sync)
    got = []
    for step in range(4):
        with torch.no_grad():
            policy.weight.fill_(float(step))  # "the end of the previous step" is ``step``
        got.append(pipeline.next(policy, None, 2, 4, 0, launch=step < 3))
        with torch.no_grad():
            policy.weight.fill_(99.0)  # training this step: never what a launch samples from
    pipeline.close()
    assert [rollout.completions[0] for rollout, _ in got] == [f"rollout {i}" for i in range(1, 5)]
    assert [stats["rollout/staleness"] for _, stats in got] == [0.0, 1.0, 1.0, 1.0]
    # the first rollout is sampled in the step, from its weights; each later one in the
    # background from the weights the previous step started with
    assert [value for value, _ in collector.seen] == [0.0, 0.0, 1.0, 2.0]
    assert collector.seen[0][1] == threading.current_thread().name
    assert all(name.startswith("r1kit-rollout") for _, name in collector.seen[1:])


def test_the_rollout_in_flight_is_checkpointed_and_restored():
    policy = torch.nn.Linear(1, 1, bias=False)
    weights = PolicyCopy(policy)
    pipeline = PipelinedRollouts(_Collector(weights), weights.sync)
    pipeline.next(policy, None, 2, 4, 0)
    state = pipeline.state_dict()
    pipeline.close()
    assert state["stats"] == {"rollout/kept_groups": 2}
    assert state["rollout"]["completions"] == ["rollout 2"]  # plain fields, no Rollout object
    resumed = PipelinedRollouts(_Collector(weights), weights.sync)
    resumed.load_state_dict(state)
    rollout, stats = resumed.next(policy, None, 2, 4, 0, launch=False)
    assert isinstance(rollout, Rollout) and rollout.completions == ["rollout 2"]
    assert stats["rollout/staleness"] == 1.0
    resumed.close()


ARGS = [*SHRINK, "pipeline=grpo", "reward=[sevens]", "algo.async_rollouts=true",
        "checkpoint_every=2", "deterministic=true", "seed=3", "optim.lr=3e-3", "algo.beta=0.04",
        "sampler.max_new_tokens=8", "eval.every=0"]


def _command(run_dir, steps):
    return [sys.executable, "-m", "tests.distributed.learnable_main", *ARGS,
            f"trainer.max_steps={steps}", f"run_dir={run_dir}"]


def _rows(run_dir: Path) -> list[dict]:
    with (run_dir / "rl" / "metrics.csv").open() as handle:
        return [row for row in csv.DictReader(handle) if row.get("reward/mean")]


def test_a_pipelined_run_trains_logs_staleness_and_resumes_exactly_after_a_kill(tmp_path):
    steps = 8
    straight = subprocess.run(_command(tmp_path / "straight", steps), cwd=REPO,
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    rows = _rows(tmp_path / "straight")
    assert [float(r["rollout/staleness"]) for r in rows] == [0.0] + [1.0] * (steps - 1)
    assert len({r["reward/sevens"] for r in rows}) > 1  # the rewards moved: there was learning

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(_command(run_dir, steps), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    ckpt = run_dir / "rl" / "checkpoints" / "last.ckpt"
    while not ckpt.exists() or not (run_dir / "rl" / "metrics.csv").exists() or len(
            _rows(run_dir)) < 3:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint and third step in time"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "rl" / "manifest.json").exists(), "run finished before the kill"
    resumed = subprocess.run(_command(run_dir, steps), cwd=REPO, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["step"] for r in _rows(run_dir)] == [r["step"] for r in rows]
    assert [r["train/loss"] for r in _rows(run_dir)] == [r["train/loss"] for r in rows]
    a = load_file(run_dir / "rl" / "model" / "model.safetensors")
    b = load_file(tmp_path / "straight" / "rl" / "model" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
