"""``+smoke=tiny`` shrinks any recipe without changing what it runs."""

import pytest

from r1kit.config.schema import ConfigError
from r1kit.config.validate import stage_config, validate
from r1kit.plugin.manager import get_registry
from tests.conftest import compose_config


@pytest.mark.parametrize("experiment", ["r1_zero", "r1_full"])
def test_smoke_caps_every_training_stage_and_keeps_the_recipe(experiment):
    full = compose_config([f"+experiment={experiment}"], run_dir="/tmp/r1kit-smoke")
    smoke = compose_config([f"+experiment={experiment}", "+smoke=tiny"],
                           run_dir="/tmp/r1kit-smoke")
    validate(smoke, get_registry())
    assert smoke.model.path is None and full.model.path  # the tiny model instead of the hub's
    from omegaconf import OmegaConf

    data, smoke_data = (OmegaConf.to_container(c.data) for c in (full, smoke))
    assert smoke_data == {**data, "batch_size": 4, "val_size": 8}  # same data and template
    assert smoke.reward == full.reward and smoke.pipeline == full.pipeline
    for name, stage in smoke.pipeline.stages.items():
        scfg = stage_config(smoke, name, get_registry())
        if stage.kind in ("sft", "grpo"):
            assert scfg.trainer.max_steps == 2, name
            assert stage_config(full, name, get_registry()).trainer.max_steps > 2, name


def test_stage_max_steps_must_be_positive():
    with pytest.raises(ConfigError, match="stage_max_steps"):
        validate(compose_config(["stage_max_steps=0"], run_dir="/tmp/x"), get_registry())
