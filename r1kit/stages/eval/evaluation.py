"""Held-out evaluation: greedy accuracy, avg@k (pass@1 averaged over k samples) and maj@k.

Every metric is a mean, kept as a sum and a count until the end, so that ranks evaluating
their own rows can add their sums and counts (``reduce``) and get exactly the metrics of one
process evaluating all the rows.
"""

from __future__ import annotations

from collections import Counter

import torch

from r1kit.rewards.answer import extract_answer
from r1kit.run.samples import sample_rows


def _finite_sum(values: torch.Tensor) -> tuple[float, int]:
    """Sum and count of the finite values: a reward that does not apply (NaN) is left out of
    its mean, as ``nanmean`` does."""
    finite = values[~torch.isnan(values)].double()
    return float(finite.sum()), finite.numel()


class Evaluator:
    """``reduce(tensor) -> tensor``: the element-wise sum over ranks (``Ranks.sum``, say), when
    each rank holds its own ``rows``; every rank must then call :meth:`run`, rows or none. Left
    out, the metrics are those of this process's rows.

    The rows are sampled ``batch_size`` at a time (0: all at once), which bounds memory, and
    ``progress`` (an ``r1kit.run.progress.Progress`` over the rows) advances after each batch.
    With ``keep_samples`` the greedy completions of the last run stay in ``samples`` (one dict
    per row: prompt, completion, answer, rewards, reward, truncated)."""

    def __init__(self, collector, rows: list[dict], *, every: int, k: int, reduce=None,
                 batch_size: int = 0, progress=None, keep_samples: bool = False):
        self.collector, self.rows, self.every, self.k = collector, rows, every, k
        self.reduce, self.batch_size, self.progress = reduce, batch_size, progress
        self.keep_samples, self.samples = keep_samples, []

    def due(self, step: int) -> bool:
        """Whether a training stage evaluates at ``step`` (every ``every`` steps; 0: never)."""
        return self.every > 0 and step % self.every == 0

    def metric_names(self) -> list[str]:
        """The same on every rank (from the config, not from the rows a rank holds)."""
        rewards = [spec.name for spec in self.collector.rewards]
        names = ["val/reward", *(f"val/{name}" for name in rewards)]
        if self.k > 1 and "accuracy" in rewards:
            names += [f"val/avg@{self.k}", f"val/maj@{self.k}"]
        return names

    def run(self, step: int | None = None) -> dict:
        names = self.metric_names()
        totals = self._sums(names)
        if self.reduce is not None:
            totals = self.reduce(totals)
        sums, counts = totals.unbind(1)
        if not counts[0]:  # no rows at all (on any rank)
            return {}
        return {name: float(s / c) if c else float("nan")
                for name, s, c in zip(names, sums.tolist(), counts.tolist())}

    def _sums(self, names: list[str]) -> torch.Tensor:
        """(len(names), 2) float64: each metric's sum and count over this process's rows."""
        totals = torch.zeros(len(names), 2, dtype=torch.float64)
        self.samples = []
        size = self.batch_size or max(len(self.rows), 1)
        for start in range(0, len(self.rows), size):
            batch = self.rows[start:start + size]
            totals += self._batch_sums(names, batch)
            if self.progress is not None:
                self.progress.advance(len(batch))
        return totals

    def _batch_sums(self, names: list[str], rows: list[dict]) -> torch.Tensor:
        out = dict.fromkeys(names, (0.0, 0))
        greedy = self.collector.sample(rows, 1, greedy=True)
        # a plain mean, as before: a NaN total reward shows up rather than being dropped
        out["val/reward"] = (float(greedy.rewards.double().sum()), len(greedy.rewards))
        for name, values in greedy.reward_parts.items():
            out[f"val/{name}"] = _finite_sum(values)
        if f"val/maj@{self.k}" in out:
            sampled = self.collector.sample(rows, self.k)
            out[f"val/avg@{self.k}"] = _finite_sum(sampled.reward_parts["accuracy"])
            solved = _majority_solved(sampled, len(rows), self.k)
            out[f"val/maj@{self.k}"] = (sum(solved), len(solved))
        if self.keep_samples:
            self.samples += _greedy_rows(greedy)
        return torch.tensor([out[name] for name in names], dtype=torch.float64)


def _greedy_rows(rollout) -> list[dict]:
    """The greedy completions as sample rows, each with its row's reference ``answer`` (when
    it has one) beside what the model answered; one completion per prompt, so no group."""
    out = []
    for row, example in zip(sample_rows(rollout), rollout.examples):
        row.pop("group")
        answer = {"answer": example["answer"]} if "answer" in example else {}
        out.append({"prompt": row.pop("prompt"), "completion": row.pop("completion"),
                    **answer, **row})
    return out


def _majority_solved(rollout, num_rows: int, k: int) -> list[float]:
    """Per row: 1 when its most common extracted answer is a correct one (its best sample with
    that answer, for a partly-correct accuracy), else 0."""
    correct = rollout.reward_parts["accuracy"].view(num_rows, k)
    solved = []
    for i in range(num_rows):
        answers = [extract_answer(rollout.completions[i * k + j]) for j in range(k)]
        votes = Counter(a for a in answers if a is not None)
        if not votes:
            solved.append(0.0)
            continue
        winner = votes.most_common(1)[0][0]
        solved.append(max(float(correct[i, j]) for j in range(k) if answers[j] == winner))
    return solved
