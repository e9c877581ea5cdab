"""Find the program in a completion.

R1-style completions reason in ``<think>`` and answer in ``<answer>``; models also like to
wrap code in fenced blocks, inside the answer or not. The answer wins over drafts in the
reasoning, a fence inside the answer wins over the prose around it, and the last one wins over
earlier attempts.

>>> extract_program("<think>```python\\nx=1\\n```</think>"
...                 "<answer>```python\\nprint(2)\\n```</answer>")
'print(2)\\n'
>>> extract_program("Here it is:\\n```py\\nprint(1)\\n```\\n"
...                 "and better:\\n```python\\nprint(3)\\n```")
'print(3)\\n'
>>> extract_program("<answer>print(4)</answer>")
'print(4)'
>>> extract_program("no code here") is None
True
"""

from __future__ import annotations

import re

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# ```lang [anything else on the line]\n code ```
_FENCE = re.compile(r"```[ \t]*([^\s`]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_program(completion: str, fence_tags: tuple[str, ...] = ("python", "py", "python3")
                    ) -> str | None:
    """The program in ``completion``, or None when there is none.

    In order: the last fenced block tagged with one of ``fence_tags`` inside the last
    ``<answer>…</answer>``, else its last untagged fenced block, else the answer's text (when it
    holds no fenced block in another language); without an answer, the last fenced block tagged
    with one of ``fence_tags`` anywhere.
    """
    answers = _ANSWER.findall(completion)
    if answers:
        answer = answers[-1]
        blocks = _FENCE.findall(answer)
        for wanted in (lambda tag: tag in fence_tags, lambda tag: tag == ""):
            code = [body for tag, body in blocks if wanted(tag.lower())]
            if code:
                return code[-1]
        if blocks:  # fenced code in another language: not ours to run
            return None
        return answer.strip() or None
    code = [body for tag, body in _FENCE.findall(completion) if tag.lower() in fence_tags]
    return code[-1] if code else None
