"""The ``judge`` reward: asks a judge model whether each response is right and reads its verdict.

For each sample the judge applies to (all rows; with ``only_unverifiable``, those without a
rule-checkable answer; with ``applies_to``, rows of those tasks), the prompt is rendered
(``prompt.judge_conversation``), looked up in the reply cache, and the rest sent to the backend
in one batch (identical prompts once). Every reply is parsed strictly (``verdict.parse_reply``).
Nothing is scored silently: a sample the judge could not score (a failed request, an
unparseable reply) is counted (``counters``), logged, and scores ``None`` (or 0.0 / raises, as
``on_unparseable`` / ``on_failure`` say).
"""

from __future__ import annotations

import logging
import threading

from r1kit import hookimpl
from r1kit.rewards.judge import counters
from r1kit.rewards.judge.backends.base import JudgeFailure
from r1kit.rewards.judge.cache import ReplyCache, cache_key
from r1kit.rewards.judge.options import JudgeOptions
from r1kit.rewards.judge.prompt import is_verifiable, judge_conversation
from r1kit.rewards.judge.verdict import parse_reply

log = logging.getLogger(__name__)

_PREVIEW = 120
_backends: dict[tuple, object] = {}
_backends_lock = threading.Lock()


def _backend_key(options) -> tuple:
    """What makes two option sets the same judge model (the prompt and parsing options do
    not): one backend per key per process, its model loaded once."""
    fields = ("backend", "model", "max_new_tokens", "temperature", "seed", "batch_size",
              "device", "base_url", "api_key_env", "concurrency", "request_timeout", "retries",
              "backoff", "gpu_memory_utilization", "kv_cache_memory_bytes", "max_model_len")
    return tuple(repr(getattr(options, name)) for name in fields) + (repr(options.backend_options),)


def get_backend(options):
    """The process's backend for ``options``, built on first use (so a stage that never
    judges loads nothing)."""
    from r1kit.plugin.manager import get_registry

    key = _backend_key(options)
    with _backends_lock:
        if key not in _backends:
            factory = get_registry().get("judge_backend", options.backend).obj
            _backends[key] = factory(options)
        return _backends[key]


def close_backends() -> None:
    """Forget every backend (tests; a backend with a ``close`` is closed)."""
    with _backends_lock:
        for backend in _backends.values():
            close = getattr(backend, "close", None)
            if close is not None:
                close()
        _backends.clear()


def judge_reward(completions: list[str], examples: list[dict],
                 options: JudgeOptions) -> list[float | None]:
    """The judge's score of each completion (see the module docstring); ``None`` where it does
    not apply or could not judge."""
    scores: list[float | None] = [None] * len(completions)
    asks: list[tuple[int, list[dict]]] = []
    for i, (completion, row) in enumerate(zip(completions, examples, strict=True)):
        if options.only_unverifiable and is_verifiable(row):
            continue  # the rule rewards score it
        conversation = judge_conversation(row, completion, options)
        if conversation == "no_response":
            counters.count("no_response")
            scores[i] = 0.0  # no answer outside the reasoning: wrong, as accuracy scores it
        elif conversation == "no_reference":
            counters.count("no_reference")  # nothing to judge against: does not apply
        else:
            asks.append((i, conversation))
    if not asks:
        return scores
    replies = _replies([conversation for _, conversation in asks], options)
    for (i, _), reply in zip(asks, replies, strict=True):
        scores[i] = _score(i, reply, options)
    return scores


def _replies(conversations: list[list[dict]], options) -> list[str | JudgeFailure]:
    """One reply per conversation: from the cache, else from the backend (each distinct
    conversation asked once); new replies are cached."""
    backend = get_backend(options)
    keys = [cache_key(backend.identity, c) for c in conversations]
    cache = ReplyCache(options.cache) if options.cache else None
    known = cache.get_many(sorted(set(keys))) if cache is not None else {}
    counters.count("cache_hits", sum(key in known for key in keys))
    missing: dict[str, list[dict]] = {}
    for key, conversation in zip(keys, conversations):
        if key not in known:
            missing.setdefault(key, conversation)
    fresh: dict[str, str | JudgeFailure] = {}
    if missing:
        counters.count("calls", len(missing))
        answered = backend.complete(list(missing.values()))
        if len(answered) != len(missing):
            raise RuntimeError(f"judge backend '{options.backend}' returned {len(answered)} "
                               f"replies for {len(missing)} conversations")
        fresh = dict(zip(missing, answered))
        if cache is not None:
            cache.put_many([(key, backend.identity, missing[key], reply)
                            for key, reply in fresh.items() if isinstance(reply, str)])
    return [known[key] if key in known else fresh[key] for key in keys]


def _score(i: int, reply: str | JudgeFailure, options) -> float | None:
    if isinstance(reply, JudgeFailure):
        counters.count("failures")
        counters.count(reply.kind)
        message = (f"judge ({options.backend} {options.model}): request for sample {i} "
                   f"failed ({reply.kind}: {reply.message})")
        if options.on_failure == "raise":
            raise RuntimeError(message)
        log.warning("%s; not scored (None)", message)
        return None
    if not isinstance(reply, str):
        raise RuntimeError(f"judge backend '{options.backend}' returned {type(reply).__name__} "
                           "for a reply; expected str or JudgeFailure")
    value = parse_reply(reply, options)
    if value is not None:
        return value
    counters.count("failures")
    counters.count("unparseable")
    fallback = 0.0 if options.on_unparseable == "zero" else None
    log.warning("judge (%s %s): the reply for sample %d does not match %r: %r; scored %s",
                options.backend, options.model, i, options.reply_pattern,
                reply[:_PREVIEW], fallback)
    return fallback


@hookimpl
def r1kit_register_rewards(register):
    register("judge", judge_reward, schema=JudgeOptions)
