"""The ``accuracy`` reward: 1.0 when the completion's final answer equals the reference answer.

Finding the answer and deciding equality are both math-verify's: it is given the content of the
last ``<answer>`` block (or the whole completion when there is none) and extracts the answer the
way it was designed and tested to (boxed answers first, several boxes or ``$…$`` joined by
"and" read as one set, "The final answer is …", units and percent signs, thousands
separators), then compares (``\\frac{1}{2}`` = ``0.5``, sets, intervals, expressions).

math-verify protects itself from runaway sympy work with ``signal.alarm``, which only works on
the main thread, and the trainer calls rewards from worker threads; so its own timeouts are
switched off and parsing and comparing both run in a few worker processes instead, where a
sample that overruns its time limit is ended by killing the process (Python cannot stop a
thread). Plain numbers, the bulk of math datasets, are decided in-process without math-verify
when the verdict is certain to be the same.
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
from functools import lru_cache
from multiprocessing.connection import Connection, wait

from r1kit import hookimpl
from r1kit.rewards.answer import answer_block, ends_in_open_box
from r1kit.config.schema import ConfigError

log = logging.getLogger(__name__)


@dataclass
class AccuracyOptions:
    """Options of the ``accuracy`` reward (config node ``reward.accuracy``)."""

    #: Seconds one sample's math-verify parsing and comparison may take; past it the sample
    #: scores 0.0.
    #: (Not ``timeout``: that key is the harness's limit on a whole call. A batch takes at most
    #: about samples / workers * sample_timeout, plus ~0.5 s per timed-out sample to restart
    #: its worker; keep ``reward.accuracy.timeout``, if set, above that.)
    sample_timeout: float = 5.0
    #: Worker processes running math-verify (they start on the first answer that needs one).
    workers: int = 2

    def __post_init__(self) -> None:
        if not self.sample_timeout > 0:
            raise ConfigError(f"reward.accuracy.sample_timeout must be > 0, "
                             f"got {self.sample_timeout}")
        if self.workers < 1:
            raise ConfigError(f"reward.accuracy.workers must be >= 1, got {self.workers}")


#: How many samples were decided by the fast path, by math-verify, or timed out (this process).
COUNTERS: Counter[str] = Counter()
_COUNTERS_LOCK = threading.Lock()  # rewards run in several threads; += is not atomic


def _count(key: str, n: int = 1) -> None:
    with _COUNTERS_LOCK:
        COUNTERS[key] += n


def counters() -> dict[str, int]:
    """A copy of ``COUNTERS`` taken under the lock the reward threads count under. Read it
    before and after a batch is scored: the difference is that batch's counts (the trainer logs
    each step's as ``reward_timeouts/accuracy`` and so on)."""
    with _COUNTERS_LOCK:
        return dict(COUNTERS)


def accuracy_reward(completions: list[str], examples: list[dict],
                    options: AccuracyOptions) -> list[float | None]:
    """1.0 if the completion's final answer equals ``example["answer"]``, else 0.0.

    Both sides are read by :func:`answer_text` and math-verify (:func:`answers_equal`). A row
    without an ``answer`` gives ``None`` (the reward does not apply). No answer scores 0.0, and
    so does an answer whose last ``\\boxed{`` never closes: the completion was cut off while
    writing it, and math-verify would take an earlier number or fraction from it instead. The
    reference answer may be a bare answer (``72``, ``\\frac{1}{2}``) or a whole worked
    solution ending in ``\\boxed{…}`` (MATH's). A sample whose parsing and comparison exceed
    ``sample_timeout`` seconds scores 0.0, is logged, and is counted in
    ``COUNTERS["timeouts"]``. Safe to call from any thread.
    """
    opts = options
    scores: list[float | None] = [None] * len(completions)
    jobs: list[tuple[str, str]] = []
    job_samples: list[int] = []
    for i, (completion, example) in enumerate(zip(completions, examples, strict=True)):
        gold = example.get("answer")
        gold = "" if gold is None else answer_text(str(gold))
        if not gold:
            continue
        pred = answer_text(completion)
        if not pred or ends_in_open_box(pred):
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


def answer_text(text: str) -> str:
    """The part of ``text`` math-verify reads the answer from: the last ``<answer>`` block's
    content, or all of ``text`` when it has no block, stripped.

    The last block is the model's final word (earlier ones are drafts inside the reasoning); an
    empty block is no answer even if the reasoning holds one. Without a block math-verify finds
    the answer itself (a final ``\\boxed{}``, "the answer is …"), as for MATH-style models and
    for reference solutions. A cold-start style reference (``<think>…</think><answer>…``) is
    read like a completion.
    """
    block = answer_block(text)
    return (text if block is None else block).strip()


# ---------------------------------------------------------------------------------------------
# Comparing two answers
# ---------------------------------------------------------------------------------------------

