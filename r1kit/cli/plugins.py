"""``python -m r1kit plugins``: list every registered plugin with its kind, name and provider."""

from __future__ import annotations

import sys

from r1kit.plugin.manager import get_registry
from r1kit.plugin.registry import PluginError


def main(argv=None) -> int:
    try:
        registry = get_registry()
    except PluginError as err:
        print(f"r1kit: error: {err}", file=sys.stderr)
        return 2
    rows = [(e.kind, e.name, e.provider, e.plugin) for e in registry.entries()]
    header = ("KIND", "NAME", "PROVIDED BY", "PLUGIN")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
