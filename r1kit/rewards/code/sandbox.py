"""Run one program in a fresh sandbox: a new process tree, isolated, limited, and killed whole.

Every run gets its own host scratch directory (removed afterwards) and its own namespaces (see
:mod:`r1kit.rewards.code.isolation`), so nothing one program does can be seen by the next.
Limits are the kernel's, applied by ``prlimit`` just before the program starts:

- wall clock: the trainer kills the whole tree when ``wall_s`` has passed (and ``timeout``
  inside the sandbox does a second later, should the trainer be gone);
- CPU: ``RLIMIT_CPU`` (SIGXCPU, then SIGKILL a second later);
- memory: ``RLIMIT_AS`` per process; processes: ``RLIMIT_NPROC`` (counted per user namespace
  under bwrap, so concurrent sandboxes do not share it);
- output: stdout and stderr go to files and ``RLIMIT_FSIZE`` caps every file the program
  writes, those included, so a program printing forever is stopped by SIGXFSZ, not by the
  trainer running out of memory; writable space is a size-capped tmpfs.
"""

from __future__ import annotations

import logging
import math
import os
import select
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from r1kit.rewards.code.isolation import Isolation, make_scratch
from r1kit.rewards.code.runners import CodeRunner

log = logging.getLogger(__name__)

_STDERR_KEEP = 4096  # stderr is only kept for debugging a failure
#: How the sandbox's own tools report their failures (a Python program fails with a traceback).
_SETUP_ERRORS = ("bwrap: ", "r1kit-sandbox: ", "unshare: ", "mount: ", "cp: ", "chroot: ",
                 "setpriv: ", "env: ", "prlimit: ", "timeout: ")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one program run."""

    wall_s: float = 5.0
    cpu_s: float = 5.0
    memory_mb: int = 1024
    max_processes: int = 16
    #: Largest file the program may write, its stdout included.
    max_output_mb: int = 16
    #: Size of its writable tmpfs (``/tmp``, also its working directory).
    tmp_mb: int = 64

    def __post_init__(self) -> None:
        for name in ("wall_s", "cpu_s", "memory_mb", "max_processes", "max_output_mb", "tmp_mb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"sandbox limit {name} must be > 0, got {getattr(self, name)}")

    def command_prefix(self) -> list[str]:
        """What runs inside the sandbox before the program, to impose the limits."""
        cpu = max(1, math.ceil(self.cpu_s))
        mem = self.memory_mb << 20
        # the trainer kills the tree at wall_s; this timeout (a second later, from inside) only
        # matters if the trainer died in the moment before bwrap tied the sandbox to it
        return ["timeout", "--signal=KILL", f"{self.wall_s + 1:g}",
                "prlimit", f"--cpu={cpu}:{cpu + 1}", f"--as={mem}:{mem}",
                f"--nproc={self.max_processes}:{self.max_processes}",
                f"--fsize={self.max_output_mb << 20}", "--nofile=256:256", "--core=0", "--"]


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run_program(isolation: Isolation, runner: CodeRunner, source: str, stdin: str = "",
                limits: Limits = Limits()) -> RunResult:
    """Run ``source`` with ``runner`` under ``isolation``.

    Never raises for anything the program does: that all ends up in the result.
    """
    scratch = Path(make_scratch())
    try:
        files = scratch / "files"
        files.mkdir(mode=0o711)
        argv = runner.prepare(source, files)
        _readable_by_sandbox(files)
        spec = isolation.launch(limits.command_prefix() + argv, scratch=scratch, files=files,
                                tmp_bytes=limits.tmp_mb << 20, ro_paths=runner.host_paths())
        (scratch / "stdin").write_text(stdin, encoding="utf-8")
        with open(scratch / "stdin", "rb") as fin, open(scratch / "stdout", "wb") as fout, \
                open(scratch / "stderr", "wb") as ferr:
            proc = subprocess.Popen(
                spec.argv, cwd=spec.cwd, env=spec.env, stdin=fin, stdout=fout, stderr=ferr,
                start_new_session=True)  # its own process group, for kill_tree's killpg
            timed_out = True
            try:
                timed_out = not _wait(proc, limits.wall_s)
            finally:
                if timed_out:
                    kill_tree(proc.pid)
                else:  # under isolation=none a background child may have outlived it
                    _killpg(proc.pid)
                proc.wait()
        result = RunResult(returncode=proc.returncode, timed_out=timed_out,
                           stdout=_read(scratch / "stdout", limits.max_output_mb << 20),
                           stderr=_read(scratch / "stderr", _STDERR_KEEP))
        if result.returncode != 0 and result.stderr.startswith(_SETUP_ERRORS):
            # the sandbox, not the program, failed (a program could fake this; it only logs)
            log.warning("%s sandbox failed to start a program: %s", isolation.name,
                        result.stderr.strip()[:500])
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``proc`` to exit; True if it did.

    ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms, which costs a typical 20 ms
    program half its throughput; a pidfd wakes us the moment the process exits.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # Linux < 5.3
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(pidfd)


def _readable_by_sandbox(files: Path) -> None:
    # bwrap runs as nobody and binds the runner's files from here, so they must be readable
    # (not writable) by others; the scratch directory above them is traversable only
    for path in files.rglob("*"):
        mode = path.stat().st_mode
        os.chmod(path, (mode | 0o755) if path.is_dir() else (mode | 0o444) & ~0o022)


def _read(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def _children() -> dict[int, list[int]]:
    """ppid -> pids of every process on the host, from /proc (no psutil dependency)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # exited meanwhile
            continue
        # the command name may contain spaces and parentheses; fields resume after the last ")"
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants.

    Under bwrap and unshare a descendant is the PID namespace's init, and the kernel kills
    every process in a namespace when its init dies, so a fork bomb cannot outrun this walk.
    """
    tree = _children()
    todo, found = [pid], []
    while todo:  # collect before killing: the dead's children are reparented away
        p = todo.pop()
        found.append(p)
        todo.extend(tree.get(p, ()))
    for p in found:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _killpg(pid)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