# ASCII digits only: Decimal reads other scripts' digits, math-verify does not. No "+" sign:
# math-verify's number pattern has none, so "+5" is read as LaTeX, not by this path. No leading
# zero after a minus sign ("-07"): math-verify drops leading zeros only without a sign and sympy
# rejects "-07", so math-verify reads nothing there.
_PLAIN_NUMBER = re.compile(r"(?:\d+|-(?:0|[1-9]\d*))(?:\.\d+)?", re.ASCII)
# math-verify compares numbers at 15 significant digits. Within that, equal numbers are equal
# and unequal integers unequal to it; past it, sympy Floats of different precision can differ
# ("8169097848.64174" is not "8169097848.641740" to it), so longer numbers are left to it.
_EXACT_DIGITS = 15


def fast_verdict(gold: str, pred: str) -> bool | None:
    """The verdict for two plain decimal numbers, or ``None`` when math-verify must decide.

    Only verdicts math-verify is certain to agree with are given. A text that is exactly a
    plain decimal number has no LaTeX delimiter, fraction or operator, so math-verify's only
    match in it is its number pattern over the whole text, which it turns into
    ``sympy.Number`` of the same digits (leading zeros dropped): of up to 15 digits, equal
    numbers are equal to it and distinct integers distinct. Unequal decimals are left to
    math-verify, which rounds (``0.3333333`` equals ``0.33333333`` to it).
    """
    if not (_PLAIN_NUMBER.fullmatch(gold) and _PLAIN_NUMBER.fullmatch(pred)):
        return None
    if max(_digits(gold), _digits(pred)) > _EXACT_DIGITS:
        return None
    if Decimal(gold) == Decimal(pred):
        return True
    if "." in gold or "." in pred:
        return None
    return False


def _digits(number: str) -> int:
    return sum(char.isdigit() for char in number)


def answers_equal(gold: str, pred: str) -> bool:
    """math-verify's verdict on two :func:`answer_text` texts, with its signal timeouts off.

    Has no time limit of its own: call it where a runaway parse or comparison can be killed
    (the worker processes of this module).
    """
    from math_verify import verify

    return bool(verify(_parse_gold(gold), parse_answer(pred), timeout_seconds=None))


# A reference answer is compared with every completion sampled for its prompt (a GRPO group),
# and each worker sees many of them in a row: parse it once per worker.
@lru_cache(maxsize=256)
def _parse_gold(gold: str) -> list:
    return parse_answer(gold)


# A math delimiter or a box: the text marks its math itself, math-verify reads it as is.
# (``\$`` is an escaped dollar sign, a currency symbol, not a delimiter.)
_DELIMITED = re.compile(r"(?<!\\)\$|\\\(|\\\[|\\boxed")
# A number, possibly with thousands separators ("1,000", "1 000"): math-verify's number
# pattern reads these, while as LaTeX "1 000" is the product 1*000.
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:[ ,]\d{3})+|\d+)(?:\.\d+)?", re.ASCII)
# Prose: a word of three or more letters that is not a LaTeX command's name or argument
# (``\sqrt``, ``\begin{pmatrix}``), not inside \text{…}-like groups, and not "and" (which joins
# solutions inside math: "x = 1 and x = 2"). Shorter runs are variables or units ("2xy",
# "5 cm") that math-verify's LaTeX reading handles.
_TEXT_GROUP = re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\s*\{[^{}]*\}")
_WORD = re.compile(r"(?<![\\A-Za-z{])(?!and\b)[A-Za-z]{3,}")


def parse_answer(text: str) -> list:
    """math-verify's reading of an answer text: a list of sympy objects and strings.

    math-verify extracts from running text: LaTeX in delimiters or boxes, else numbers and
    ``1/2``-style expressions. A bare LaTeX answer (``\\sqrt{2}``, ``3, 5``, ``(1, 2]``,
    ``x^2+1``), the usual content of an ``<answer>`` block and of datasets' answer fields, has
    neither, so it is marked as inline math (``$…$``); without that math-verify finds nothing
    in ``x^2+1`` and reads ``3, 5`` as 5. Inline math rather than a box: math-verify drops the
    percent sign of ``$10\\%$`` but fails on ``\\boxed{10\\%}`` (the readings are compared in
    experiments/2026-12-02-accuracy-agreement.md). Delimited text, prose and plain numbers are
    math-verify's own kind of input and are passed as they are.
    """
    from math_verify import parse

    if not (_DELIMITED.search(text) or _NUMBER.fullmatch(text) or _is_prose(text)):
        text = f"${text}$"
    return parse(text, _extraction_targets(), parsing_timeout=None)


def _is_prose(text: str) -> bool:
    return _WORD.search(_TEXT_GROUP.sub(" ", text)) is not None


@lru_cache(maxsize=1)
def _extraction_targets() -> tuple:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    # Boxed first (priority 0): a box is the answer even when a "final answer is" phrase or
    # other LaTeX follows it. LatexExtractionConfig's default normalization already joins all
    # boxes of one match (``boxed="all"``) and strips units and percent signs.
    return (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())


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
            reply = ("ok", answers_equal(gold, pred))
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
