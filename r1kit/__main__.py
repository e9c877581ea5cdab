"""``python -m r1kit [overrides]`` trains (runs the configured pipeline); ``python -m r1kit
COMMAND ...`` runs one of the other commands, each with its own ``--help``."""

import importlib
import sys

#: Commands besides training: first argument -> module whose ``main()`` runs it.
COMMANDS = {
    "score": "r1kit.cli.score",
    "plugins": "r1kit.cli.plugins",
    "compare": "r1kit.cli.compare",
}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        command = sys.argv.pop(1)  # the command's own parser (Hydra's) reads the rest
        raise SystemExit(importlib.import_module(COMMANDS[command]).main())
    else:
        raise SystemExit(importlib.import_module("r1kit.cli.train").main())


if __name__ == "__main__":
    main()
