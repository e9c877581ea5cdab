"""What the judge reads: the template filled with the row's question, its reference answer and
the response, as a chat conversation."""

from __future__ import annotations

from r1kit.data.response import full_response
from r1kit.rewards.accuracy import answer_text


def reasoning_stripped(response: str) -> str | None:
    """``response`` without its ``<think>`` reasoning: the text after the last ``</think>``.

    ``None`` when the reasoning never closes (a completion cut off while thinking): such a
    response has no final answer to judge. A response without a ``<think>`` is all answer.
    """
    end = response.rfind("</think>")
    if end >= 0:
        return response[end + len("</think>"):].strip()
    return None if "<think>" in response else response.strip()


def reference_of(row: dict, fields) -> str | None:
    """The row's reference answer: the first of ``fields`` that holds a non-empty value."""
    for name in fields:
        value = row.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def is_verifiable(row: dict) -> bool:
    """Whether the ``accuracy`` rule can check the row: it has a non-empty ``answer`` (the
    accuracy reward's own reading of it)."""
    answer = row.get("answer")
    return answer is not None and bool(answer_text(str(answer)))


def template_uses_reference(template: str) -> bool:
    return "{reference}" in template


def judge_conversation(row: dict, completion: str, options) -> list[dict] | str:
    """The conversation that asks the judge about ``completion`` of ``row``, or the reason
    there is nothing to ask: ``"no_reference"`` (the template needs one and the row has none)
    or ``"no_response"`` (the reasoning never closed, so no answer was given)."""
    response = full_response(row.get("rendered_prompt", ""), completion)
    if options.reasoning == "strip":
        response = reasoning_stripped(response)
        if response is None or not response:
            return "no_response"
    reference = reference_of(row, options.reference_fields)
    if reference is None and template_uses_reference(options.template):
        return "no_reference"
    text = options.template.format(question=str(row.get("prompt", "")).strip(),
                                   reference=reference or "", response=response)
    messages = [{"role": "user", "content": text}]
    if options.system:
        messages.insert(0, {"role": "system", "content": options.system})
    return messages
