"""Options of the ``judge`` reward (config node ``reward.judge``), checked when the config is
composed: a bad template, pattern, backend or missing API key is a ``ConfigError`` naming the
key before any model loads or any request is sent."""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from r1kit.config.schema import ConfigError

#: The fields a judge template may use.
TEMPLATE_FIELDS = ("question", "reference", "response")

DEFAULT_TEMPLATE = """You are grading a response to a question. Compare the response's final \
answer with the reference answer: it is correct when it means the same (equivalent \
expressions, wording or formatting do not matter), incorrect otherwise.

Question:
{question}

Reference answer:
{reference}

Response:
{response}

Reply with one line and nothing else: "Verdict: CORRECT" or "Verdict: INCORRECT"."""

#: The reply patterns of the two ``parse`` modes, when ``pattern`` is null: the captured group
#: is a label (verdict) or a number (score).
DEFAULT_PATTERNS = {"verdict": r"Verdict:\s*([A-Z_]+)\b", "score": r"Score:\s*([-+]?\d*\.?\d+)"}

_CHOICES = {"reasoning": ("strip", "keep"), "parse": ("verdict", "score"),
            "on_unparseable": ("skip", "zero"), "on_failure": ("skip", "raise")}


@dataclass
class JudgeOptions:
    """``reward.judge``: what the judge reads, how its reply is read, and which model it is."""

    # -- which model ----------------------------------------------------------------------
    #: The judge backend (a ``r1kit_register_judge_backends`` plugin): hf (a local causal LM
    #: on this rank's device), vllm (an in-process engine), openai (an OpenAI-compatible
    #: chat-completions server: vLLM's or SGLang's, or a hosted API).
    backend: str = "hf"
    #: hf/vllm: a local directory or hub id; openai: the served model's name.
    model: str = MISSING
    max_new_tokens: int = 256
    #: 0: greedy. The cache keeps the first reply either way, so a resumed run sees the same
    #: verdicts.
    temperature: float = 0.0
    #: Seeds sampling (temperature > 0) without touching the trainer's RNG.
    seed: int = 0
    #: hf/vllm: conversations per generate call.
    batch_size: int = 16
    #: hf: null = this process's device (its rank's GPU under DDP, else the CPU).
    device: Optional[str] = None
    #: openai: the server's base URL, up to and including /v1 (http://host:8000/v1).
    base_url: Optional[str] = None
    #: openai: the environment variable holding the API key (null: no key, as a local
    #: server needs none). The key itself never goes in the config.
    api_key_env: Optional[str] = None
    #: openai: requests in flight at once (a thread each).
    concurrency: int = 8
    #: openai: seconds a request may wait on the server (connect, and each read).
    request_timeout: float = 60.0
    #: openai: retries of a failed request (timeouts, 5xx/429, dropped connections, malformed
    #: replies), waiting backoff * 2**attempt seconds before each.
    retries: int = 3
    backoff: float = 1.0
    #: vllm: share of GPU memory (on CPU: of free RAM, for the KV cache), or an explicit
    #: KV-cache size in bytes; context length (null: the model's).
    gpu_memory_utilization: float = 0.3
    kv_cache_memory_bytes: Optional[int] = None
    max_model_len: Optional[int] = None
    #: A third-party backend's own options, typed by the schema it registered.
    backend_options: dict = field(default_factory=dict)

    # -- what the judge reads --------------------------------------------------------------
    #: A format string over question (the row's prompt), reference and response.
    template: str = DEFAULT_TEMPLATE
    #: A system message before the template (null: none).
    system: Optional[str] = None
    #: strip: the judge reads the response without its <think> reasoning (R1 judged the
    #: final answer); keep: the whole response.
    reasoning: str = "strip"
    #: Row fields holding the reference answer, first non-empty one wins.
    reference_fields: list = field(default_factory=lambda: ["reference", "answer", "solution"])
    #: Judge only rows without a rule-checkable ``answer`` (None for the others, which the
    #: rule rewards score): R1's split of rejection sampling into verified and judged prompts.
    only_unverifiable: bool = False

    # -- how its reply is read -------------------------------------------------------------
    #: verdict: the captured group is a label of ``labels``; score: a number in [0, 1].
    parse: str = "verdict"
    #: A regular expression with one group; its last match in the reply decides (null: the
    #: mode's default, DEFAULT_PATTERNS).
    pattern: Optional[str] = None
    labels: dict = field(default_factory=lambda: {"CORRECT": 1.0, "INCORRECT": 0.0})
    #: A reply the pattern does not read: skip (the sample scores None: not judged, dropped by
    #: the correct filter) or zero. Counted as judge/unparseable and logged either way.
    on_unparseable: str = "skip"
    #: A request that failed after its retries: skip (None, counted and logged) or raise.
    on_failure: str = "skip"
    #: SQLite file of replies already paid for, keyed by (judge identity, prompt); null: no
    #: cache. The default is the run directory's (the current directory for ``score``).
    cache: Optional[str] = "${oc.select:run_dir,.}/judge_cache.sqlite"

    def __post_init__(self) -> None:
        for key, choices in _CHOICES.items():
            _require(getattr(self, key) in choices, key,
                     f"must be one of {', '.join(choices)}, got {getattr(self, key)!r}")
        for key in ("max_new_tokens", "batch_size", "concurrency"):
            _require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        _require(self.temperature >= 0, "temperature", f"must be >= 0, got {self.temperature}")
        _require(self.request_timeout > 0, "request_timeout",
                 f"must be > 0, got {self.request_timeout}")
        _require(self.retries >= 0, "retries", f"must be >= 0, got {self.retries}")
        _require(self.backoff >= 0, "backoff", f"must be >= 0, got {self.backoff}")
        _require(0 < self.gpu_memory_utilization <= 1, "gpu_memory_utilization",
                 f"must be in (0, 1], got {self.gpu_memory_utilization}")
        _require(bool(self.reference_fields), "reference_fields", "must name at least one field")
        self._check_template()
        self._check_reply_format()
        self._check_backend()

    def _check_template(self) -> None:
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(self.template)
                    if name is not None}
        except ValueError as err:
            raise ConfigError(f"reward.judge.template: not a format string ({err})") from None
        unknown = sorted(used - set(TEMPLATE_FIELDS))
        _require(not unknown, "template",
                 f"unknown field {{{unknown[0] if unknown else ''}}}; valid: "
                 f"{', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}")
        _require("response" in used, "template", "must contain {response}: the judge has to "
                 "read what it judges")

    def _check_reply_format(self) -> None:
        try:
            compiled = re.compile(self.reply_pattern)
        except re.error as err:
            raise ConfigError(f"reward.judge.pattern: not a regular expression ({err})") from None
        _require(compiled.groups == 1, "pattern",
                 f"must have exactly one group (the verdict or score), has {compiled.groups}")
        if self.parse == "verdict":
            _require(bool(self.labels), "labels", "must map at least one verdict to a score")
            for label, value in self.labels.items():
                _require(isinstance(value, (int, float)) and 0 <= value <= 1, f"labels.{label}",
                         f"must be a number in [0, 1], got {value!r}")

    def _check_backend(self) -> None:
        from r1kit.config.options import typed
        from r1kit.plugin.manager import get_registry
        from r1kit.plugin.registry import UnknownPluginError

        try:
            entry = get_registry().get("judge_backend", self.backend)
        except UnknownPluginError as err:
            raise ConfigError(f"reward.judge.backend: {err}") from None
        if self.backend == "openai":
            _require(bool(self.base_url) and str(self.base_url).startswith(
                ("http://", "https://")), "base_url",
                f"backend=openai needs the server's URL (http://host:8000/v1), got "
                f"{self.base_url!r}")
        if self.api_key_env is not None:
            _require(bool(os.environ.get(self.api_key_env)), "api_key_env",
                     f"the environment variable {self.api_key_env} is not set (it should hold "
                     "the judge server's API key)")
        if entry.schema is not None:
            self.backend_options = typed(entry.schema, dict(self.backend_options),
                                         "reward.judge.backend_options")
        elif self.backend_options:
            raise ConfigError(f"reward.judge.backend_options: backend '{self.backend}' takes no "
                              f"options, got {sorted(self.backend_options)}")

    @property
    def reply_pattern(self) -> str:
        return self.pattern if self.pattern is not None else DEFAULT_PATTERNS[self.parse]


def _require(ok: Any, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"reward.judge.{key}: {message}")
