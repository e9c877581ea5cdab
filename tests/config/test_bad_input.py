"""Bad input fails at compose time, before any model or data loads, naming the problem."""

import time

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from r1kit.config.schema import ConfigError
from r1kit.config.validate import validate
from r1kit.plugin.manager import get_registry
from tests.conftest import compose_config, run_cli

CASES = [
    (["algo.epsilon=1.5"], "algo.epsilon"),
    (["algo.epsilon=0"], "algo.epsilon"),
    (["algo.epsilon_high=1"], "algo.epsilon_high"),
    (["algo.beta=-0.1"], "algo.beta"),
    (["algo.group_size=1"], "algo.group_size"),
    (["algo.group_sise=4"], "group_sise"),
    (["algo.group_size=four"], "group_size"),
    (["+not_a_key=1"], "not_a_key"),
    (["trainer.max_stepz=3"], "trainer.max_stepz"),
    (["reward.accuracy.sample_timeout=abc"], "sample_timeout"),
    (["+reward.accuracy.nope=1"], "reward.accuracy.nope"),
    (["reward=[no_such_reward]"], "no_such_reward"),
    (["algo.aggregation=median"], "algo.aggregation"),
    (["sampler=nope"], "nope"),
    (["model.tiny.num_heads=8"], "head_dim"),
    (["model.attn_implementation=flash"], "model.attn_implementation"),
    (["data=jsonl", "data.path=/nonexistent/file.jsonl"], "/nonexistent/file.jsonl"),
    (["trainer.strategy=fsdp", "trainer.accelerator=cpu"], "trainer.strategy"),
    (["model.lora.rank=-2"], "model.lora.rank"),
]


@pytest.mark.parametrize("overrides,named", CASES, ids=[c[1] for c in CASES])
def test_bad_config_is_rejected_naming_the_key(overrides, named):
    with pytest.raises((ConfigError, HydraException, OmegaConfBaseException)) as err:
        validate(compose_config(overrides, run_dir="/tmp/r1kit-bad"), get_registry())
    assert named in str(err.value)


@pytest.mark.parametrize("overrides,named", [CASES[0], CASES[5], CASES[-1]])
def test_cli_exits_nonzero_within_seconds_before_loading_a_model(overrides, named, tmp_path):
    started = time.monotonic()
    result = run_cli(*overrides, f"run_dir={tmp_path / 'run'}", timeout=120)
    assert result.returncode != 0
    assert named in result.stderr + result.stdout
    assert not (tmp_path / "run" / "tiny_model").exists(), "a model was built before the error"
    assert time.monotonic() - started < 60


def test_malformed_jsonl_names_file_and_line(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "1+1", "answer": "2"}\n{"prompt": "2+2", "answer": \n')
    with pytest.raises(ConfigError, match=f"{data}:2"):
        validate(compose_config(["data=jsonl", f"data.path={data}"], run_dir="/tmp/x"),
                 get_registry())
