"""``sampler=vllm``: a colocated vLLM engine that samples while the trainer trains.

The engine is built from the directory the trainer's policy was loaded from and lives in the
trainer's own process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless the environment says
otherwise), so ``sync_weights`` copies the trainer's tensors straight into the engine's model
(``LLM.collective_rpc("reload_weights", ...)``: the worker's in-place, layer-by-layer reload of
checkpoint-format tensors): no checkpoint is written, no bytes cross a process boundary. With
``VLLM_ENABLE_V1_MULTIPROCESSING=1`` the engine runs in child processes and every sync instead
sends the state dict, serialized in memory, to a function run in the worker (vLLM then needs
``VLLM_ALLOW_INSECURE_SERIALIZATION=1`` to accept the function).

An in-process engine touches process-wide state, which the sampler shields the trainer from:
building it reseeds torch's global RNG and (CPU backend) replaces ``torch.set_num_threads`` with a
no-op; both are restored, and ``generate`` runs under a forked RNG with its own per-request seeds.

``vllm`` is an optional extra: it is imported only when a ``vllm`` sampler is built, never when
this plugin module is loaded.

The engine reports each sampled token's log-probability (``Generation.logprobs``); by default
those are vLLM's *processed* log-probs (after temperature and top-p), i.e. the distribution that
was really sampled, which the trainer compares with its own (``r1kit.algo.mismatch``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
from dataclasses import dataclass
from typing import Optional

import torch

from r1kit import hookimpl
from r1kit.algo.correction import CORRECTIONS
from r1kit.models import lora
from r1kit.config.schema import _check
from r1kit.samplers.base import Generation, SamplerCapabilities

log = logging.getLogger(__name__)

#: ``importance_correction`` values (``r1kit.algo.correction``): the trainer reads the sampler's
#: capabilities to apply them.
IMPORTANCE_CORRECTIONS = tuple(CORRECTIONS)
LOGPROBS_MODES = ("processed_logprobs", "raw_logprobs")
#: Environment variable that keeps vLLM's engine core in this process (needed by sync_weights).
INPROC_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"
#: Lets vLLM pickle callables to an out-of-process engine (only needed when INPROC_ENV=1).
INSECURE_ENV = "VLLM_ALLOW_INSECURE_SERIALIZATION"


@dataclass
class VLLMSamplerOptions:
    #: Share of memory the engine may use. On GPU it is vLLM's ``gpu_memory_utilization``; on
    #: CPU it becomes the KV-cache size: this share of the currently available RAM (capped at
    #: what a full batch of max-length sequences needs), unless ``kv_cache_memory_bytes`` or
    #: ``VLLM_CPU_KVCACHE_SPACE`` (GiB) says otherwise.
    gpu_memory_utilization: float = 0.3
    #: Explicit KV-cache size in bytes (overrides the share, on GPU and CPU).
    kv_cache_memory_bytes: Optional[int] = None
    #: Push the trainer's weights into the engine every k-th ``sync_weights`` call (one call
    #: per optimizer step): k > 1 samples from a policy up to k - 1 steps stale.
    sync_every: int = 1
    #: Between ``generate`` calls, offload the engine's weights and drop its KV cache (vLLM sleep
    #: level 1) so training gets the GPU memory back. GPU builds only; ignored on CPU.
    enable_sleep_mode: bool = False
    #: Correct the train/inference mismatch in the loss (applied by the trainer; ρ = π_old /
    #: π_sampler per token): none; tis (weight min(ρ, importance_cap)); token_mask (drop tokens
    #: with ρ outside [importance_floor, importance_cap]); icepop (ρ inside that band, 0
    #: outside); seq_tis (min(Π_t ρ_t, cap) per sequence); seq_mask (drop sequences whose
    #: geometric-mean ρ is outside the band). See r1kit.algo.correction.
    importance_correction: str = "none"
    importance_cap: float = 2.0
    importance_floor: float = 0.5
    #: Which log-probs the engine reports: processed_logprobs (after temperature and top-p: the
    #: distribution actually sampled) or raw_logprobs (the model's, temperature 1).
    logprobs_mode: str = "processed_logprobs"
    #: Context length of the engine; null: the model's max_position_embeddings.
    max_model_len: Optional[int] = None
    #: Engine dtype; auto: the policy's own (vLLM's "auto" would run a float32 checkpoint in
    #: half precision, far from what the trainer computes).
    dtype: str = "auto"
    #: Seeds the per-request sampling seeds (reproducible, independent of batch composition and of
    #: the trainer's RNG, which the engine never touches).
    seed: int = 0
    #: Eager PyTorch instead of torch.compile/CUDA graphs: much faster start-up.
    enforce_eager: bool = True

    def __post_init__(self) -> None:
        _check(0 < self.gpu_memory_utilization <= 1, "sampler.gpu_memory_utilization",
               f"must be in (0, 1], got {self.gpu_memory_utilization}")
        _check(self.kv_cache_memory_bytes is None or self.kv_cache_memory_bytes > 0,
               "sampler.kv_cache_memory_bytes", "must be > 0 (or null)")
        _check(self.sync_every >= 1, "sampler.sync_every", f"must be >= 1, got {self.sync_every}")
        _check(self.importance_correction in IMPORTANCE_CORRECTIONS,
               "sampler.importance_correction",
               f"must be one of {', '.join(IMPORTANCE_CORRECTIONS)}, "
               f"got {self.importance_correction!r}")
        _check(self.importance_cap > 0, "sampler.importance_cap",
               f"must be > 0, got {self.importance_cap}")
        _check(self.importance_floor > 0, "sampler.importance_floor",
               f"must be > 0, got {self.importance_floor}")
        # only the masking corrections use a band; TIS with a cap below 0.5 stays valid
        _check(self.importance_correction not in ("token_mask", "icepop", "seq_mask")
               or self.importance_floor < self.importance_cap, "sampler.importance_floor",
               f"must be < importance_cap for {self.importance_correction}, got "
               f"{self.importance_floor} >= {self.importance_cap}")
        _check(self.logprobs_mode in LOGPROBS_MODES, "sampler.logprobs_mode",
               f"must be one of {', '.join(LOGPROBS_MODES)}, got {self.logprobs_mode!r}")
        _check(self.max_model_len is None or self.max_model_len >= 2, "sampler.max_model_len",
               "must be >= 2 (or null)")


def _unwrap(model):
    """The HF model under DDP/FSDP-style ``.module`` and ``torch.compile`` ``._orig_mod``."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None or inner is model:
            return model
        model = inner


