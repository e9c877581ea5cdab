"""Reading the judge's reply, strictly: the last match of the configured pattern decides, and a
reply it does not read is ``None`` (the caller counts it and applies ``on_unparseable``), never
a guess."""

from __future__ import annotations

import math
import re


def parse_reply(reply: str, options) -> float | None:
    """The score of ``reply``: the label's value (``parse=verdict``) or the number in [0, 1]
    (``parse=score``) that the last match of ``options.reply_pattern`` captured; ``None`` when
    nothing matches, the label is not one of ``options.labels``, or the number is out of
    range. The last match, because a judge that reasons first ends with its verdict (and may
    quote the format earlier)."""
    matches = list(re.finditer(options.reply_pattern, reply))
    if not matches:
        return None
    captured = matches[-1].group(1)
    if captured is None:
        return None
    if options.parse == "verdict":
        value = options.labels.get(captured.strip())
        return None if value is None else float(value)
    try:
        value = float(captured)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None
