"""Held-out evaluation: greedy accuracy, avg@k (pass@1 averaged over k samples) and maj@k."""

from __future__ import annotations

from collections import Counter

import torch

from r1kit.rewards.answer import extract_answer
from r1kit.trainers.common import nanmean


class Evaluator:
    def __init__(self, collector, rows: list[dict], *, every: int, k: int):
        self.collector, self.rows, self.every, self.k = collector, rows, every, k

    def due(self, step: int) -> bool:
        return bool(self.rows) and self.every > 0 and step % self.every == 0

    def run(self, step: int | None = None) -> dict:
        if not self.rows:
            return {}
        greedy = self.collector.sample(self.rows, 1, greedy=True)
        metrics = {"val/reward": float(greedy.rewards.mean())}
        for name, values in greedy.reward_parts.items():
            metrics[f"val/{name}"] = nanmean(values)
        if self.k > 1 and "accuracy" in greedy.reward_parts:
            sampled = self.collector.sample(self.rows, self.k)
            correct = sampled.reward_parts["accuracy"].view(len(self.rows), self.k)
            metrics[f"val/avg@{self.k}"] = nanmean(correct.flatten())
            metrics[f"val/maj@{self.k}"] = _majority_accuracy(sampled, self.rows, self.k)
        return metrics


def _majority_accuracy(rollout, rows, k) -> float:
    """A prompt counts as solved when its most common extracted answer is a correct one."""
    correct = rollout.reward_parts["accuracy"].view(len(rows), k)
    solved = []
    for i in range(len(rows)):
        answers = [extract_answer(rollout.completions[i * k + j]) for j in range(k)]
        votes = Counter(a for a in answers if a is not None)
        if not votes:
            solved.append(0.0)
            continue
        winner = votes.most_common(1)[0][0]
        solved.append(max(float(correct[i, j]) for j in range(k) if answers[j] == winner))
    return float(torch.tensor(solved).mean())
