"""Isolation backends: how the sandbox wraps a command so that it runs cut off from the host.

The programs are written by a policy under optimisation pressure, so sooner or later one of them
will do anything a program can do. Python-level restrictions (audit hooks, stripped builtins)
are escapable by design; only the kernel's isolation holds, so every backend here is built from
namespaces and an unprivileged uid:

``bwrap``
    bubblewrap (Debian package ``bubblewrap``). Fresh user, PID, network, IPC, UTS and mount
    namespaces; a root made of a read-only ``/usr`` (and a few ``/etc`` files), a fresh
    ``/proc``, a minimal ``/dev`` and a size-capped ``/tmp``; nothing else of the host exists
    in it. Run as ``nobody`` when the trainer is root, so even the kernel's owner checks see a
    stranger. Needs user namespaces, which most kernels allow.
``unshare``
    util-linux ``unshare`` + ``mount`` + ``chroot`` + ``setpriv`` building the same view by
    hand. Needs root (``CAP_SYS_ADMIN``) but no user namespaces: the fallback where bubblewrap
    is missing or user namespaces are switched off.
``none``
    No isolation at all (only rlimits and a scrubbed environment). Never chosen by ``auto``;
    it must be asked for by name, and it logs a warning, since a program run this way can do
    anything the trainer can.

``auto`` probes the backends in that order once per process (by running ``cat`` on a prepared
file through each) and picks the first that works; if none does, running code is refused with
an error that says what each probe saw.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

#: ``nobody``/``nogroup``: an id that owns nothing on the host, so the kernel's ordinary
#: permission checks refuse the sandbox everything that is not world-readable.
SANDBOX_UID = SANDBOX_GID = 65534
#: Fixed, not inherited: the trainer's PATH may name a user's bin directories.
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
_ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Inside the sandbox the private tmpfs is both ``/tmp`` and the working directory.
SANDBOX_DIR = "/tmp"

#: Top-level system directories the interpreter needs; merged-/usr systems have most as links.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: The few /etc files programs touch (dynamic loader, time zone, user names); /etc as a whole
#: can hold host configuration that is none of the program's business.
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
              "/etc/alternatives", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf")
_SHM_BYTES = 1 << 20  # multiprocessing's semaphores live in /dev/shm; nothing else should


class SandboxUnavailableError(RuntimeError):
    """No isolation backend works on this machine (or the one asked for does not)."""


def sandbox_env(home: str) -> dict[str, str]:
    """The whole environment of a sandboxed program: nothing of the trainer's (keys, tokens)."""
    return {"PATH": SANDBOX_PATH, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True)
class Launch:
    """What ``subprocess.Popen`` needs to start one sandboxed program."""

    argv: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)


