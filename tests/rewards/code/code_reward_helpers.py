"""Shared by the code reward's tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import os

from r1kit.plugin.manager import BUILTIN_PLUGINS, build_registry, create_plugin_manager
from r1kit.rewards.code import isolation

CODE_PLUGIN = "r1kit.rewards.code.plugin"

#: Probed once, at collection: which isolating backends work on this machine, and why not.
PROBES = isolation.available()
WORKING = [name for name, why in PROBES.items() if why is None]
UNAVAILABLE = "no OS isolation works here: " + "; ".join(f"{k}: {v}" for k, v in PROBES.items())

#: Small limits keep hostile runs short; still far above what the benign programs need.
FAST = dict(time_limit=2.0, cpu_time_limit=1.0, memory_mb=256, max_processes=16,
            max_output_mb=4, tmp_mb=16, workers=2)


def code_registry():
    # the other built-in plugins belong to other parts of r1kit and are not under test here
    blocked = [m for m in BUILTIN_PLUGINS if m != CODE_PLUGIN]
    return build_registry(create_plugin_manager(autoload=False, blocked=blocked))


def fenced(program: str) -> str:
    """A completion the way R1 writes one."""
    return f"<think>easy</think>\n<answer>\n```python\n{program}\n```\n</answer>"


def sandbox_leftovers() -> list[int]:
    """Pids of sandboxed programs still alive (PythonRunner runs python3 -I -B main.py)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        # argv ends with a NUL; the launchers' own argv (bwrap ...) also end with main.py
        if argv[-4:-1] == [b"-I", b"-B", b"main.py"] and b"python" in argv[0]:
            pids.append(int(entry))
    return pids
