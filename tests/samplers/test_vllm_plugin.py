"""The ``vllm`` sampler plugin without vllm: registration, lazy import, option checks."""

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from r1kit.config.schema import ConfigError
from r1kit.samplers import vllm as vllm_plugin


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
