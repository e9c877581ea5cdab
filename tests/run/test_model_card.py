"""Every exported stage model carries a model card (README.md, Hugging Face format) with its
base model, recipe, exact command, config, results and r1kit version; the final model's card
has the eval stage's numbers, and hub.push uploads it (to a stand-in for the Hub here)."""

import json

import pytest
from huggingface_hub import ModelCard

from r1kit.config.schema import HubConfig
from r1kit.config.validate import validate
from r1kit.pipeline.hub import push_model
from r1kit.pipeline.model_card import card_text
from r1kit.plugin.manager import distribution_version, get_registry
from r1kit.run.errors import RunStopped
from tests.conftest import SHRINK, compose_config
from tests.run.conftest import COMMAND, REPO_ID


def _metrics(card) -> dict:
    (result,) = card.data.to_dict()["model-index"][0]["results"]
    return {m["type"]: m["value"] for m in result["metrics"]}


def test_the_final_model_card_has_how_it_was_made_and_the_eval_stage_numbers(tiny_run):
    path = tiny_run.run_dir / "rl" / "model" / "README.md"
    card = ModelCard.load(path)
    evaluated = json.loads((tiny_run.run_dir / "ev" / "eval.json").read_text())
    assert _metrics(card) == {"accuracy": evaluated["val/accuracy"],
                              "format": evaluated["val/format"]}
    assert card.data.library_name == "transformers" and "grpo" in card.data.tags
    assert card.data.base_model is None  # the tiny model is no Hub repository
    text = card.text
    assert COMMAND in text
    assert f"r1kit {distribution_version('r1kit')}" in text
    assert "**`rl` (grpo)** → `rs` (rejection_sampling) → `ev` (eval)" in text
    assert "| `val/avg@2` |" in text  # every final held-out metric
    for stage in ("rl", "ev"):  # the results table: held-out accuracy after each stage
        assert f"| {stage} |" in text
    assert "group_size: 4" in text and "samples_every: 1" in text  # the stage's config


def test_the_pushed_folder_is_the_final_model_with_its_final_card(tiny_run):
    calls = tiny_run.hub.calls
    assert calls[0] == ("init", "hf_not_a_real_token")
    assert calls[1] == ("create_repo", REPO_ID, True, True)  # private unless told otherwise
    (_, repo, folder, message, card) = calls[2]
    assert repo == REPO_ID and folder == str(tiny_run.run_dir / "rl" / "model")
    assert card == (tiny_run.run_dir / "rl" / "model" / "README.md").read_text()
    assert "stage rl" in message and len(calls) == 3


def test_a_failed_push_stops_with_where_the_model_is(tmp_path, monkeypatch):
    import huggingface_hub

    class Offline:
        def __init__(self, token=None):
            pass

        def create_repo(self, *args, **kwargs):
            raise ConnectionError("no network")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    hub = HubConfig(push=True, repo_id=REPO_ID)
    with pytest.raises(RunStopped, match=rf"pushing {tmp_path} to {REPO_ID} failed "
                                         r"\(ConnectionError: no network\).*rerun"):
        push_model(tmp_path, hub, message="m")


def test_a_stage_card_has_that_stage_s_own_numbers_and_the_hub_base_model(tmp_path):
    cfg = compose_config([*SHRINK, "model.path=Qwen/Qwen2.5-0.5B"], run_dir=str(tmp_path))
    plan = validate(cfg, get_registry())
    stage = plan.stage("cold_start")
    results = {"cold_start": {"metrics": {"val/accuracy": 0.359, "val/format": 1.0}}}
    card = ModelCard(card_text(stage=stage, plan=plan, results=results,
                               metrics=results["cold_start"]["metrics"], command=None,
                               source="Qwen/Qwen2.5-0.5B", run_name="r"))
    assert card.data.base_model == "Qwen/Qwen2.5-0.5B"
    assert _metrics(card) == {"accuracy": 0.359, "format": 1.0}
    assert "| cold_start | 35.9% | 100.0% |" in card.text  # held-out results after each stage
    assert "Python API" in card.text  # no command line to show
