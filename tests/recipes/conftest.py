"""Shared pieces of the shipped-recipe tests: shaped local datasets, the oracle sampler, and
the overrides that shrink a recipe to the tiny model without touching its template, rewards
or filters."""

from __future__ import annotations

import pytest

from r1kit.plugin import manager as pluginmanager
from tests.recipes import oracle_sampler, shaped_data

#: Data presets and the local directory shape each one reads.
SHAPES = {"math": shaped_data.math_like, "gsm8k": shaped_data.gsm8k_like}


def data_overrides(preset: str, directory) -> list[str]:
    # a local dataset directory has no hub config name (GSM8K's is "main")
    return [f"data={preset}", f"data.path={directory}", "data.config_name=null",
            "data.val_size=4", "data.batch_size=2"]


#: Shrink a recipe: the smoke config (tiny model, two steps per stage), the oracle sampler.
SHRINK = ["+smoke=tiny", "sampler=oracle", "sampler.max_new_tokens=64", "logger=csv",
          "checkpoint_every=1", "rejection.num_prompts=4"]


def r1_full_overrides(reward_model_dir, general_file, data_dir) -> list[str]:
    """rl_all with its reward model from a local directory, on a mixture of the recipe's
    reasoning rows and general rows (which the reward model scores)."""
    mixture = (f"{{name:mixture,sources:[{{name:hub,path:'{data_dir}',config_name:null,"
               f"prompt_field:problem,answer_field:solution,task:reasoning}},"
               f"{{name:jsonl,path:'{general_file}',task:general}}]}}")
    return [f"pipeline.stages.rl_all.overrides.reward.reward_model.path={reward_model_dir}",
            f"+pipeline.stages.rl_all.overrides.data={mixture}",
            "pipeline.stages.rejection_sampling.overrides.rejection.shard_size=2"]


@pytest.fixture
def with_oracle():
    registry = pluginmanager.install(extra_plugins=(oracle_sampler,))
    yield registry
    pluginmanager.reset()


@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    root = tmp_path_factory.mktemp("shaped")
    return {preset: make(root / preset) for preset, make in SHAPES.items()}


def oracle_dist(directory, extra: dict | None = None) -> dict:
    """Environment under which a ``python -m r1kit`` subprocess (and the ranks Lightning starts
    from it) finds the oracle sampler (and the ``extra`` entry points, name -> module) as an
    installed plugin: a dist-info with its entry points on PYTHONPATH."""
    import os

    info = directory / "r1kit_test_oracle-0.0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: r1kit-test-oracle\n"
                                   "Version: 0.0.1\n")
    points = {"oracle": "tests.recipes.oracle_sampler", **(extra or {})}
    (info / "entry_points.txt").write_text(
        "[r1kit]\n" + "".join(f"{name} = {module}\n" for name, module in points.items()))
    from tests.conftest import REPO

    path = os.pathsep.join([str(directory), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path}
