"""Sharded weights on CPU (torch's FSDP2 over gloo; Lightning's FSDP strategy needs GPUs): the hf
sampler generates while the weights are sharded, with ranks whose generations end at different
steps, and the export gathers the whole model for rank 0."""

import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from r1kit.api import plugin_options
from r1kit.config.schema import ModelConfig, TinyModelConfig
from r1kit.models.loading import model_source

TIMEOUT_S = 120


def _worker(rank: int, world: int, port: int, model_dir: str, out: dict) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1kit.models.export import full_state_dict
    from r1kit.samplers.hf import HFSampler, is_sharded

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        torch.manual_seed(rank)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        # rank 1 generates twice as many tokens: its peer runs out of steps first, as a rank
        # whose completions all hit EOS early would
        sampler = HFSampler(model, tokenizer, plugin_options(
            "sampler", "hf", max_new_tokens=4 + 4 * rank, temperature=1.0))
        prompts = [tokenizer("12+34" if rank == 0 else "5+6", add_special_tokens=False)[
            "input_ids"]]
        generation = sampler.generate(prompts, 2)
        weights = full_state_dict(model)
        out[rank] = {"sharded": is_sharded(model),
                     "lengths": [len(c) for c in generation.completion_ids],
                     "weights": {k: v.clone() for k, v in weights.items()}}
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_generation_while_sharded_and_full_state_export(tmp_path):
    from transformers import AutoModelForCausalLM

    model_dir = model_source(ModelConfig(tiny=TinyModelConfig(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=64,
        max_position_embeddings=64)), tmp_path)
    with mp.Manager() as manager:
        out = manager.dict()
        context = mp.spawn(_worker, args=(2, _free_port(), model_dir, out), nprocs=2,
                           join=False)
        deadline = time.monotonic() + TIMEOUT_S
        # join returns True once every process has ended (and raises if one failed)
        while not context.join(timeout=max(deadline - time.monotonic(), 0.1)):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail("sharded generation did not finish: ranks out of step")
        results = dict(out)
    assert results[0]["sharded"] and results[1]["sharded"]
    assert max(results[0]["lengths"]) <= 4 < max(results[1]["lengths"]) <= 8
    assert results[1]["weights"] == {}  # only rank 0 receives the gathered weights
    whole = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    gathered = results[0]["weights"]
    assert gathered.keys() == whole.keys()
    for name, tensor in whole.items():
        torch.testing.assert_close(gathered[name], tensor, rtol=0, atol=0, msg=name)