def model_path(model) -> str:
    """The directory (or hub id) the policy was loaded from."""
    model = _unwrap(model)
    path = getattr(model, "name_or_path", None) or getattr(
        getattr(model, "config", None), "_name_or_path", None)
    if not path:
        raise ValueError("sampler=vllm builds its engine from the policy's checkpoint, but the "
                         "model has no name_or_path; load it with from_pretrained(path)")
    return str(path)


def _reload_serialized(worker, blob: bytes) -> None:
    """Runs in an out-of-process engine's worker (module level: pickled by reference)."""
    weights = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    worker.reload_weights(weights_iterator=list(weights.items()), is_checkpoint_format=True)


def _policy_dtype(model) -> str:
    param = next(iter(_unwrap(model).parameters()), None)
    return "auto" if param is None else str(param.dtype).removeprefix("torch.")


@contextlib.contextmanager
def _isolated_process_state():
    """Shield the trainer from what an in-process engine does to global state.

    Building the engine reseeds torch's global RNG (and vLLM's CPU sampler draws from it), and
    vLLM's CPU worker replaces ``torch.set_num_threads`` with a no-op for the whole process.
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    set_num_threads, num_threads = torch.set_num_threads, torch.get_num_threads()
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            torch.set_num_threads = set_num_threads
            if torch.get_num_threads() != num_threads:
                torch.set_num_threads(num_threads)


def _cpu_kv_cache_bytes(config, share: float, max_model_len: int, max_num_seqs: int,
                        dtype: str) -> int:
    """``share`` of the available RAM, capped at what ``max_num_seqs`` full sequences need."""
    import psutil

    budget = int(share * psutil.virtual_memory().available)
    try:
        text = getattr(config, "text_config", None) or config
        heads = text.num_attention_heads
        kv_heads = getattr(text, "num_key_value_heads", None) or heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        torch_dtype = getattr(torch, dtype, None)
        itemsize = torch_dtype.itemsize if isinstance(torch_dtype, torch.dtype) else 4
        per_token = 2 * text.num_hidden_layers * kv_heads * head_dim * itemsize
    except (AttributeError, TypeError):
        return budget
    needed = per_token * max_model_len * max_num_seqs
    return max(min(budget, needed), per_token * max_model_len)


def _sampled_logprobs(logprobs, tokens: list[int]) -> list[float]:
    """Each sampled token's log-prob from vLLM's per-position logprobs (``logprobs=0``)."""
    if logprobs is None:
        return []
    starts = getattr(logprobs, "start_indices", None)
    if starts is not None:  # FlatLogprobs: the sampled token comes first at every position
        return [logprobs.logprobs[i] for i in starts]
    return [step[token].logprob for step, token in zip(logprobs, tokens)]


class VLLMSampler:
    """``options``: the typed ``sampler`` node (``VLLMSamplerOptions`` with ``SamplerCommon``'s
    fields); ``engine_kwargs`` go to ``vllm.LLM`` as they are (tests, embedding code)."""

    def __init__(self, model, tokenizer, options, **engine_kwargs):
        self.tokenizer = tokenizer
        self.max_new_tokens, self.temperature = options.max_new_tokens, options.temperature
        self.top_p = options.top_p
        self.sync_every = options.sync_every
        self.capabilities = SamplerCapabilities(
            importance_correction=options.importance_correction,
            importance_cap=options.importance_cap,
            importance_floor=options.importance_floor)
        self.logprobs_mode = logprobs_mode = options.logprobs_mode
        dtype, max_model_len = options.dtype, options.max_model_len
        kv_cache_memory_bytes = options.kv_cache_memory_bytes
        gpu_memory_utilization = options.gpu_memory_utilization
        enable_sleep_mode = options.enable_sleep_mode
        self.eos_token_id = tokenizer.eos_token_id
        # Each training rank runs its own engine on its own GPU, sampling its own prompts: pin
        # the engine to the rank's device (the Trainer has not set it yet when samplers are
        # built) and give every rank different sampling noise.
        rank = int(os.environ.get("RANK", "0") or 0)
        local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
        if torch.cuda.is_available() and torch.cuda.device_count() > local_rank:
            torch.cuda.set_device(local_rank)
        seed = options.seed + rank
        self._seeds = random.Random(seed)
        self._sync_calls = 0
        self.weight_syncs = 0  # how many times weights were actually pushed

        # before vllm is imported: its environment is read lazily but cached once configured
        os.environ.setdefault(INPROC_ENV, "0")
        if os.environ[INPROC_ENV] != "0" and os.environ.get(INSECURE_ENV) != "1":
            raise ValueError(
                f"sampler=vllm with {INPROC_ENV}={os.environ[INPROC_ENV]} runs the engine in "
                f"another process, where sync_weights must send it a function: also set "
                f"{INSECURE_ENV}=1, or unset {INPROC_ENV} to keep the engine in-process")
        import vllm
        from vllm.platforms import current_platform

        self._vllm = vllm
        self.on_cpu = current_platform.is_cpu()
        self.sleep_mode = enable_sleep_mode and not self.on_cpu
        if enable_sleep_mode and self.on_cpu:
            log.info("sampler.enable_sleep_mode: vLLM's CPU backend has no sleep mode; ignored")

        path = model_path(model)
        hf_config = _unwrap(model).config
        if dtype == "auto":
            dtype = _policy_dtype(model)
        limit = getattr(hf_config, "max_position_embeddings", None)
        if max_model_len is None and limit is None:
            raise ValueError("set sampler.max_model_len: the model config has no "
                             "max_position_embeddings")
        context = max_model_len or limit
        max_num_seqs = engine_kwargs.setdefault("max_num_seqs", 256)
        if self.on_cpu and kv_cache_memory_bytes is None:
            kv_cache_memory_bytes = _cpu_kv_cache_bytes(
                hf_config, gpu_memory_utilization, context, max_num_seqs, dtype)
        kwargs = dict(
            # prompts arrive as token ids and completions leave as ids (detokenize=False); the
            # tokenizer is still loaded (vLLM 0.32's start-up warns loudly without one)
            model=path, tokenizer=path,
            generation_config="vllm",  # no sampling defaults or extra EOS ids from the checkpoint
            dtype=dtype, seed=seed, enforce_eager=options.enforce_eager, max_model_len=context,
            gpu_memory_utilization=gpu_memory_utilization, logprobs_mode=logprobs_mode,
        )
        if kv_cache_memory_bytes is not None:
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_memory_bytes)
        if self.sleep_mode:
            kwargs["enable_sleep_mode"] = True
        kwargs.update(engine_kwargs)
        with _isolated_process_state():
            self.llm = vllm.LLM(**kwargs)
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.in_process = type(self.llm.llm_engine.engine_core).__name__ == "InprocClient"
        if not self.in_process:
            log.warning("vLLM's engine runs in another process (%s=1): every weight sync "
                        "serializes the whole state dict to it", INPROC_ENV)
        self._asleep: set[str] = set()  # what the engine has released ("weights", "kv_cache")
        self._sleep()

    # -- sleep mode (GPU only): the engine sleeps whenever it is not generating ----------------

    def _sleep(self) -> None:
        if self.sleep_mode and not self._asleep:
            self.llm.sleep(level=1)  # weights offloaded to host memory, KV cache dropped
            self._asleep = {"weights", "kv_cache"}

    def _wake(self, tags: Optional[tuple] = None) -> None:
        """Bring back ``tags`` (all when None); a weight sync needs only the weights."""
        wanted = sorted(self._asleep if tags is None else self._asleep & set(tags))
        if wanted:
            self.llm.wake_up(tags=wanted)
            self._asleep -= set(wanted)

    # -- Sampler contract ----------------------------------------------------------------------

    def _budget(self, prompt_len: int) -> int:
        # never generate past the engine's context (like the HF sampler's budget)
        return max(1, min(self.max_new_tokens, self.max_model_len - prompt_len))

    def generate(self, prompt_ids: list[list[int]], num_samples: int, *,
                 greedy: bool = False) -> Generation:
        if not prompt_ids or num_samples < 1:
            return Generation(completion_ids=[], truncated=[], logprobs=[])
        SamplingParams = self._vllm.SamplingParams
        stop = [] if self.eos_token_id is None else [self.eos_token_id]
        # greedy: one completion per prompt (vLLM refuses n > 1), copied num_samples times
        n = 1 if greedy else num_samples
        params = []
        for ids in prompt_ids:
            sampling = (dict(temperature=0.0) if greedy else dict(
                temperature=self.temperature, top_p=self.top_p,
                # children of a request get seed + index: leave room for n of them
                seed=self._seeds.randrange(2 ** 31 - n)))
            params.append(SamplingParams(
                n=n, max_tokens=self._budget(len(ids)), stop_token_ids=stop,
                logprobs=0, flat_logprobs=True, detokenize=False, **sampling))
        prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_ids]
        self._wake()
        try:
            with _isolated_process_state():
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
        finally:
            self._sleep()
        completions, truncated, logprobs = [], [], []
        for out in outputs:  # LLM.generate keeps the prompts' order
            samples = sorted(out.outputs, key=lambda s: s.index)
            for sample in samples * (num_samples // n):
                tokens = list(sample.token_ids)
                completions.append(tokens)
                truncated.append(sample.finish_reason == "length")
                logprobs.append(_sampled_logprobs(sample.logprobs, tokens))
        return Generation(completion_ids=completions, truncated=truncated, logprobs=logprobs)

    def request_logprobs(self, wanted: bool) -> None:
        """The engine's log-probs come with every generation (the trainer compares them with
        its own); they are never the policy's exact ones, so there is nothing to switch."""

    def sync_weights(self, model) -> None:
        """Push ``model``'s weights into the engine on every ``sync_every``-th call."""
        self._sync_calls += 1
        if self._sync_calls % self.sync_every:
            return
        self.load_weights(model)

    @torch.no_grad()
    def load_weights(self, model) -> None:
        """Copy ``model``'s current weights into the engine now (no disk round trip)."""
        model = _unwrap(model)
        # a LoRA policy: the base weights with the adapters' current delta merged in
        weights = list(lora.merged_weights(model)) if lora.is_lora(model) else [
            (name, tensor.detach()) for name, tensor in model.state_dict().items()]
        self._wake(tags=("weights",))
        if self.in_process:
            # the worker's in-place reload: loads checkpoint-format tensors layer by layer,
            # then re-runs the kernel-format processing (e.g. the CPU backend's repacked linear
            # weights, which a plain model.load_weights cannot write into)
            self.llm.collective_rpc("reload_weights", kwargs={
                "weights_iterator": weights, "is_checkpoint_format": True})
        else:
            # vLLM's IPC encoding turns tensors in RPC arguments into plain lists: ship the
            # state dict as torch.save bytes (in memory) and rebuild it in the worker
            buffer = io.BytesIO()
            torch.save({name: t.cpu().contiguous() for name, t in weights}, buffer)
            self.llm.collective_rpc(_reload_serialized, args=(buffer.getvalue(),))
        # cached prefixes were computed by the old weights
        self.llm.reset_prefix_cache()
        self.weight_syncs += 1

    def close(self) -> None:
        """Shut the engine down and free its memory (the sampler is unusable afterwards)."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del self.llm


def vllm_sampler(model, tokenizer, options) -> VLLMSampler:
    return VLLMSampler(model, tokenizer, options)


@hookimpl
def r1kit_register_samplers(register):
    register("vllm", vllm_sampler, schema=VLLMSamplerOptions)