class Isolation(ABC):
    """One way of isolating a program. ``launch`` wraps ``argv`` (already rlimit-prefixed)."""

    name: str

    @abstractmethod
    def launch(self, argv: Sequence[str], *, scratch: Path, files: Path, tmp_bytes: int,
               ro_paths: Sequence[str] = ()) -> Launch:
        """The command that runs ``argv`` isolated.

        :param scratch: a private host directory for this run (removed afterwards).
        :param files: the runner's files (inside ``scratch``); they appear read-only in the
            program's working directory.
        :param tmp_bytes: size cap of the program's writable tmpfs.
        :param ro_paths: extra host paths the program must see read-only (an interpreter that
            lives outside ``/usr``).
        """

    def probe(self) -> str | None:
        """Why this backend cannot run programs here, or None when it can."""
        scratch = Path(make_scratch())
        try:
            files = scratch / "files"
            files.mkdir(mode=0o711)
            # a file to read back: the path real runs take (scratch -> sandbox -> stdout) must
            # work, or every program would fail and every reward be a silent 0.0
            (files / "probe").write_text("r1kit")
            (files / "probe").chmod(0o644)
            spec = self.launch(["cat", "probe"], scratch=scratch, files=files, tmp_bytes=1 << 20)
            try:
                proc = subprocess.run(spec.argv, cwd=spec.cwd, env=spec.env,
                                      stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            except (OSError, subprocess.SubprocessError) as e:
                return f"{type(e).__name__}: {e}"
            if proc.returncode != 0 or proc.stdout != b"r1kit":
                err = proc.stderr.decode(errors="replace").strip().splitlines()
                return f"exit status {proc.returncode}: {err[-1] if err else 'no message'}"
            return None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def make_scratch() -> str:
    path = tempfile.mkdtemp(prefix="r1kit-code-")
    # traversable (not listable) by the sandbox uid, which bwrap runs as and binds files from
    os.chmod(path, 0o711)
    return path


def _system_view() -> list[tuple[str, str]]:
    """(kind, path) of the host system directories: ``link`` for a symlink, else ``dir``."""
    view = []
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            view.append(("link", d))
        elif os.path.isdir(d):
            view.append(("dir", d))
    return view


@functools.lru_cache(maxsize=None)
def _no_nested_userns(bwrap: str) -> tuple[str, ...]:
    """``--disable-userns`` where this bwrap has it (0.8+): a nested user namespace would hand
    the program a fresh set of capabilities to probe the kernel with."""
    try:
        usage = subprocess.run([bwrap, "--help"], capture_output=True, text=True).stdout
    except OSError:
        return ()
    return ("--disable-userns",) if "--disable-userns" in usage else ()


class BwrapIsolation(Isolation):
    name = "bwrap"

    def launch(self, argv, *, scratch, files, tmp_bytes, ro_paths=()):
        bwrap = shutil.which("bwrap") or "bwrap"
        # as root, start bwrap itself as nobody: inside its user namespace the program is
        # "nobody" either way, but then it is nobody on the host too, not root without
        # capabilities. (setpriv rather than Popen(user=...): that would make Python fork the
        # whole trainer instead of vfork'ing, which costs milliseconds per GB of its memory.)
        args = [shutil.which("setpriv") or "setpriv", f"--reuid={SANDBOX_UID}",
                f"--regid={SANDBOX_GID}", "--clear-groups", "--"] if os.geteuid() == 0 else []
        args += [bwrap,
                # user, pid, net (loopback only, and it is the sandbox's own), ipc, uts, cgroup
                "--unshare-all", "--unshare-user", *_no_nested_userns(bwrap),
                # the sandbox dies with the thread that started it, and cannot reach the
                # trainer's terminal (TIOCSTI)
                "--die-with-parent", "--new-session",
                "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--hostname", "sandbox",
                "--clearenv"]
        for key, value in sandbox_env(SANDBOX_DIR).items():
            args += ["--setenv", key, value]
        for kind, d in _system_view():
            args += ["--symlink", os.readlink(d), d] if kind == "link" else ["--ro-bind", d, d]
        for f in _ETC_FILES:
            args += ["--ro-bind-try", f, f]
        for p in ro_paths:
            args += ["--ro-bind", p, p]
        args += ["--proc", "/proc", "--dev", "/dev",
                 "--size", str(_SHM_BYTES), "--tmpfs", "/dev/shm",
                 "--size", str(tmp_bytes), "--tmpfs", SANDBOX_DIR]
        for entry in sorted(os.listdir(files)):
            args += ["--ro-bind", str(files / entry), f"{SANDBOX_DIR}/{entry}"]
        # bwrap's own root and /dev are unbounded tmpfs: read-only, or a program could fill RAM
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_DIR, "--", *argv]
        return Launch(argv=args, cwd="/", env={"PATH": SANDBOX_PATH})


# Runs as root inside fresh mount/pid/net/ipc/uts namespaces (so its mounts vanish with them),
# builds the same view as bwrap in $R, then runs the program as nobody with no capabilities.
# Few commands, since each is a fork: symlinks, /etc files and device nodes are copied (cp -a
# keeps links as links and recreates the nodes), only directories are bind-mounted.
# It stays pid 1 rather than exec'ing the program: unshare's --kill-child signal is aimed at it,
# and setpriv's uid change would clear a parent-death signal on the program itself.
_UNSHARE_SCRIPT = r"""
set -eu
R=$1 FILES=$2 TMP_BYTES=$3 SHM_BYTES=$4 DIRS=$5 COPIES=$6
shift 6
mount -t tmpfs -o size=4m,mode=755 r1kit-sandbox "$R"
cd "$R"
mkdir -p proc dev/shm tmp etc $DIRS  # before cp: cp --parents would make them 0700
for d in $DIRS; do mount --rbind -o ro,nosuid "/$d" "$d"; done
cp -a --parents $COPIES /dev/null /dev/zero /dev/full /dev/random /dev/urandom "$R"
mount -t proc -o nosuid,nodev,noexec proc proc
mount -t tmpfs -o "size=$SHM_BYTES,mode=1777,nosuid,nodev" tmpfs dev/shm
mount -t tmpfs -o "size=$TMP_BYTES,mode=1777,nosuid,nodev" tmpfs tmp
cp -R "$FILES"/. tmp/
mount -o remount,ro "$R"
chroot "$R" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
  --bounding-set=-all --no-new-privs -- "$@"
"""


