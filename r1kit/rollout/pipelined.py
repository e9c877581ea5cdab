"""Pipelined (one-step off-policy) rollouts, ``algo.async_rollouts``: sampling overlaps training.

At the start of step k the rollout for step k is already there (sampled while step k-1
trained); the sampler's weights are then set to the policy's (the end of step k-1) and the
rollout for step k+1 starts in a background thread while step k trains on its own. Each rollout
is thus sampled from weights one optimizer step older than the ones it trains (the first is
sampled in the step itself, from the current weights), and its π_old must be the sampling
policy's own log-probs, which the sampler reports.

The background collection has its own sampler: a sampler that generates with the policy's own
tensors (``SamplerCapabilities.samples_policy_in_place``, the hf sampler) gets a copy of the
weights, refreshed before each launch; an engine with its own weights (vLLM) is synced the same
way. Everything else (rewards, filters, refills) is the stage's collector, run in that thread.

A checkpoint waits for the rollout in flight and stores it (``state_dict``), so a resumed run
trains on exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import copy
import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from r1kit.rollout.batch import Rollout


class PolicyCopy:
    """A frozen copy of the policy for a sampler to generate with while the policy trains, and
    the random source of that sampler's draws (``generator``): torch's global generator is
    shared by every thread, so draws made beside training would interleave with the training
    thread's in an order no rerun reproduces. Its seed is drawn from the global generator (so
    from ``seed`` and the rank) at the first sync; a checkpoint carries its state."""

    def __init__(self, policy: torch.nn.Module):
        self.model = copy.deepcopy(policy).eval().requires_grad_(False)
        self.generator = None
        self._state = None  # a checkpoint's generator state, applied once the device is known

    @torch.no_grad()
    def sync(self, policy: torch.nn.Module) -> None:
        """Copy the policy's current weights (and buffers) into the copy, on the policy's
        device (the Trainer may have moved the policy since the copy was made)."""
        device = next(policy.parameters()).device
        if next(self.model.parameters()).device != device:
            self.model.to(device)
        if self.generator is None:
            self.generator = torch.Generator(device=device)
            if self._state is not None:
                self.generator.set_state(self._state)
                self._state = None
            else:
                self.generator.manual_seed(int(torch.randint(0, 2 ** 62, ()).item()))
        for mine, theirs in zip(self.model.parameters(), policy.parameters(), strict=True):
            mine.copy_(theirs)
        for mine, theirs in zip(self.model.buffers(), policy.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict:
        return {"generator": None if self.generator is None else self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator, self._state = None, state["generator"]


class PipelinedRollouts:
    """Hands out each step's rollout and starts the next one in the background.

    ``collector`` is a ``RolloutCollector`` whose sampler is the background one; ``sync(policy)``
    gives that sampler the policy's current weights (called in the training thread, never while
    a rollout is in flight); ``weights``, the ``PolicyCopy`` it samples from if it has one,
    whose random source is checkpointed with the rollout in flight.
    """

    def __init__(self, collector, sync, weights: PolicyCopy | None = None):
        self.collector, self._sync, self.weights = collector, sync, weights
        self._pending: Future | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="r1kit-rollout")

    def next(self, policy, stream, num_prompts: int, group_size: int, max_refill_rounds: int,
             *, launch: bool = True):
        """This step's ``(rollout, stats)``; ``stats["rollout/staleness"]`` is how many
        optimizer steps older than the current weights its sampling weights are. ``launch``:
        start the next step's rollout (not after the last step)."""
        args = (stream, num_prompts, group_size, max_refill_rounds)
        if self._pending is None:  # the first step, or a resume without a rollout in flight
            self._sync(policy)
            rollout, stats = self.collector.collect(*args)
            staleness = 0
        else:
            rollout, stats = self._pending.result()
            staleness = 1
            self._pending = None
        if launch:
            self._sync(policy)  # the weights of the end of the previous step
            self._pending = self._executor.submit(self.collector.collect, *args)
        return rollout, {**stats, "rollout/staleness": float(staleness)}

    def drain(self) -> None:
        """Wait until the rollout in flight (if any) is complete; it stays pending. Called
        before anything that must not run beside it: held-out eval on a shared engine, a
        checkpoint (which stores it and the stream position after it)."""
        if self._pending is not None:
            self._pending.result()

    def state_dict(self) -> dict | None:
        """The rollout in flight as plain containers and tensors (what a checkpoint loaded
        with ``weights_only`` may hold), or None."""
        self.drain()
        if self._pending is None:
            return None
        rollout, stats = self._pending.result()
        fields = None if rollout is None else {
            f.name: getattr(rollout, f.name) for f in dataclasses.fields(rollout)}
        return {"rollout": fields, "stats": stats,
                "weights": None if self.weights is None else self.weights.state_dict()}

    def load_state_dict(self, state: dict | None) -> None:
        self._pending = None
        if state is not None and self.weights is not None and state["weights"] is not None:
            self.weights.load_state_dict(state["weights"])
        if state is not None:
            fields = state["rollout"]
            done: Future = Future()
            done.set_result((None if fields is None else Rollout(**fields), state["stats"]))
            self._pending = done

    def close(self) -> None:
        """Wait for the rollout in flight and stop the thread (the end of a stage)."""
        try:
            self.drain()
        finally:
            self._executor.shutdown(wait=True)
