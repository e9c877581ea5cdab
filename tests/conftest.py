"""Shared fixtures: compose real configs (and shrink them) exactly as the CLI does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parents[1]

#: Overrides that make any recipe run in seconds on a CPU: the smoke config users have too
#: (conf/smoke/tiny.yaml), on the arithmetic task. Tests set their own step counts.
SHRINK = ["+smoke=tiny", "data=arithmetic", "logger=csv", "stage_max_steps=null",
          "rejection.num_prompts=null", "model.tiny.max_position_embeddings=256"]


def compose_config(overrides=(), run_dir=None, config_name="config"):
    """Compose like ``python -m r1kit`` does (plugins fed to Hydra first)."""
    from r1kit.cli.startup import CONF_DIR, prepare

    prepare()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        extra = [f"run_dir={run_dir}"] if run_dir else []
        return compose(config_name, overrides=[*overrides, *extra], return_hydra_config=False)


def run_cli(*args, cwd=None, timeout=600, env=None, module="r1kit"):
    """Run ``python -m <module> args`` in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture
def compose_cfg():
    return compose_config
