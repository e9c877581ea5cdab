"""Write sampled completions with their rewards and advantages as JSON lines."""

from __future__ import annotations

import json
import math
from pathlib import Path


class SampleWriter:
    def __init__(self, path: Path, every: int):
        self.path, self.every = path, every

    def due(self, step: int, *, last: bool = False) -> bool:
        """Every ``every`` steps, and at the first and the last step, so that even a short
        smoke run shows what the model writes (0 writes nothing)."""
        return self.every > 0 and (step % self.every == 0 or step == 1 or last)

    def write(self, step: int, rollout, advantages) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            for i in range(len(rollout)):
                rewards = {name: (None if math.isnan(float(v[i])) else float(v[i]))
                           for name, v in rollout.reward_parts.items()}
                handle.write(json.dumps({
                    "step": step, "group": int(rollout.group_ids[i]),
                    "prompt": rollout.prompts[i], "completion": rollout.completions[i],
                    "rewards": rewards, "reward": float(rollout.rewards[i]),
                    "advantage": float(advantages[i]),
                    "truncated": bool(rollout.truncated[i])}) + "\n")
