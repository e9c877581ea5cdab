"""``reward.judge.backend=vllm``: the judge in an in-process vLLM engine (a large judge on the
rank's GPU, far faster than HF ``generate``). Its own engine, separate from a ``vllm`` sampler's:
the judge's weights never change.

vLLM is imported when the backend is built, never when this plugin loads. The engine is
shielded from the trainer's process state the way the vLLM sampler's is (its RNG and
``torch.set_num_threads``).
"""

from __future__ import annotations

import os
import threading

from r1kit import hookimpl
from r1kit.rewards.judge.backends.base import conversation_ids
from r1kit.rewards.judge.backends.hf import weights_fingerprint
from r1kit.samplers.vllm import INPROC_ENV, _cpu_kv_cache_bytes, _isolated_process_state


class VLLMJudge:
    def __init__(self, options) -> None:
        os.environ.setdefault(INPROC_ENV, "0")  # before vllm is imported: it caches it
        import vllm
        from transformers import AutoConfig, AutoTokenizer
        from vllm.platforms import current_platform

        self._vllm = vllm
        self.max_new_tokens, self.temperature = options.max_new_tokens, options.temperature
        self.seed, self.batch_size = options.seed, options.batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(options.model)
        config = AutoConfig.from_pretrained(options.model)
        context = options.max_model_len or getattr(config, "max_position_embeddings", None)
        kv_bytes = options.kv_cache_memory_bytes
        if current_platform.is_cpu() and kv_bytes is None:
            kv_bytes = _cpu_kv_cache_bytes(config, options.gpu_memory_utilization, context,
                                           options.batch_size, "float32")
        kwargs = dict(model=options.model, tokenizer=options.model, seed=options.seed,
                      enforce_eager=True, max_model_len=context,
                      max_num_seqs=options.batch_size, generation_config="vllm",
                      gpu_memory_utilization=options.gpu_memory_utilization)
        if kv_bytes is not None:
            kwargs["kv_cache_memory_bytes"] = int(kv_bytes)
        with _isolated_process_state():
            self.llm = vllm.LLM(**kwargs)
        self.identity = (f"vllm:{weights_fingerprint(options.model)}:max_new_tokens="
                         f"{self.max_new_tokens}:temperature={self.temperature}:seed={self.seed}")
        self._lock = threading.Lock()  # LLM.generate is not reentrant

    def complete(self, conversations: list[list[dict]]) -> list[str]:
        prompts = [{"prompt_token_ids": conversation_ids(self.tokenizer, c)}
                   for c in conversations]
        params = self._vllm.SamplingParams(temperature=self.temperature,
                                           max_tokens=self.max_new_tokens, seed=self.seed)
        with self._lock, _isolated_process_state():
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [out.outputs[0].text for out in outputs]  # in the prompts' order

    def close(self) -> None:
        del self.llm


@hookimpl
def r1kit_register_judge_backends(register):
    register("vllm", VLLMJudge)
