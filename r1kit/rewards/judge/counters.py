"""What the judge did in this process, counted like the ``accuracy`` reward's verdicts: a stage
reads ``counters()`` before and after scoring and logs the difference (``judge_counts``) as
``judge/...`` metrics, summed over ranks."""

from __future__ import annotations

import threading
from collections import Counter

#: counter -> metric. calls: requests sent to the backend (what a served judge bills);
#: cache_hits: replies read from the cache instead; failures: every sample the judge could
#: not score (failed requests after retries, and unparseable replies), with one metric per
#: cause besides; no_reference / no_response: samples not asked (nothing to compare with, or
#: reasoning that never closed: scored 0).
COUNTER_METRICS = {
    "calls": "judge/calls",
    "cache_hits": "judge/cache_hits",
    "failures": "judge/failures",
    "unparseable": "judge/failures/unparseable",
    "timeout": "judge/failures/timeout",
    "http_error": "judge/failures/http_error",
    "connection_error": "judge/failures/connection_error",
    "malformed_reply": "judge/failures/malformed_reply",
    "backend_error": "judge/failures/backend_error",
    "retries": "judge/retries",
    "no_reference": "judge/no_reference",
    "no_response": "judge/no_response",
}

_COUNTERS: Counter[str] = Counter()
_LOCK = threading.Lock()  # the judge runs in reward threads and in its request threads


def count(key: str, n: int = 1) -> None:
    if key not in COUNTER_METRICS:
        raise KeyError(f"unknown judge counter {key!r}")
    with _LOCK:
        _COUNTERS[key] += n


def counters() -> dict[str, int]:
    """A copy of this process's counts so far."""
    with _LOCK:
        return dict(_COUNTERS)


def judge_counts(before: dict, after: dict) -> dict[str, float]:
    """The ``judge/...`` metrics of what happened between two readings of ``counters()``."""
    return {metric: float(after.get(key, 0) - before.get(key, 0))
            for key, metric in COUNTER_METRICS.items()}
