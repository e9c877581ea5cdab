"""Running the composed rewards on a batch: the one code path of the trainer and the scoring CLI.

Each reward runs in its own thread (they are independent, and the slow ones, such as math-verify
or a sandbox, mostly wait on other processes), under its own time limit. A failure is never
turned into a silent 0.0: it stops the run with a :class:`RewardError` that names the reward and
the sample, or, where the config says a reward's failures may be skipped, the failing samples
get ``None`` (the reward does not count for them) and are counted in ``RewardScores.errors``.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
_PREVIEW_CHARS = 40


@dataclass
class RewardSpec:
    """One reward of the composed set, as the config ``reward.<name>`` node describes it."""

    name: str
    #: ``fn(completions, examples, options) -> list[float | None]`` (``r1kit.api.RewardFn``).
    fn: Callable[..., Any]
    weight: float = 1.0
    #: The reward's typed options (its schema joined with ``RewardCommon``), handed to ``fn``.
    options: Any = None
    #: Seconds one call of ``fn`` may take; ``None`` waits forever.
    timeout: float | None = None
    #: ``"raise"``: a failing sample stops the run. ``"skip"``: it scores ``None`` and is counted.
    on_error: str = "raise"

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ValueError(f"reward '{self.name}': on_error must be one of {ON_ERROR}, "
                             f"got {self.on_error!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"reward '{self.name}': timeout must be > 0 or None, "
                             f"got {self.timeout}")
        if not math.isfinite(self.weight):
            raise ValueError(f"reward '{self.name}': weight must be finite, got {self.weight}")


@dataclass
class RewardScores:
    """The rewards of a batch."""

    #: Each reward on its own, one value per completion (``None``: does not apply, or skipped).
    parts: dict[str, list[float | None]]
    #: Weighted sum of the rewards that apply to each completion; 0.0 where none does.
    total: list[float]
    #: Per reward, the samples that raised or timed out and were skipped (``on_error="skip"``).
    errors: dict[str, int]


class RewardError(Exception):
    """A reward failed, or broke its contract; the message names the reward and the sample."""

    def __init__(self, message: str, *, reward: str, index: int | None = None) -> None:
        super().__init__(message)
        self.reward = reward
        self.index = index


def compute_rewards(specs: list[RewardSpec], completions: list[str],
                    examples: list[dict]) -> RewardScores:
    """Score ``completions`` (``examples[i]`` is the dataset row of ``completions[i]``) with
    every reward of ``specs``, concurrently, and combine them with their weights.

    :raises RewardError: a reward raised or overran its ``timeout`` with ``on_error="raise"``,
        or returned something other than one number (or ``None``) per completion.
    """
    return start_rewards(specs, completions, examples).result()


def start_rewards(specs: list[RewardSpec], completions: list[str],
                  examples: list[dict]) -> "PendingRewards":
    """Start scoring like :func:`compute_rewards` and return at once: the rewards run in their
    threads while the caller does other work (the trainer runs the reference model's forward
    pass meanwhile); ``.result()`` waits and combines them. Bad arguments raise here."""
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions but {len(examples)} examples")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"reward names must be unique, got {names}")
    return PendingRewards(specs, completions, examples)


class PendingRewards:
    """Reward calls already running (one thread each, see ``_Call``)."""

    def __init__(self, specs: list[RewardSpec], completions: list[str],
                 examples: list[dict]) -> None:
        self.specs, self.completions, self.examples = specs, completions, examples
        self.calls = [_Call(spec, completions, examples) for spec in specs] if completions \
            else []

    def result(self) -> RewardScores:
        """Wait for every reward (each within its own time limit) and combine them."""
        specs, completions, examples = self.specs, self.completions, self.examples
        names = [spec.name for spec in specs]
        if not completions:
            return RewardScores(parts={name: [] for name in names}, total=[],
                                errors=dict.fromkeys(names, 0))
        parts, errors = {}, {}
        for call in self.calls:
            parts[call.spec.name], errors[call.spec.name] = _collect(call, completions, examples)
        total = []
        for i in range(len(completions)):
            applying = [(spec.weight, parts[spec.name][i]) for spec in specs]
            total.append(float(sum(weight * value for weight, value in applying
                                   if value is not None)))
        return RewardScores(parts=parts, total=total, errors=errors)


class _Overran(TimeoutError):
    """A reward call ran past its time limit (unlike a TimeoutError the reward raised)."""


class _Call:
    """One call of a reward function, running in its own thread since construction."""

    def __init__(self, spec: RewardSpec, completions: list[str], examples: list[dict]) -> None:
        self.spec = spec
        self.future: Future = Future()
        self.deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
        # A daemon thread, not a ThreadPoolExecutor: an executor joins its threads at
        # interpreter exit, so one reward stuck forever would keep the process from exiting.
        # (A thread cannot be stopped: a reward that can hang should bound its own work, as
        # ``accuracy`` does.)
        threading.Thread(target=self._run, args=(list(completions), list(examples)),
                         daemon=True, name=f"r1kit-reward-{spec.name}").start()

    def _run(self, completions: list[str], examples: list[dict]) -> None:
        try:
            self.future.set_result(self.spec.fn(completions, examples, self.spec.options))
        except BaseException as exc:  # handed to the caller, who decides
            self.future.set_exception(exc)

    def outcome(self) -> tuple[Any, BaseException | None]:
        """``(values, None)``, ``(None, exception)``, or ``(None, _Overran)`` past the deadline."""
        remaining = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        # wait() rather than result(timeout): a reward that itself raises TimeoutError must not
        # pass for one that ran out of time.
        wait_futures([self.future], timeout=remaining)
        if not self.future.done():
            return None, _Overran(f"took longer than its {self.spec.timeout} s time limit")
        exc = self.future.exception()
        return (None, exc) if exc is not None else (self.future.result(), None)


def _collect(call: _Call, completions: list[str],
             examples: list[dict]) -> tuple[list[float | None], int]:
    spec, n = call.spec, len(completions)
    values, failure = call.outcome()
    if failure is None:
        return _validated(spec, values, n, completions, examples), 0
    if spec.on_error == "skip" and isinstance(failure, _Overran):
        # Finding the slow samples would cost up to one time limit per sample, and the time
        # limit is there to bound what a batch costs: the whole batch is skipped instead.
        log.warning("reward '%s' (%s) %s on a batch of %d; its %d samples are skipped",
                    spec.name, _origin(spec.fn), failure, n, n)
        return [None] * n, n
    return _per_sample(spec, failure, completions, examples)


def _per_sample(spec: RewardSpec, batch_failure: BaseException, completions: list[str],
                examples: list[dict]) -> tuple[list[float | None], int]:
    """Re-run a failed batch one sample at a time, to name (or skip) the samples that fail."""
    values: list[float | None] = []
    failed = 0
    for i in range(len(completions)):
        sample_values, failure = _Call(spec, completions[i:i + 1], examples[i:i + 1]).outcome()
        if failure is None:
            values.extend(_validated(spec, sample_values, 1, completions, examples, offset=i))
            continue
        message = (f"reward '{spec.name}' ({_origin(spec.fn)}) failed on "
                   f"{_describe(i, completions, examples)}: {_explain(failure)}")
        if spec.on_error == "raise":
            raise RewardError(message, reward=spec.name, index=i) from failure
        log.warning("%s; skipped", message)
        values.append(None)
        failed += 1
    if failed == 0:
        message = (f"reward '{spec.name}' ({_origin(spec.fn)}) failed on a batch of "
                   f"{len(completions)} ({_explain(batch_failure)}) but on no single sample")
        if spec.on_error == "raise":
            raise RewardError(message, reward=spec.name) from batch_failure
        log.warning("%s; using the per-sample scores", message)
    return values, failed


def _validated(spec: RewardSpec, values: Any, n: int, completions: list[str],
               examples: list[dict], offset: int = 0) -> list[float | None]:
    """``values`` as floats, or a RewardError if it is not ``n`` finite numbers or Nones."""
    if hasattr(values, "tolist"):  # numpy arrays and tensors
        values = values.tolist()
    if not isinstance(values, (list, tuple)) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, (list, tuple)) else repr(values)[:80]
        raise RewardError(f"reward '{spec.name}' ({_origin(spec.fn)}) must return a list of "
                          f"{n} numbers or None, one per completion; got {got}",
                          reward=spec.name)
    checked: list[float | None] = []
    for j, value in enumerate(values):
        if value is not None:
            # NaN would poison every advantage of its group: it is a bug, not a score.
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise RewardError(f"reward '{spec.name}' ({_origin(spec.fn)}) returned "
                                  f"{value!r} for {_describe(offset + j, completions, examples)}"
                                  f"; expected a finite number or None",
                                  reward=spec.name, index=offset + j)
            value = float(value)
        checked.append(value)
    return checked


def _origin(fn: Callable) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _describe(i: int, completions: list[str], examples: list[dict]) -> str:
    prompt = examples[i].get("prompt", "") if isinstance(examples[i], dict) else ""
    return (f"sample {i} (prompt {_preview(prompt)}, completion {_preview(completions[i])})")


def _preview(text: Any) -> str:
    text = " ".join((text if isinstance(text, str) else repr(text)).split())
    return repr(text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "…")


def _explain(exc: BaseException) -> str:
    if isinstance(exc, _Overran):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
