"""Fixtures of the code reward's tests: a registry holding just this plugin, and the backends."""

from __future__ import annotations

import os

import pytest
from code_reward_helpers import UNAVAILABLE, WORKING, code_registry

from r1kit.rewards.code import reward


@pytest.fixture(autouse=True)
def _registry(monkeypatch):
    """The reward looks its runner up in the process-wide registry; give it ours."""
    registry = code_registry()
    monkeypatch.setattr(reward, "get_registry", lambda: registry)
    return registry


@pytest.fixture(params=WORKING or ["unavailable"])
def backend(request) -> str:
    """Each isolating backend that works here (tests using it run once per backend)."""
    if request.param == "unavailable":
        if os.environ.get("CI", "").lower() in ("1", "true"):
            # CI installs bubblewrap (and runs as root, where unshare works too): a skip there
            # would hide a sandbox that stopped working
            pytest.fail(f"{UNAVAILABLE} -- CI must run the sandbox tests")
        pytest.skip(UNAVAILABLE)
    return request.param
