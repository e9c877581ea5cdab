"""What every judge backend shares: a failed request as a value, and the prompt text of a
conversation for backends that take plain text."""

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


def conversation_text(tokenizer, conversation: list[dict]) -> str:
    """The text a local model reads: its chat template over the conversation, opening the
    assistant's turn, when it has one (instruction-tuned judges are trained on it); else the
    messages' contents one after another."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(conversation, tokenize=False,
                                             add_generation_prompt=True)
    return "\n\n".join(message["content"] for message in conversation)
