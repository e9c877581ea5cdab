"""Hostile programs under every isolating backend that works here.

Each attack is written so that it would *score 1 if it worked*: the row's expected output is
what the program prints after a successful attack. So a 0.0 score means the sandbox stopped
it, and the tests also check the host directly (files, sockets, processes, the test process
itself). Runs under ``isolation=none`` are never tried here: they would do real damage.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from code_reward_helpers import FAST, fenced, sandbox_leftovers

from r1kit.rewards.code.isolation import BACKENDS
from r1kit.rewards.code.reward import code_reward
from r1kit.rewards.code.runners import PythonRunner
from r1kit.rewards.code.sandbox import Limits, run_program
from r1kit.api import plugin_options

pytestmark = pytest.mark.sandbox

REPO = Path(__file__).resolve().parents[3]
PWNED = "pwned"


def attack(program: str, backend: str, expected: str = PWNED, **options) -> float:
    """The score of ``program`` on a one-test row expecting ``expected``."""
    [score] = code_reward([fenced(program)], [{"tests": [{"input": "", "output": expected}]}],
                          plugin_options("reward", "code", **{**FAST, "isolation": backend, **options}))
    return score


@pytest.fixture(autouse=True)
def _no_leftovers():
    yield
    # every process of a run dies with it, whatever it spawned (SIGKILLed ones may take a
    # moment to be gone from /proc)
    deadline = time.monotonic() + 2
    while sandbox_leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_leftovers() == []


def test_infinite_loops_are_killed(backend):
    start = time.monotonic()
    busy = "while True:\n    pass"
    # ignores SIGXCPU and SIGTERM and only sleeps: only the wall clock and SIGKILL end it
    stubborn = ("import signal, time\n"
                "for s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
                "    signal.signal(s, signal.SIG_IGN)\n"
                "while True:\n    time.sleep(0.01)")
    assert attack(busy + f"\nprint('{PWNED}')", backend) == 0.0
    assert attack(stubborn + f"\nprint('{PWNED}')", backend) == 0.0
    assert time.monotonic() - start < 2 * FAST["time_limit"] + 6  # slack for a busy CI


def test_memory_bombs_fail(backend):
    at_once = f"x = bytearray(64 * 2**30)\nprint('{PWNED}')"
    creeping = ("xs = []\nwhile len(xs) < 10_000:\n    xs.append(bytearray(2**20))\n"
                f"print('{PWNED}')")
    assert attack(at_once, backend) == 0.0
    assert attack(creeping, backend) == 0.0


def test_fork_bomb_is_bounded_and_killed_whole(backend):
    start = time.monotonic()
    # succeeding would mean 200 processes; each child would otherwise live for a minute
    many = ("import os, time\nn = 0\nfor _ in range(200):\n"
            "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
            "    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n    n += 1\n"
            "print(n)")
    assert attack(many, backend, expected="200") == 0.0
    # the classic: every process forks forever until the wall clock ends the namespace
    classic = ("import os\nwhile True:\n    try:\n        os.fork()\n"
               "    except OSError:\n        pass")
    assert attack(classic, backend) == 0.0
    assert time.monotonic() - start < 2 * FAST["time_limit"] + 6  # slack for a busy CI


def test_writes_outside_the_sandbox_do_not_land(backend, tmp_path):
    tmp_path.chmod(0o777)  # writable by anyone: only the sandbox stands in the way
    marker = f"r1kit-escape-{uuid.uuid4().hex}"
    targets = [tmp_path / marker, REPO / marker, Path.home() / marker,
               Path("/var/tmp") / marker, Path("/usr/lib") / marker]
    for target in targets:
        program = f"with open({str(target)!r}, 'w') as f:\n    f.write('x')\nprint('{PWNED}')"
        assert attack(program, backend) == 0.0, target
        assert not target.exists(), target
    # the sandbox's /tmp and /dev/shm are its own: writing there works, and the host's
    # (world-writable) ones never see it
    for private in (Path("/tmp") / marker, Path("/dev/shm") / marker):
        program = f"with open({str(private)!r}, 'w') as f:\n    f.write('x')\nprint('written')"
        assert attack(program, backend, expected="written") == 1.0
        assert not private.exists()


def test_filling_the_private_tmp_stops_at_its_cap(backend):
    one_big_file = ("with open('big', 'wb') as f:\n    for _ in range(1024):\n"
                    f"        f.write(bytes(2**20))\nprint('{PWNED}')")
    many_files = ("for i in range(10_000):\n    with open(f'f{i}', 'wb') as f:\n"
                  f"        f.write(bytes(2**20))\nprint('{PWNED}')")
    assert attack(one_big_file, backend) == 0.0
    assert attack(many_files, backend) == 0.0


def test_no_network_not_even_loopback(backend):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = f"\0r1kit-test-{uuid.uuid4().hex}"  # abstract sockets live in the network namespace
    abstract.bind(name)
    abstract.listen(8)
    abstract.setblocking(False)
    try:
        tcp = ("import socket\ns = socket.create_connection(('127.0.0.1', %d), timeout=1)\n"
               "s.sendall(b'hello')\nprint('%s')" % (port, PWNED))
        unix = ("import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(%r)\nprint('%s')"
                % (name, PWNED))
        # no traffic leaves this machine even in a test: any interface but lo would be a way out
        interfaces = ("import socket\nout = [n for _, n in socket.if_nameindex() if n != 'lo']\n"
                      f"print('{PWNED}' if out else 'lo only')")
        for program in (tcp, unix, interfaces):
            assert attack(program, backend) == 0.0
        for listener in (server, abstract):
            with pytest.raises(BlockingIOError):
                listener.accept()  # nothing ever connected
    finally:
        server.close()
        abstract.close()


def test_cannot_signal_the_trainer_or_its_siblings(backend):
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        targets = [os.getpid(), sibling.pid]  # the trainer and a sibling, by host pid
        program = ("import os, signal\nkilled = 0\n"
                   f"for pid in {targets!r} + [os.getppid()]:\n"
                   "    try:\n        os.kill(pid, signal.SIGKILL)\n        killed += 1\n"
                   "    except OSError:\n        pass\n"
                   f"for pgid in {targets!r}:\n"
                   "    try:\n        os.killpg(pgid, signal.SIGKILL)\n        killed += 1\n"
                   "    except OSError:\n        pass\n"
                   f"print('{PWNED}' if killed == 5 else killed, flush=True)\n"
                   "os.kill(-1, signal.SIGKILL)  # everything it may signal")
        assert attack(program, backend) == 0.0
        time.sleep(0.2)
        assert sibling.poll() is None, "the sandbox killed a sibling process"
        # and this test process, the trainer, is evidently still here
    finally:
        sibling.kill()
        sibling.wait()


def test_environment_and_host_files_stay_secret(backend, monkeypatch, tmp_path):
    secret = f"sk-{uuid.uuid4().hex}"
    monkeypatch.setenv("R1KIT_TEST_SECRET", secret)
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(secret)
    tmp_path.chmod(0o755)
    secret_file.chmod(0o644)  # world-readable: only the sandbox's view of the disk hides it
    program = ("import os, glob\nfound = os.environ.get('R1KIT_TEST_SECRET', '')\n"
               f"paths = ['/proc/self/environ', '/proc/1/environ', '/proc/{os.getpid()}/environ',"
               f" {str(secret_file)!r}] + glob.glob('/proc/*/environ')\n"
               "for p in paths:\n    try:\n        found += open(p, 'rb').read().decode()\n"
               "    except OSError:\n        pass\n"
               "print(found)")
    result = run_program(BACKENDS[backend](), PythonRunner(), program,
                         limits=Limits(wall_s=5))
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout and secret not in result.stderr
    assert attack(program.replace("print(found)", f"print('{PWNED}' if {secret!r} in found "
                                                  "else found)"), backend) == 0.0


def test_huge_output_is_cut_off(backend):
    start = time.monotonic()
    flood = "import sys\nwhile True:\n    sys.stdout.write('x' * 1_000_000)"
    result = run_program(BACKENDS[backend](), PythonRunner(), flood,
                         limits=Limits(wall_s=5, max_output_mb=4))
    # stopped by the file size limit (EFBIG; Python ignores SIGXFSZ), not by the clock
    assert not result.ok and not result.timed_out and len(result.stdout) <= 4 << 20
    stderr_flood = flood.replace("stdout", "stderr") + "\n"
    assert attack(stderr_flood + f"print('{PWNED}')", backend) == 0.0
    assert time.monotonic() - start < 5 + FAST["time_limit"]


def test_the_scorer_survives_a_hostile_batch(backend):
    # everything at once, with a correct program among them, sharing the worker pool
    hostile = [
        "while True:\n    pass",
        "x = bytearray(64 * 2**30)",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "import os, signal\nos.kill(-1, signal.SIGKILL)",
        "import sys\nwhile True:\n    sys.stdout.write('y' * 10**6)",
    ]
    row = {"tests": [{"input": "4\n", "output": "8"}, {"input": "5\n", "output": "10"}]}
    completions = [fenced(p) for p in hostile] + [fenced("print(2 * int(input()))")]
    scores = code_reward(completions, [row] * len(completions),
                         plugin_options("reward", "code", **{**FAST, "isolation": backend}))
    assert scores == [0.0] * len(hostile) + [1.0]


def test_sandboxes_die_with_the_trainer(backend):
    # a stand-in trainer starts a long-lived sandboxed program whose child outlives it, then
    # is SIGKILLed itself (no cleanup code of ours runs): the kernel must take the tree along
    scratch = tempfile.mkdtemp(prefix="r1kit-test-")  # the dead trainer can't remove its files
    os.chmod(scratch, 0o711)  # bwrap, running as nobody, binds the program from in here
    trainer = subprocess.Popen([sys.executable, "-c", (
        "from r1kit.rewards.code.isolation import BACKENDS\n"
        "from r1kit.rewards.code.runners import PythonRunner\n"
        "from r1kit.rewards.code.sandbox import Limits, run_program\n"
        f"run_program(BACKENDS[{backend!r}](), PythonRunner(),\n"
        "            'import os, time\\nos.fork()\\ntime.sleep(60)', limits=Limits(wall_s=60))\n")],
        env={**os.environ, "TMPDIR": scratch})
    try:
        deadline = time.monotonic() + 10
        while len(sandbox_leftovers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(sandbox_leftovers()) == 2, "the sandboxed program did not start"
    finally:
        trainer.kill()
        trainer.wait()
        shutil.rmtree(scratch)
    # _no_leftovers checks that both of its processes are gone
