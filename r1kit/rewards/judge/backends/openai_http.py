"""``reward.judge.backend=openai``: any OpenAI-compatible chat-completions server (vLLM's
``vllm serve``, SGLang's server, a hosted API), with the standard library's HTTP client.

Requests run ``concurrency`` at a time, each with a timeout, and are retried with exponential
backoff on what is usually transient (timeouts, 429 and 5xx, dropped connections, a reply that
is not the API's JSON). A request that still fails comes back as a ``JudgeFailure`` naming the
cause; the judge counts it and the run goes on.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from r1kit import hookimpl
from r1kit.rewards.judge import counters
from r1kit.rewards.judge.backends.base import JudgeFailure

log = logging.getLogger(__name__)

#: Statuses worth retrying: rate limits, timeouts and server errors. Other 4xx (a bad model
#: name, a bad key) fail at once: asking again would only cost time.
RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    """A failure worth another attempt; ``kind`` is the JudgeFailure kind if it persists."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Fatal(Exception):
    """A request the server refused for good (a 4xx other than the retryable ones)."""


class OpenAIJudge:
    """Chat completions at ``options.base_url``/chat/completions for ``options.model``."""

    def __init__(self, options) -> None:
        self.url = options.base_url.rstrip("/") + "/chat/completions"
        self.model = options.model
        self.max_tokens, self.temperature, self.seed = (options.max_new_tokens,
                                                        options.temperature, options.seed)
        self.concurrency, self.timeout = options.concurrency, options.request_timeout
        self.retries, self.backoff = options.retries, options.backoff
        self.headers = {"Content-Type": "application/json"}
        if options.api_key_env is not None:  # read now, never stored in the config
            self.headers["Authorization"] = f"Bearer {os.environ[options.api_key_env]}"
        # the key is not part of the identity: the same model behind a new key answers alike
        self.identity = (f"openai:{options.base_url.rstrip('/')}:{self.model}:max_tokens="
                         f"{self.max_tokens}:temperature={self.temperature}:seed={self.seed}")

    def complete(self, conversations: list[list[dict]]) -> list[str | JudgeFailure]:
        if not conversations:
            return []
        workers = min(self.concurrency, len(conversations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="r1kit-judge") as pool:
            return list(pool.map(self._ask, conversations))

    def _ask(self, conversation: list[dict]) -> str | JudgeFailure:
        """One conversation's reply, retried; every attempt is bounded by the timeout, so the
        whole is bounded by about (retries + 1) * timeout plus the backoff."""
        body = json.dumps({"model": self.model, "messages": conversation,
                           "max_tokens": self.max_tokens, "temperature": self.temperature,
                           "seed": self.seed}).encode()
        last: _Retryable | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                counters.count("retries")
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return self._post(body)
            except _Retryable as err:
                last = err
                log.info("judge request to %s failed (%s: %s), attempt %d of %d", self.url,
                         err.kind, err, attempt + 1, self.retries + 1)
            except _Fatal as err:
                return JudgeFailure("http_error", str(err))
        return JudgeFailure(last.kind, f"{last} (after {self.retries + 1} attempts)")

    def _post(self, body: bytes) -> str:
        request = urllib.request.Request(self.url, data=body, headers=self.headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = _body_preview(err)
            if err.code in RETRY_STATUSES:
                raise _Retryable("http_error", f"HTTP {err.code}: {detail}") from None
            raise _Fatal(f"HTTP {err.code}: {detail}") from None
        except (TimeoutError, socket.timeout) as err:
            raise _Retryable("timeout", f"no reply within {self.timeout} s ({err})") from None
        except urllib.error.URLError as err:
            if isinstance(err.reason, (TimeoutError, socket.timeout)):
                raise _Retryable("timeout", f"no reply within {self.timeout} s") from None
            raise _Retryable("connection_error", str(err.reason)) from None
        except (http.client.HTTPException, ConnectionError, OSError) as err:
            # RemoteDisconnected, IncompleteRead, a reset: the server went away mid-request
            raise _Retryable("connection_error", f"{type(err).__name__}: {err}") from None
        return _reply_text(raw)


def _reply_text(raw: bytes) -> str:
    """``choices[0].message.content`` of a chat-completions reply."""
    try:
        reply = json.loads(raw)
        content = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as err:
        preview = raw[:120].decode("utf-8", "replace")
        raise _Retryable("malformed_reply", f"not a chat-completions reply ({type(err).__name__}"
                         f"): {preview!r}") from None
    if not isinstance(content, str):
        raise _Retryable("malformed_reply", f"message content is {type(content).__name__}, "
                         "not text")
    return content


def _body_preview(err: urllib.error.HTTPError) -> str:
    try:
        return err.read()[:200].decode("utf-8", "replace")
    except Exception:  # the body of an error reply is only a hint
        return err.reason or ""


@hookimpl
def r1kit_register_judge_backends(register):
    register("openai", OpenAIJudge)
