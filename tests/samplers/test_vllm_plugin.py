"""The ``vllm`` sampler plugin without vllm: registration, lazy import, option checks."""

import subprocess
import sys
from types import ModuleType, SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from r1kit.config.schema import ConfigError
from r1kit.samplers import vllm as vllm_plugin
from r1kit.api import plugin_options


def test_registers_the_vllm_sampler_with_its_schema():
    registered = []
    vllm_plugin.r1kit_register_samplers(register=lambda *a, **kw: registered.append((a, kw)))
    assert registered == [(("vllm", vllm_plugin.vllm_sampler),
                           {"schema": vllm_plugin.VLLMSamplerOptions})]


def test_loading_the_plugin_does_not_import_vllm():
    code = "import sys, r1kit.samplers.vllm; assert 'vllm' not in sys.modules, 'vllm imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_options_schema_defaults_and_checks():
    options = OmegaConf.to_object(OmegaConf.structured(vllm_plugin.VLLMSamplerOptions))
    assert options.sync_every == 1 and options.importance_correction == "none"
    assert options.max_model_len is None and options.dtype == "auto"
    merged = OmegaConf.merge(OmegaConf.structured(vllm_plugin.VLLMSamplerOptions),
                             {"max_model_len": 128, "kv_cache_memory_bytes": 2 ** 26})
    assert OmegaConf.to_object(merged).max_model_len == 128
    for bad in ({"sync_every": 0}, {"importance_correction": "ppo"}, {"importance_cap": 0.0},
                {"gpu_memory_utilization": 1.5}, {"logprobs_mode": "raw_logits"}):
        with pytest.raises(ConfigError):
            vllm_plugin.VLLMSamplerOptions(**bad)


def test_model_path_unwraps_wrappers():
    class Config:
        _name_or_path = "/ckpt"

    class Model:
        name_or_path = ""
        config = Config()

    class Wrapper:
        module = Model()

    assert vllm_plugin.model_path(Wrapper()) == "/ckpt"
    with pytest.raises(ValueError, match="name_or_path"):
        vllm_plugin.model_path(type("Bare", (), {"config": None})())


# -- the sampler's own logic against a fake engine (no vllm needed) ------------------------------


class InprocClient:  # the class name is how the sampler recognises an in-process engine
    pass


class FakeLLM:
    EOS = 1

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        self.llm_engine = SimpleNamespace(
            model_config=SimpleNamespace(max_model_len=kwargs["max_model_len"]),
            engine_core=InprocClient())

    def sleep(self, level):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags)))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))

    def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        self.calls.append(("collective_rpc", method, sorted(dict(kwargs["weights_iterator"]))))

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append(("generate", [p.n for p in params]))
        outputs = []
        for p, (prompt, sp) in enumerate(zip(prompts, params)):
            samples = []
            for i in reversed(range(sp.n)):  # out of order: the sampler sorts by index
                stop = i % 2 == 0
                tokens = [100 + p, 10 + i] + ([self.EOS] if stop else [])
                logprobs = [{t: SimpleNamespace(logprob=-0.5 * (k + 1)), 7: None}
                            for k, t in enumerate(tokens)]
                samples.append(SimpleNamespace(index=i, token_ids=tokens, logprobs=logprobs,
                                               finish_reason="stop" if stop else "length"))
            outputs.append(SimpleNamespace(outputs=samples))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    platforms = ModuleType("vllm.platforms")
    platforms.current_platform = SimpleNamespace(is_cpu=lambda: False)  # a GPU build
    module.platforms = platforms
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    monkeypatch.setenv(vllm_plugin.INPROC_ENV, "0")  # restored afterwards
    return module


def fake_policy():
    import torch

    model = torch.nn.Linear(2, 2)
    model.name_or_path = "/ckpt"
    model.config = SimpleNamespace(max_position_embeddings=64)
    return model


def test_generate_layout_with_a_fake_engine(fake_vllm):
    tokenizer = SimpleNamespace(eos_token_id=FakeLLM.EOS)
    sampler = vllm_plugin.vllm_sampler(fake_policy(), tokenizer,
                                       plugin_options("sampler", "vllm", max_new_tokens=8, temperature=0.9, top_p=0.95, sync_every=2))
    kwargs = sampler.llm.kwargs
    assert kwargs["model"] == "/ckpt" and kwargs["max_model_len"] == 64
    assert kwargs["dtype"] == "float32"  # "auto" follows the policy, not vLLM's downcast

    generation = sampler.generate([[5, 6], [7]], 3)
    assert generation.completion_ids == [[100, 10, 1], [100, 11], [100, 12, 1],
                                         [101, 10, 1], [101, 11], [101, 12, 1]]
    assert generation.truncated == [False, True, False, False, True, False]
    assert generation.logprobs[0] == [-0.5, -1.0, -1.5] and generation.logprobs[1] == [-0.5, -1.0]

    greedy = sampler.generate([[5, 6], [7]], 3, greedy=True)  # vLLM: greedy needs n=1
    assert sampler.llm.calls[-1] == ("generate", [1, 1])
    assert greedy.completion_ids == [[100, 10, 1]] * 3 + [[101, 10, 1]] * 3

    sampler.sync_weights(fake_policy())  # sync_every=2: the first call is skipped
    assert sampler.weight_syncs == 0
    sampler.sync_weights(fake_policy())
    assert sampler.weight_syncs == 1
    assert sampler.llm.calls[-2] == ("collective_rpc", "reload_weights", ["bias", "weight"])
    assert sampler.llm.calls[-1] == ("reset_prefix_cache",)


