"""What every judge backend shares: a failed request as a value, and the token ids of a
conversation for the backends that run a local model."""

from __future__ import annotations

from dataclasses import dataclass

#: Kinds of failed requests, each counted as ``judge/failures/<kind>``.
FAILURE_KINDS = ("timeout", "http_error", "connection_error", "malformed_reply", "backend_error")


@dataclass(frozen=True)
class JudgeFailure:
    """A request the judge backend could not answer (after its retries). Returned in place of
    the reply, not raised, so that one bad request does not cost the batch's other verdicts."""

    kind: str  #: one of ``FAILURE_KINDS``
    message: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FAILURE_KINDS:
            raise ValueError(f"JudgeFailure kind must be one of {FAILURE_KINDS}, got {self.kind!r}")


def conversation_ids(tokenizer, conversation: list[dict]) -> list[int]:
    """The token ids a local model reads: its chat template over the conversation, opening the
    assistant's turn, when it has one (instruction-tuned judges are trained on it; the template
    writes its own BOS); else the messages' contents one after another, tokenized with the
    tokenizer's special tokens (a BOS where the model expects one). The hf and vllm backends
    both read these ids, so the same checkpoint gets the same input from either."""
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(conversation, tokenize=True,
                                            add_generation_prompt=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    return tokenizer.encode("\n\n".join(message["content"] for message in conversation))
