"""As a user installs it: pip install into a fresh virtualenv, found through the entry point."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PLUGIN_DIR = Path(__file__).resolve().parents[1]


def _run(args, **kwargs):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv(tmp_path):
    import site

    # Build from a copy: setuptools writes *.egg-info and build/ next to the sources.
    source = tmp_path / "r1kit-countdown"
    shutil.copytree(PLUGIN_DIR, source, ignore=shutil.ignore_patterns(
        "*.egg-info", "build", "__pycache__", ".pytest_cache"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = str(venv / "bin" / "python")
    # The new venv sees the packages of the environment running these tests (torch, r1kit,
    # setuptools, pip), after its own. Not --system-site-packages: when that environment is
    # itself a venv, it would show the base interpreter's packages instead, which may hold other
    # versions of r1kit's dependencies. addsitedir also runs that environment's .pth files,
    # which is what makes an editable r1kit importable.
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib.strip(), "_r1kit_test_outer.pth").write_text(
        f"import site; list(map(site.addsitedir, {outer!r}))\n")

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "R1KIT_DISABLE_PLUGIN_AUTOLOAD", "R1KIT_BLOCK_PLUGINS")}
    _run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
          "--disable-pip-version-check", "--quiet", str(source)], env=env, cwd=tmp_path)

    # The environment running the tests may have the package installed too (editable): the
    # venv's own site-packages come first, so what r1kit finds is the copy just installed.
    where = _run([python, "-c", "import r1kit_countdown; print(r1kit_countdown.__file__)"],
                 env=env, cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv), where
    listing = _run([python, "-m", "r1kit", "plugins"], env=env, cwd=tmp_path)
    rows = {tuple(re.split(r"\s{2,}", line.strip())) for line in listing.splitlines()}
    for kind in ("reward", "dataset"):
        assert (kind, "countdown", "r1kit-countdown 0.1.0", "countdown") in rows, listing
    assert ("reward", "accuracy", "r1kit 0.1.0", "r1kit.rewards.accuracy") in rows, listing

    printed = _run([python, "-m", "r1kit", "reward=[countdown,format]", "data=countdown",
                    "--cfg", "job"], env=env, cwd=tmp_path)
    cfg = yaml.safe_load(printed)
    assert set(cfg["reward"]) == {"countdown", "format"}
    assert cfg["reward"]["countdown"]["format_score"] == 0.0
    assert cfg["data"]["name"] == "countdown" and cfg["data"]["num_numbers"] == 3