def test_budget_and_seeds_with_a_fake_engine(fake_vllm):
    tokenizer = SimpleNamespace(eos_token_id=FakeLLM.EOS)
    sampler = vllm_plugin.vllm_sampler(fake_policy(), tokenizer,
                                       plugin_options("sampler", "vllm", max_new_tokens=8, temperature=1.0, seed=3))
    captured = []
    sampler.llm.generate = lambda prompts, params, use_tqdm: captured.extend(params) or []
    sampler.generate([[0] * 10, [0] * 60, [0] * 64], 2)
    assert [p.max_tokens for p in captured] == [8, 4, 1]
    assert all(p.stop_token_ids == [FakeLLM.EOS] and p.logprobs == 0 for p in captured)
    assert len({p.seed for p in captured}) == 3
    again = vllm_plugin.vllm_sampler(fake_policy(), tokenizer,
                                     plugin_options("sampler", "vllm", max_new_tokens=8, temperature=1.0, seed=3))
    captured_again = []
    again.llm.generate = lambda prompts, params, use_tqdm: captured_again.extend(params) or []
    again.generate([[0] * 10, [0] * 60, [0] * 64], 2)
    assert [p.seed for p in captured_again] == [p.seed for p in captured]  # reproducible


def test_sleep_mode_wakes_only_what_is_needed(fake_vllm):
    tokenizer = SimpleNamespace(eos_token_id=FakeLLM.EOS)
    sampler = vllm_plugin.vllm_sampler(fake_policy(), tokenizer,
                                       plugin_options("sampler", "vllm", max_new_tokens=4, temperature=1.0, enable_sleep_mode=True))
    assert sampler.llm.kwargs["enable_sleep_mode"] is True
    calls = sampler.llm.calls
    assert calls == [("sleep", 1)]  # asleep until the first generate
    sampler.generate([[5]], 1)
    assert [c[0] for c in calls[1:]] == ["wake_up", "generate", "sleep"]
    assert calls[1] == ("wake_up", ("kv_cache", "weights"))
    del calls[:]
    sampler.load_weights(fake_policy())
    assert calls[0] == ("wake_up", ("weights",))  # the KV cache stays released
    sampler.generate([[5]], 1)
    assert calls[3] == ("wake_up", ("kv_cache",)) and calls[-1] == ("sleep", 1)


def test_out_of_process_engine_needs_insecure_serialization(fake_vllm, monkeypatch):
    monkeypatch.setenv(vllm_plugin.INPROC_ENV, "1")
    monkeypatch.delenv(vllm_plugin.INSECURE_ENV, raising=False)
    with pytest.raises(ValueError, match=vllm_plugin.INSECURE_ENV):
        vllm_plugin.vllm_sampler(fake_policy(), SimpleNamespace(eos_token_id=1),
                                 plugin_options("sampler", "vllm", max_new_tokens=4, temperature=1.0))


def test_sampled_logprobs_reads_flat_and_dict_layouts():
    flat = SimpleNamespace(start_indices=[0, 2], end_indices=[2, 3], token_ids=[5, 9, 6],
                           logprobs=[-0.1, -3.0, -0.2])  # the sampled token comes first
    assert vllm_plugin._sampled_logprobs(flat, [5, 6]) == [-0.1, -0.2]
    nested = [{9: SimpleNamespace(logprob=-3.0), 5: SimpleNamespace(logprob=-0.1)},
              {6: SimpleNamespace(logprob=-0.2)}]
    assert vllm_plugin._sampled_logprobs(nested, [5, 6]) == [-0.1, -0.2]
    assert vllm_plugin._sampled_logprobs(None, [5]) == []


def test_a_lora_policy_pushes_its_merged_weights_under_plain_names(fake_vllm, tmp_path):
    from r1kit.config.schema import LoraConfig, ModelConfig, TinyModelConfig
    from r1kit.models import lora
    from r1kit.models.loading import load_model, model_source

    model_cfg = ModelConfig(tiny=TinyModelConfig(hidden_size=64, num_layers=1, num_heads=2,
                                                 intermediate_size=64, max_position_embeddings=64))
    base_dir = model_source(model_cfg, tmp_path)
    model_cfg.lora = LoraConfig(rank=2)
    policy = load_model(base_dir, model_cfg)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.fill_(0.01)
    sampler = vllm_plugin.vllm_sampler(policy, SimpleNamespace(eos_token_id=1), plugin_options(
        "sampler", "vllm", max_new_tokens=4))
    pushed = {}
    sampler.llm.collective_rpc = lambda method, kwargs=None, **_: pushed.update(
        kwargs["weights_iterator"])
    sampler.load_weights(policy)
    expected = {n: t.clone() for n, t in lora.merged_weights(policy)}
    merged = lora.export(policy).state_dict()
    assert pushed.keys() == merged.keys() == expected.keys()  # what the engine's model names
    for name, tensor in pushed.items():
        torch.testing.assert_close(tensor, merged[name], msg=name)
