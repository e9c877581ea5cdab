"""The reward-model reward and reward routing by task (R1's RL for all scenarios)."""

import torch
from transformers import Qwen2Config, Qwen2ForSequenceClassification

from r1kit.config.validate import validate
from r1kit.models.tiny import build_tokenizer
from r1kit.plugin.manager import get_registry
from r1kit.rewards.harness import compute_rewards
from r1kit.rewards.specs import reward_specs
from tests.conftest import compose_config
from r1kit.api import plugin_options


def _tiny_classifier(path):
    tokenizer = build_tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, intermediate_size=128,
                         num_labels=1, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    Qwen2ForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_reward_model_scores_with_the_classifier_and_is_routed(tmp_path):
    path = _tiny_classifier(tmp_path / "rm")
    cfg = compose_config(["pipeline=grpo", "reward=[accuracy,reward_model]",
                          f"reward.reward_model.path={path}",
                          "reward.reward_model.applies_to=[general]",
                          "reward.accuracy.applies_to=[reasoning]"], run_dir="/tmp/x")
    validate(cfg, get_registry())
    specs = reward_specs(cfg.reward, get_registry())
    examples = [{"prompt": "1+1", "answer": "2", "task": "reasoning"},
                {"prompt": "say hi", "task": "general"},
                {"prompt": "say bye", "task": "general"}]
    completions = ["<think>1+1=2</think><answer>2</answer>", "hi there", "bye"]
    scores = compute_rewards(specs, completions, examples)
    assert scores.parts["accuracy"] == [1.0, None, None]
    rm = scores.parts["reward_model"]
    assert rm[0] is None and isinstance(rm[1], float) and rm[1] != rm[2]
    # the same model scored directly gives the same numbers
    from r1kit.rewards.reward_model import reward_model
    direct = reward_model(completions[1:], examples[1:],
                          plugin_options("reward", "reward_model", path=str(path)))
    assert torch.allclose(torch.tensor(direct), torch.tensor(rm[1:]))
    assert scores.total[1] == rm[1]
