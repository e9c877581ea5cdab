"""Hub-style datasets from a local directory (MATH- and GSM8K-shaped), R1-formatted cold-start
solutions, and the mixture dataset that tags rows by task."""

import json

import pytest

from r1kit.config.schema import ConfigError
from r1kit.config.validate import validate
from r1kit.data.hub import hub_dataset
from r1kit.data.loading import load_splits
from r1kit.plugin.manager import get_registry
from r1kit.rewards.format import is_well_formed
from tests.conftest import compose_config
from tests.recipes import shaped_data
from r1kit.api import plugin_options


def test_math_preset_reads_a_local_directory_and_writes_r1_solutions(tmp_path):
    directory = shaped_data.math_like(tmp_path / "math")
    cfg = compose_config(["data=math", f"data.path={directory}", "data.config_name=null",
                          "data.val_size=4"], run_dir=str(tmp_path / "run"))
    train, val = load_splits(cfg.data, get_registry(), 0)
    assert len(train) == 32 and len(val) == 4
    row = train[0]
    assert row["prompt"] == row["problem"] and "\\boxed{" in row["answer"]
    assert is_well_formed(row["solution"])
    boxed = row["answer"].split("\\boxed{")[1].split("}")[0]
    assert row["solution"].endswith(f"<answer>\n{boxed}\n</answer>")
    assert "We have" in row["solution"]  # the worked solution is the reasoning


def test_gsm8k_preset_takes_the_answer_after_hashes_and_drops_it_from_the_reasoning(tmp_path):
    directory = shaped_data.gsm8k_like(tmp_path / "gsm8k")
    cfg = compose_config(["data=gsm8k", f"data.path={directory}", "data.config_name=null",
                          "data.val_size=4"], run_dir=str(tmp_path / "run"))
    train, _ = load_splits(cfg.data, get_registry(), 0)
    row = train[0]
    final = row["answer"]
    assert final.isdigit()
    assert "####" not in row["solution"] and is_well_formed(row["solution"])
    assert row["solution"].endswith(f"<answer>\n{final}\n</answer>")


def test_r1_solution_without_a_final_answer_is_an_error(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps({"problem": "p", "solution": "no box"}) + "\n")
    with pytest.raises(ValueError, match="no final answer"):
        hub_dataset("train", 0,
                    plugin_options("data", "hub", path=str(tmp_path), answer_field=None, solution_field="solution", solution_format="r1"))


def test_mixture_tags_each_source_and_a_stage_keeps_the_recipes_template(tmp_path):
    math_dir = shaped_data.math_like(tmp_path / "math")
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps(r) + "\n" for r in shaped_data.general_rows(3)))
    mixture = (f"{{name:mixture,sources:[{{name:hub,path:'{math_dir}',prompt_field:problem,"
               f"answer_field:solution,task:reasoning}},{{name:jsonl,path:'{general}',"
               f"task:general}}]}}")
    cfg = compose_config(["+experiment=r1_full", "model=tiny", "data=math",
                          f"data.path={math_dir}", "data.config_name=null",
                          f"+pipeline.stages.rl_all.overrides.data={mixture}"],
                         run_dir=str(tmp_path / "run"))
    rl_all = validate(cfg, get_registry()).stage("rl_all").config
    assert rl_all.data.name == "mixture"
    assert rl_all.data.template == cfg.data.template  # the R1 template, not "{prompt}"
    train, _ = load_splits(rl_all.data, get_registry(), 0)
    tasks = [row["task"] for row in train]
    assert tasks.count("general") == 3 and tasks.count("reasoning") == 32


def test_mixture_source_errors_name_the_source(tmp_path):
    cfg = compose_config(["data=mixture", "data.sources=[{name:jsonl,path:/nonexistent.jsonl}]"],
                         run_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="/nonexistent.jsonl"):
        validate(cfg, get_registry())
    cfg = compose_config(["data=mixture", "data.sources=[{name:jsnol}]"],
                         run_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="did you mean 'jsonl'"):
        validate(cfg, get_registry())
