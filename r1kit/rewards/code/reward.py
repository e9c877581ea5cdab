"""The ``code`` reward: the fraction of a row's tests that the completion's program passes.

This is R1's accuracy reward for programming problems. Each test is one fresh sandboxed run
(:func:`r1kit.rewards.code.sandbox.run_program`), and all runs of a batch share a bounded pool
of worker threads, so scoring a batch takes about (runs / workers) x (time per run) instead of
serialising the training step on the slowest program. Threads suffice: each one only waits
on its sandbox process.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from r1kit.plugin.manager import get_registry
from r1kit.rewards.code.extract import extract_program
from r1kit.rewards.code.isolation import (
    CHOICES,
    Isolation,
    SandboxUnavailableError,
    select_isolation,
)
from r1kit.rewards.code.runners import CodeRunner
from r1kit.rewards.code.sandbox import Limits, run_program
from r1kit.rewards.code.testcases import collect_tests

log = logging.getLogger(__name__)


@dataclass
class CodeRewardOptions:
    """Options of the ``code`` reward (config node ``reward.code``)."""

    #: Runner (``r1kit_register_code_runners``) the programs are written for.
    language: str = "python"
    #: auto | bwrap | unshare | none. ``auto`` picks the first backend that works here and
    #: refuses to run code if none does; ``none`` runs code unsandboxed (and says so loudly).
    isolation: str = "auto"
    #: Programs run at once; null = one per CPU core.
    workers: Optional[int] = None
    #: True: the fraction of tests passed; False: 1.0 only when every test passes.
    partial_credit: bool = True
    #: Use only the first N tests of a row; null = all of them.
    max_tests: Optional[int] = None
    #: Per test run: wall-clock seconds, CPU seconds, address space, processes, file size
    #: (stdout included) and writable tmpfs size.
    time_limit: float = 5.0
    cpu_time_limit: float = 5.0
    memory_mb: int = 1024
    max_processes: int = 16
    max_output_mb: int = 16
    tmp_mb: int = 64

    def __post_init__(self) -> None:
        if self.isolation not in CHOICES:
            raise ValueError(f"reward.code.isolation must be one of {', '.join(CHOICES)}, "
                             f"got {self.isolation!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"reward.code.workers must be >= 1 or null, got {self.workers}")
        if self.max_tests is not None and self.max_tests < 1:
            raise ValueError(f"reward.code.max_tests must be >= 1 or null, got {self.max_tests}")
        self.limits()  # validates the limits

    def limits(self) -> Limits:
        return Limits(wall_s=self.time_limit, cpu_s=self.cpu_time_limit,
                      memory_mb=self.memory_mb, max_processes=self.max_processes,
                      max_output_mb=self.max_output_mb, tmp_mb=self.tmp_mb)


def get_runner(language: str) -> CodeRunner:
    """A fresh runner for ``language`` from the plugin registry."""
    return get_registry().get("code_runner", language).obj()


_SMOKE_TESTED: set[tuple[str, str]] = set()


def check_runner(isolation: Isolation, runner: CodeRunner, language: str) -> None:
    """Once per process and backend: the runner's smoke program must print ``ok``.

    If the interpreter or compiler cannot run in the sandbox, every program fails and every
    reward is a silent 0.0 that trains the policy on noise; fail loudly instead.
    """
    if runner.smoke_program is None or (isolation.name, language) in _SMOKE_TESTED:
        return
    result = run_program(isolation, runner, runner.smoke_program, limits=Limits(wall_s=30))
    if result.stdout.strip() != "ok":
        raise SandboxUnavailableError(
            f"the {language!r} runner does not work in the {isolation.name} sandbox: exit "
            f"status {result.returncode}, stderr: {result.stderr.strip()[-500:]!r}")
    _SMOKE_TESTED.add((isolation.name, language))


def code_reward(completions: list[str], examples: list[dict],
                options: CodeRewardOptions) -> list[float | None]:
    """Score each completion's program by the tests of its row.

    ``None`` for a row without tests (the reward does not apply); 0.0 when the completion
    holds no program. Raises :class:`~r1kit.rewards.code.isolation.SandboxUnavailableError`
    when there is code to run but no way to isolate it (and ``isolation`` is not ``none``).
    """
    opts = options
    runner = get_runner(opts.language)
    scores: list[float | None] = [None] * len(completions)
    totals = [0] * len(completions)
    jobs = []  # (completion index, source to run, test)
    for i, (completion, example) in enumerate(zip(completions, examples, strict=True)):
        tests = collect_tests(example, opts.max_tests)
        if tests is None:
            continue
        scores[i] = 0.0
        program = extract_program(completion, runner.fence_tags)
        if program is None:
            continue
        totals[i] = len(tests)
        jobs += [(i, runner.with_test_code(program, t.test_code) if t.test_code else program, t)
                 for t in tests]
    if not jobs:
        return scores

    isolation = select_isolation(opts.isolation)
    check_runner(isolation, runner, opts.language)
    limits = opts.limits()
    failed = [False] * len(completions)

    def run(job) -> tuple[int, bool]:
        i, source, test = job
        if failed[i] and not opts.partial_credit:
            return i, False  # the score is already 0.0: spare the pool the remaining tests
        ok = test.passed(run_program(isolation, runner, source, test.stdin, limits))
        failed[i] = failed[i] or not ok
        return i, ok

    passed = [0] * len(completions)
    workers = opts.workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)),
                            thread_name_prefix="r1kit-code") as pool:
        for i, ok in pool.map(run, jobs):
            passed[i] += ok
    for i, total in enumerate(totals):
        if total:
            scores[i] = passed[i] / total if opts.partial_credit else float(passed[i] == total)
    log.debug("code reward: %d runs of %d programs under %s", len(jobs),
              sum(t > 0 for t in totals), isolation.name)
    return scores
