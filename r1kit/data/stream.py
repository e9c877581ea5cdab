"""An endless, resumable, per-rank stream of training rows.

The trainer draws prompts itself (a filter may ask for more mid-step), so the stream, not a
DataLoader, owns the data position; it is saved in every checkpoint.
"""

from __future__ import annotations

import torch


class PromptStream:
    def __init__(self, rows: list[dict], *, seed: int, rank: int = 0, world_size: int = 1):
        if len(rows) < world_size:
            raise ValueError(f"data: {len(rows)} training rows cannot be shared by "
                             f"{world_size} ranks")
        self.rows, self.seed, self.rank, self.world_size = rows, seed, rank, world_size
        self.position = 0  # rows this rank has consumed
        self._epoch, self._order = -1, []

    def _shard(self, epoch: int) -> list[int]:
        # every rank shuffles identically and takes its own stride: no row is seen twice per epoch
        generator = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        order = torch.randperm(len(self.rows), generator=generator).tolist()
        shard = order[self.rank::self.world_size]
        return shard[: len(self.rows) // self.world_size]  # equal length on every rank

    def take(self, count: int) -> list[dict]:
        out = []
        while len(out) < count:
            per_epoch = len(self.rows) // self.world_size
            epoch, offset = divmod(self.position, per_epoch)
            if epoch != self._epoch:
                self._epoch, self._order = epoch, self._shard(epoch)
            step = min(count - len(out), per_epoch - offset)
            out += [self.rows[i] for i in self._order[offset: offset + step]]
            self.position += step
        return out

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])
