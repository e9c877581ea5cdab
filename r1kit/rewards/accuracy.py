"""The ``accuracy`` reward: 1.0 when the completion's final answer equals the reference answer.

Equality is math-verify's (``\\frac{1}{2}`` = ``0.5`` = ``2/4``, ``1,000`` = ``1000``, sets,
intervals, expressions). math-verify protects itself from runaway sympy work with
``signal.alarm``, which only works on the main thread, and the trainer calls rewards from
worker threads; so its own timeouts are switched off and math-verify runs in a few worker
processes instead, where a comparison that overruns its time limit is ended by killing the
process (Python cannot stop a thread). Plain numbers, the bulk of math datasets, are decided
in-process without math-verify when the verdict is certain to be the same.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from decimal import Decimal
from multiprocessing.connection import Connection, wait

from r1kit import hookimpl
from r1kit.rewards.answer import extract_answer

log = logging.getLogger(__name__)


@dataclass
class AccuracyOptions:
    """Options of the ``accuracy`` reward (config node ``reward.accuracy``)."""

    #: Seconds one sample's math-verify comparison may take; past it the sample scores 0.0.
    #: (Not ``timeout``: that key is the harness's limit on a whole call. A batch takes at most
    #: about samples / workers * sample_timeout, plus ~0.5 s per timed-out sample to restart
    #: its worker; keep ``reward.accuracy.timeout``, if set, above that.)
    sample_timeout: float = 5.0
    #: Worker processes running math-verify (they start on the first answer that needs one).
    workers: int = 2

    def __post_init__(self) -> None:
        if not self.sample_timeout > 0:
            raise ValueError(f"reward.accuracy.sample_timeout must be > 0, "
                             f"got {self.sample_timeout}")
        if self.workers < 1:
            raise ValueError(f"reward.accuracy.workers must be >= 1, got {self.workers}")


#: How many samples were decided by the fast path, by math-verify, or timed out (this process).
COUNTERS: Counter[str] = Counter()
_COUNTERS_LOCK = threading.Lock()  # rewards run in several threads; += is not atomic


def _count(key: str, n: int = 1) -> None:
    with _COUNTERS_LOCK:
        COUNTERS[key] += n


def accuracy_reward(completions: list[str], examples: list[dict], **options) -> list[float | None]:
    """1.0 if the completion's final answer equals ``example["answer"]``, else 0.0.

    The answer is taken from the last ``<answer>`` block or the last ``\\boxed{}``
    (:func:`r1kit.rewards.answer.extract_answer`); no answer scores 0.0, a row without an
    ``answer`` gives ``None`` (the reward does not apply). The reference answer may be a whole
    worked solution (MATH's): its final answer is extracted the same way. A comparison that
    exceeds ``sample_timeout`` seconds scores 0.0, is logged, and is counted in
    ``COUNTERS["timeouts"]``. Safe to call from any thread.
    """
    opts = AccuracyOptions(**options)
    scores: list[float | None] = [None] * len(completions)
    jobs: list[tuple[str, str]] = []
    job_samples: list[int] = []
    for i, (completion, example) in enumerate(zip(completions, examples, strict=True)):
        gold = example.get("answer")
        gold = "" if gold is None else str(gold).strip()
        if not gold:
            continue
        gold = extract_answer(gold) or gold  # a bare answer has no tags or box: kept as is
        pred = extract_answer(completion)
        if pred is None:
            scores[i] = 0.0
            continue
        verdict = fast_verdict(gold, pred)
        if verdict is not None:
            _count("fast_path")
            scores[i] = float(verdict)
        else:
            jobs.append((gold, pred))
            job_samples.append(i)
    if jobs:
        try:
            verdicts = _verify_in_workers(jobs, opts.sample_timeout, opts.workers)
        except _JobError as err:
            raise RuntimeError(f"math-verify failed on sample {job_samples[err.job]}: "
                               f"{err}") from None
        for (_, pred), i, verdict in zip(jobs, job_samples, verdicts, strict=True):
            if verdict is None:
                _count("timeouts")
                log.warning("accuracy: math-verify took over %.1f s on sample %d (answer %r); "
                            "scored 0.0", opts.sample_timeout, i, pred[:80])
            else:
                _count("math_verify")
            scores[i] = 1.0 if verdict else 0.0
    return scores


# ---------------------------------------------------------------------------------------------
# Comparing two answers
# ---------------------------------------------------------------------------------------------

# ASCII digits only: Decimal reads other scripts' digits, math-verify does not.
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?", re.ASCII)
# math-verify compares numbers at 15 significant digits; below that, unequal integers are
# unequal to it too, so the fast path may say "no" only there.
_EXACT_INT_DIGITS = 15


def fast_verdict(gold: str, pred: str) -> bool | None:
    """The verdict for two plain decimal numbers, or ``None`` when math-verify must decide.

    Only verdicts math-verify is certain to agree with are given: equal numbers are equal,
    and distinct integers of up to 15 digits are distinct. Unequal decimals are left to
    math-verify, which rounds (``0.3333333`` equals ``0.33333333`` to it).
    """
    if not (_PLAIN_NUMBER.fullmatch(gold) and _PLAIN_NUMBER.fullmatch(pred)):
        return None
    if Decimal(gold) == Decimal(pred):
        return True
    if "." in gold or "." in pred or max(len(gold), len(pred)) > _EXACT_INT_DIGITS:
        return None
    return False


def math_verify_equal(gold: str, pred: str) -> bool:
    """math-verify's verdict on ``pred`` against ``gold``, with its signal timeouts disabled.

    Has no time limit of its own: call it where a runaway comparison can be killed (the
    worker processes of this module).
    """
    gold_parsed, pred_parsed = _parse(gold), _parse(pred)
    if not gold_parsed or not pred_parsed:
        return False
    from math_verify import verify

    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _parse(text: str) -> list:
    from math_verify import parse

    if any(delim in text for delim in ("$", "\\(", "\\[", "\\boxed")):
        return parse(text, parsing_timeout=None)
    # A bare answer is read as the content of a box: math-verify then takes all of it as one
    # LaTeX expression ("3, 5" a set, "(1, 2)" an interval) instead of hunting for the last
    # number in it, and "x^2+1" or "\dfrac12" parse at all. Unbalanced braces break the box, so
    # fall back to the raw text.
    return parse("\\boxed{" + text + "}", parsing_timeout=None) or parse(text, parsing_timeout=None)


# ---------------------------------------------------------------------------------------------
# Worker processes: math-verify with a time limit that works from any thread
# ---------------------------------------------------------------------------------------------

_STARTUP_TIMEOUT = 120.0  # a fresh interpreter importing sympy on a loaded machine
# The worker is a fresh interpreter, not a multiprocessing child: fork would copy locks held by
# the trainer's other threads, and spawn/forkserver re-import the caller's __main__ (a script
# without an ``if __name__ == "__main__"`` guard would then fail in an unrelated place).
_BOOTSTRAP = ("import sys; sys.path[:0] = {path!r}; "
              "from r1kit.rewards.accuracy import _worker_main; _worker_main({inbox}, {outbox})")


class _JobError(RuntimeError):
    def __init__(self, job: int, message: str) -> None:
        super().__init__(message)
        self.job = job


def _worker_main(inbox_fd: int, outbox_fd: int) -> None:
    """Entry point of a worker process: answer ``(gold, pred)`` jobs until the pipe closes."""
    inbox = Connection(inbox_fd, writable=False)
    outbox = Connection(outbox_fd, readable=False)
    # Ctrl-C reaches the whole process group; the parent decides what happens to workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # With its timeouts off, math-verify warns once per process that it will not stop itself.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    _exit_with_parent()
    import math_verify  # noqa: F401  (imported before "ready" so no job pays for it)

    outbox.send("ready")
    while True:
        try:
            gold, pred = inbox.recv()
        except EOFError:  # the parent closed the pipe or died
            return
        try:
            reply = ("ok", math_verify_equal(gold, pred))
        except Exception as exc:  # math-verify catches its own errors; this is a real bug
            reply = ("error", f"{type(exc).__name__}: {exc}")
        outbox.send(reply)


def _exit_with_parent() -> None:
    # A worker stuck in sympy never reads the EOF that a dead parent leaves; without this it
    # would spin on a CPU after the trainer was killed.
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="r1kit-parent-watch").start()


class _Worker:
    """One math-verify worker process and the two pipes to it."""

    def __init__(self) -> None:
        child_inbox, to_child = os.pipe()  # (read end, write end)
        from_child, child_outbox = os.pipe()
        code = _BOOTSTRAP.format(path=sys.path, inbox=child_inbox, outbox=child_outbox)
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                                         pass_fds=(child_inbox, child_outbox))
        except BaseException:
            os.close(to_child)
            os.close(from_child)
            raise
        finally:
            os.close(child_inbox)
            os.close(child_outbox)
        self.outbox = Connection(to_child, readable=False)
        self.inbox = Connection(from_child, writable=False)
        try:
            if not self.inbox.poll(_STARTUP_TIMEOUT) or self.inbox.recv() != "ready":
                raise EOFError
        except EOFError:
            self.kill()
            raise RuntimeError(f"a math-verify worker process failed to start "
                               f"(exit code {self.proc.returncode})") from None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)
        self.inbox.close()
        self.outbox.close()


class _VerifierPool:
    """Up to ``size`` worker processes; one whose job overruns its deadline is killed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pid = os.getpid()
        self._idle: list[_Worker] = []

    def close(self) -> None:
        """End the idle workers (busy ones are only ever busy inside ``run``)."""
        if os.getpid() == self.pid:  # a forked child inherits this at-exit call: not its workers
            self.resize(0)

    def resize(self, size: int) -> None:
        self.size = size
        while len(self._idle) > size:
            self._idle.pop().kill()

    def run(self, jobs: list[tuple[str, str]], timeout: float) -> list[bool | None]:
        """Each job's verdict, or ``None`` for a job that took longer than ``timeout`` s."""
        results: list[bool | None] = [None] * len(jobs)
        queue = deque(range(len(jobs)))
        busy: dict[Connection, tuple[_Worker, int, float]] = {}
        try:
            while queue or busy:
                while queue and len(busy) < self.size:
                    job = queue.popleft()
                    worker = self._send(jobs[job])
                    busy[worker.inbox] = (worker, job, time.monotonic() + timeout)
                next_deadline = min(deadline for _, _, deadline in busy.values())
                for conn in wait(list(busy), max(0.0, next_deadline - time.monotonic())):
                    worker, job, _ = busy.pop(conn)
                    try:
                        status, value = conn.recv()
                    except (EOFError, OSError):
                        worker.kill()
                        raise _JobError(job, f"the worker process died (exit code "
                                             f"{worker.proc.returncode})") from None
                    self._idle.append(worker)
                    if status != "ok":
                        raise _JobError(job, value)
                    results[job] = value
                now = time.monotonic()
                for conn, (worker, _job, deadline) in list(busy.items()):
                    if deadline <= now:
                        del busy[conn]
                        worker.kill()  # results[job] stays None: timed out
        finally:
            # Workers still busy (we are raising) would answer a job nobody reads; the next
            # call must not receive those answers.
            for worker, _, _ in busy.values():
                worker.kill()
        return results

    def _send(self, job: tuple[str, str]) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            try:
                worker.outbox.send(job)
                return worker
            except OSError:  # died while idle (e.g. killed by the OOM killer)
                worker.kill()
        worker = _Worker()
        worker.outbox.send(job)
        return worker


_POOL: _VerifierPool | None = None
# One batch at a time: the pool's workers and pipes are not shareable between callers.
_POOL_LOCK = threading.Lock()


def _verify_in_workers(jobs: list[tuple[str, str]], timeout: float,
                       workers: int) -> list[bool | None]:
    global _POOL
    with _POOL_LOCK:
        # A pool inherited through fork shares its pipes with the parent: start afresh.
        if _POOL is None or _POOL.pid != os.getpid():
            _POOL = _VerifierPool(workers)
            # Idle workers would exit on their own once our pipe ends close; ending them here
            # keeps interpreter shutdown free of "subprocess is still running" warnings.
            atexit.register(_POOL.close)
        _POOL.resize(workers)
        return _POOL.run(jobs, timeout)


@hookimpl
def r1kit_register_rewards(register):
    register("accuracy", accuracy_reward, schema=AccuracyOptions)
