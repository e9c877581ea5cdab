"""The processes of a stage without a Trainer (rejection sampling, eval): start or join them.

A training stage gets its processes from Lightning's Trainer, whose launcher starts ranks
1..N-1 (re-running the same command) when it first fits. A generation stage has no Trainer, and
a rerun can resume straight into one (the stages before it have manifests and are skipped), so
such a stage launches the processes itself: a ``lightning.Fabric`` built from the stage's
``trainer`` config, then ``launch()``. That one call does the right thing in every case:

* a fresh run, or a rerun that resumes into this stage: rank 0 starts the other ranks (they run
  the same command, skip the finished stages and reach this call) and all of them initialise the
  process group;
* after a Trainer (or an earlier generation stage) in the same run: ``LOCAL_RANK`` is set in
  every process by then (the launcher sets it in rank 0 too), so nothing is spawned again, and
  Lightning's ``_init_dist_connection`` keeps the process group that is already initialised;
* under torchrun or SLURM: the cluster environment created the processes, Fabric joins them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import lightning as L
import torch
import torch.distributed as dist

#: The Trainer settings that decide the processes and devices; the rest (precision, steps,
#: loggers) does not concern a stage that only generates.
PROCESS_KEYS = ("accelerator", "devices", "num_nodes", "strategy")
#: Strategies that shard the model for training. Generation keeps a whole model on every rank,
#: and these start and join processes as DDP does, so the stages run them as DDP.
SHARDING = ("fsdp", "deepspeed")
#: How long a rank waits for the others. Ranks finish their share of a generation job up to one
#: shard's sampling time apart, which can pass the default collective timeout (30 minutes for
#: gloo, 10 for NCCL); a rank that died should still not hold the others forever.
WAIT = timedelta(hours=24)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the stage's processes, and the few collectives the stages
    need. They all go through a CPU (gloo) group, whatever the accelerator, with the long
    ``WAIT`` timeout. In a single process every collective is a no-op."""

    rank: int
    world_size: int
    device: torch.device
    group: object = None  # None in a single process

    @property
    def is_global_zero(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.group is not None:
            dist.barrier(group=self.group)

    def broadcast(self, obj):
        """Rank 0's ``obj`` (any picklable value), on every rank."""
        if self.group is None:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's ``obj`` (any picklable value), in rank order, on every rank."""
        if self.group is None:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``tensor`` over ranks, as a float64 CPU tensor."""
        total = tensor.detach().to("cpu", torch.float64).clone()
        return total if self.group is None else sum_over_ranks(total, self.group)

    def on_rank_zero(self, fn):
        """``fn()`` on rank 0 alone; every rank returns its result, or raises its error (a rank 0
        failing alone would leave the others waiting in their next collective). The other
        ranks get the error as a message: not every exception survives pickling."""
        if not self.is_global_zero:
            ok, value = self.broadcast(None)
            if not ok:
                raise RuntimeError(f"rank 0 failed: {value}")
            return value
        try:
            result = fn()
        except Exception as error:
            self.broadcast((False, f"{type(error).__name__}: {error}"))
            raise
        return self.broadcast((True, result))[1]


def sum_over_ranks(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over the ranks of ``group`` (the default group: the
    training processes), on ``tensor``'s device; unchanged without a process group. It is the
    ``reduce`` of an ``Evaluator`` whose ranks each hold their own held-out rows."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return tensor
    # NCCL reduces CUDA tensors only; gloo takes them where they are
    device = torch.device("cuda", torch.cuda.current_device()) \
        if dist.get_backend(group) == "nccl" else tensor.device
    total = tensor.to(device).clone()
    dist.all_reduce(total, group=group)
    return total.to(tensor.device)


def join_ranks(trainer_cfg) -> Ranks:
    """Start or join the processes the ``trainer`` config asks for (see the module docstring);
    returns this process's rank, the world size and this rank's device."""
    args = dict(trainer_cfg)
    options = {key: args[key] for key in PROCESS_KEYS if key in args}
    strategy = options.get("strategy")
    if isinstance(strategy, str) and strategy.startswith(SHARDING):
        options["strategy"] = "ddp"
    fabric = L.Fabric(**options)
    fabric.launch()
    group = _wait_group() if fabric.world_size > 1 else None
    return Ranks(fabric.global_rank, fabric.world_size, fabric.device, group)


@lru_cache(maxsize=None)
def _wait_group():
    # one per process: creating a group is itself a collective, and every stage would add one
    return dist.new_group(backend="gloo", timeout=WAIT)
