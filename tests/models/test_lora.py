"""LoRA (``model.lora.rank > 0``): adapters train, the reference is the base with them off (no
second copy of the weights), samplers see the merged weights, stages export a merged model."""

import csv
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from r1kit.algo.logprobs import completion_logprobs, pack
from r1kit.config.schema import ConfigError, LoraConfig, ModelConfig, TinyModelConfig
from r1kit.config.validate import validate
from r1kit.models import lora
from r1kit.models.loading import load_model, model_source
from r1kit.pipeline.runner import run_pipeline
from r1kit.plugin import manager as pluginmanager
from tests.conftest import SHRINK, compose_config
from tests.training import learnable_reward

TINY = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                       max_position_embeddings=64)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return model_source(ModelConfig(tiny=TINY), tmp_path_factory.mktemp("run"))


def _adapted(base_dir, rank=4):
    model = load_model(base_dir, ModelConfig(tiny=TINY, lora=LoraConfig(rank=rank)))
    with torch.no_grad():  # LoRA's B starts at 0 (no change): give the adapters a delta
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05, generator=torch.Generator().manual_seed(len(name)))
    return model


def _logprobs(model, ids=((3, 4, 5), (6, 7)), completions=((8, 9, 10), (11,))):
    batch = pack([list(p) for p in ids], [list(c) for c in completions], pad_id=0, device="cpu")
    with torch.no_grad():
        return completion_logprobs(model, *batch)[0]


def test_only_the_adapters_train(base_dir):
    model = _adapted(base_dir)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in name for name in trainable)
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                       "down_proj"}  # every linear layer but the head
    limited = load_model(base_dir, ModelConfig(tiny=TINY, lora=LoraConfig(
        rank=2, target_modules=["q_proj", "v_proj"])))
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, p in limited.named_parameters()
            if p.requires_grad} == {"q_proj", "v_proj"}


def test_reference_pass_is_the_base_model(base_dir):
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    model = _adapted(base_dir).eval()
    with lora.reference_pass(model):
        torch.testing.assert_close(_logprobs(model), _logprobs(base))
    assert not torch.allclose(_logprobs(model), _logprobs(base))  # adapters back on


def test_merged_weights_are_the_exported_model_and_leave_the_base_alone(base_dir):
    model = _adapted(base_dir).eval()
    adapted_logprobs = _logprobs(model)
    merged = dict(lora.merged_weights(model))
    base_before = {k: v.clone() for k, v in model.get_base_model().state_dict().items()}
    assert not any(".lora_" in k or ".base_layer." in k for k in merged)
    exported = lora.export(model)
    assert type(exported).__name__ == "Qwen2ForCausalLM" and not lora.is_lora(exported)
    state = exported.state_dict()
    assert merged.keys() == state.keys()
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, state[name], msg=name)
    torch.testing.assert_close(_logprobs(exported), adapted_logprobs)
    # computing the merged weights did not write into the base weights
    q = "model.layers.0.self_attn.q_proj.base_layer.weight"
    assert not torch.equal(base_before[q], state["model.layers.0.self_attn.q_proj.weight"])


def test_bad_lora_values_name_the_key():
    with pytest.raises(ConfigError, match="model.lora.rank"):
        LoraConfig(rank=-1)
    with pytest.raises(ConfigError, match="model.lora.target_modules"):
        LoraConfig(rank=2, target_modules=[])


def _rl_params(run_dir: Path) -> list[dict]:
    with (run_dir / "rl" / "metrics.csv").open() as handle:
        return [row for row in csv.DictReader(handle) if row.get("train/loss")]


@pytest.fixture
def with_learnable_reward():
    registry = pluginmanager.install(extra_plugins=(learnable_reward,))
    yield registry
    pluginmanager.reset()


def test_lora_grpo_run_trains_with_no_reference_copy_and_the_next_stage_loads_it(
        tmp_path, with_learnable_reward):
    cfg = compose_config([*SHRINK, "pipeline=grpo", "reward=[sevens]",
                          "model.lora.rank=4", "algo.beta=0.04", "trainer.max_steps=2",
                          "optim.lr=1e-2", "+pipeline.stages.final={kind: eval}"],
                         run_dir=str(tmp_path))
    plan = validate(cfg, with_learnable_reward)
    built = {}
    from r1kit.stages.grpo import stage as grpo_stage

    original = grpo_stage._module

    def spy(*args):
        built["module"] = original(*args)
        return built["module"]

    grpo_stage._module = spy
    try:
        outputs = run_pipeline(plan)
    finally:
        grpo_stage._module = original
    module = built["module"]
    assert module.reference is None  # β > 0, yet no second model: the base with adapters off
    rows = _rl_params(tmp_path)
    assert len(rows) == 2 and all(float(r["train/kl"]) >= 0 for r in rows)
    assert float(rows[-1]["train/kl"]) > 0  # the adapters moved the policy off the base
    exported = AutoModelForCausalLM.from_pretrained(outputs["rl"]["checkpoint"])
    assert type(exported).__name__ == "Qwen2ForCausalLM"  # merged, plain HF weights
    base = AutoModelForCausalLM.from_pretrained(model_source(plan.config.model, tmp_path))
    changed = [n for n, p in exported.state_dict().items()
               if not torch.equal(p, base.state_dict()[n])]
    assert changed and all(any(k in n for k in ("proj",)) for n in changed)  # adapted layers only
    # the eval stage loaded the merged model: its greedy held-out score is the adapted policy's
    assert outputs["final"]["metrics"]["val/sevens"] == outputs["rl"]["metrics"]["val/sevens"]
