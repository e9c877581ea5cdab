"""Language runners: how a program in one language becomes files and a command in the sandbox.

A runner is registered by language name through ``r1kit_register_code_runners`` (Python is the
built-in one) and looked up by the ``code`` reward's ``language`` option, so C++ or anything
else is a plugin, not a branch in the reward::

    class CppRunner(CodeRunner):
        fence_tags = ("cpp", "c++")

        def prepare(self, source, workdir):
            (workdir / "main.cpp").write_text(source)
            # the working directory is a writable tmpfs; the source itself is read-only
            return ["sh", "-c", "g++ -O2 -o prog main.cpp && exec ./prog"]

    @hookimpl
    def r1kit_register_code_runners(register):
        register("cpp", CppRunner)
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

#: Where the sandbox shows the host's system files anyway; an interpreter there needs no binds.
_SYSTEM_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib")


class CodeRunner(ABC):
    """Prepares one program for the sandbox and says how to run it.

    One instance serves a whole batch, from several worker threads at once: keep it stateless.
    """

    #: Info strings of fenced blocks that hold this language (```python); lowercase.
    fence_tags: tuple[str, ...] = ()
    #: A program that prints ``ok``: run once per process to prove the toolchain works in the
    #: sandbox (None skips the check). Without it, a missing compiler scores every sample 0.0.
    smoke_program: str | None = None

    @abstractmethod
    def prepare(self, source: str, workdir: Path) -> list[str]:
        """Write the program's files into ``workdir`` and return the command that runs it.

        The files appear read-only in the sandbox's working directory (a private, writable
        tmpfs), so the command names them relative to it. The command is looked up on
        ``/usr/local/bin:/usr/bin:/bin``; stdin is the test's input.
        """

    def with_test_code(self, program: str, test_code: str) -> str:
        """The source that runs ``program`` followed by assert-style ``test_code``."""
        return f"{program}\n\n{test_code}\n"

    def host_paths(self) -> tuple[str, ...]:
        """Host paths (beyond ``/usr`` and ``/lib``) the sandbox must show, read-only."""
        return ()


class PythonRunner(CodeRunner):
    """``python3 main.py``; ``interpreter`` may be an absolute path (a venv with numpy)."""

    fence_tags = ("python", "py", "python3")
    smoke_program = "print('ok')"

    def __init__(self, interpreter: str = "python3") -> None:
        self.interpreter = interpreter

    def prepare(self, source: str, workdir: Path) -> list[str]:
        (workdir / "main.py").write_text(source, encoding="utf-8")
        # -I: no PYTHON* variables, user site-packages or script-dir imports; -B: the source is
        # read-only, and bytecode is not worth the tmpfs space
        return [self.interpreter, "-I", "-B", "main.py"]

    def host_paths(self) -> tuple[str, ...]:
        if not os.path.isabs(self.interpreter):
            return ()
        # a venv's python is a link into its base installation: both prefixes are needed
        prefixes = {os.path.dirname(os.path.dirname(p))
                    for p in (self.interpreter, os.path.realpath(self.interpreter))}
        return tuple(sorted(p for p in prefixes
                            if p != "/" and not (p + "/").startswith(_SYSTEM_PREFIXES)))