class UnshareIsolation(Isolation):
    name = "unshare"

    def launch(self, argv, *, scratch, files, tmp_bytes, ro_paths=()):
        if os.geteuid() != 0:
            raise SandboxUnavailableError("the unshare backend needs root (CAP_SYS_ADMIN)")
        root = scratch / "root"  # mount point of the sandbox's root, in its own mount namespace
        root.mkdir(exist_ok=True)
        view = _system_view()
        dirs = [d for kind, d in view if kind == "dir"] + [p for p in ro_paths if os.path.isdir(p)]
        copies = [d for kind, d in view if kind == "link"] + [
            f for f in _ETC_FILES if os.path.lexists(f)]
        env = [f"{k}={v}" for k, v in sandbox_env(SANDBOX_DIR).items()]
        inner = ["env", "-i", "-C", SANDBOX_DIR, *env, *argv]
        args = [shutil.which("setpriv") or "setpriv",
                # unshare itself dies with the thread that started it...
                "--pdeathsig", "KILL", "--",
                shutil.which("unshare") or "unshare",
                "--mount", "--net", "--pid", "--ipc", "--uts", "--fork",
                # ...and takes the namespace's pid 1, hence every process in it, along
                "--kill-child", "--propagation", "private",
                "/bin/sh", "-c", _UNSHARE_SCRIPT, "r1kit-sandbox",
                str(root), str(files), str(tmp_bytes), str(_SHM_BYTES),
                " ".join(d.lstrip("/") for d in dirs), " ".join(copies), *inner]
        # the setup script runs as root and needs mount and chroot from the sbin directories
        return Launch(argv=args, cwd="/", env={"PATH": _ROOT_PATH})


class NoIsolation(Isolation):
    """Runs the program directly: rlimits and a clean environment, nothing else."""

    name = "none"

    def launch(self, argv, *, scratch, files, tmp_bytes, ro_paths=()):
        return Launch(argv=list(argv), cwd=str(files), env=sandbox_env(str(files)))

    def probe(self) -> str | None:
        return None


#: The order ``auto`` tries; ``none`` is deliberately not in it.
BACKENDS: dict[str, type[Isolation]] = {"bwrap": BwrapIsolation, "unshare": UnshareIsolation}
CHOICES = ("auto", *BACKENDS, "none")


@functools.lru_cache(maxsize=None)
def probe(name: str) -> str | None:
    """Cached: why backend ``name`` does not work here, or None when it does."""
    if name == "bwrap" and shutil.which("bwrap") is None:
        return "bwrap is not installed (Debian: apt-get install bubblewrap)"
    if name == "bwrap" and os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv is not installed (Debian: util-linux)"
    if name == "unshare":
        if os.geteuid() != 0:
            return "needs root (CAP_SYS_ADMIN) to create namespaces without a user namespace"
        missing = [t for t in ("unshare", "setpriv", "mount", "chroot") if not shutil.which(t)]
        if missing:
            return f"missing {', '.join(missing)} (Debian: util-linux, mount, coreutils)"
    missing = [t for t in ("prlimit", "timeout") if not shutil.which(t, path=SANDBOX_PATH)]
    if missing:  # the sandbox runs them from the host's /usr before the program
        return f"missing {', '.join(missing)} (Debian: util-linux, coreutils)"
    return BACKENDS[name]().probe()


def available() -> dict[str, str | None]:
    """Every isolating backend and why it does not work here (None: it works)."""
    return {name: probe(name) for name in BACKENDS}


@functools.lru_cache(maxsize=None)
def _warn_unisolated() -> None:
    log.warning(
        "\n" + "!" * 78 + "\n"
        "r1kit code reward: isolation=none -- model-written programs run WITHOUT a sandbox,\n"
        "with the trainer's user, filesystem and network. Use only for trusted code.\n"
        + "!" * 78)


def select_isolation(name: str = "auto") -> Isolation:
    """The backend for ``name`` (one of ``CHOICES``), after checking that it works here."""
    if name not in CHOICES:
        raise ValueError(f"isolation must be one of {', '.join(CHOICES)}; got {name!r}")
    if name == "none":
        _warn_unisolated()
        return NoIsolation()
    candidates = list(BACKENDS) if name == "auto" else [name]
    reasons = {}
    for candidate in candidates:
        reason = probe(candidate)
        if reason is None:
            return BACKENDS[candidate]()
        reasons[candidate] = reason
    detail = "; ".join(f"{k}: {v}" for k, v in reasons.items())
    raise SandboxUnavailableError(
        f"cannot isolate model-written code on this machine ({detail}). Install bubblewrap "
        "(apt-get install bubblewrap) and allow user namespaces, or run as root for the unshare "
        "backend; to run the code without any sandbox, set reward.code.isolation=none.")
