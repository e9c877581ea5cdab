"""Sampling throughput of ``sampler=hf`` vs ``sampler=vllm`` on a locally built model, in one
process.

    python benchmarks/bench_sampler_throughput.py            # tiny, 16 prompts x 8 x 48 tokens
    python benchmarks/bench_sampler_throughput.py --model large --prompts 32 --tokens 128

Rows: ``hf`` (r1kit's HF sampler: its own decoding loop for Llama-family models),
``hf-generate`` (the same sampler through transformers' ``generate``: what "HF sampling" is in
other frameworks), ``vllm``.

Both samplers generate the same batch from the same weights; throughput counts the completion
tokens actually produced (the untrained tiny model practically never stops early). Each sampler
gets one untimed warm-up call, then ``--repeats`` timed calls (the median is reported). vLLM's
engine start-up and a weight sync are timed separately: they are paid once per run and once per
optimizer step respectively. Prints a table and, with ``--json``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from r1kit.api import plugin_options


def timed(fn, repeats: int):
    """Median wall seconds, median CPU seconds of this process (all its threads), last result."""
    times, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), statistics.median(cpu), result


#: Qwen2-architecture shapes (character vocabulary); head_dim >= 32 for vLLM's CPU kernels.
MODELS = {
    "tiny": dict(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512),  # 1.1M
    "medium": dict(hidden_size=256, num_layers=8, num_heads=8, intermediate_size=1024),  # 8.4M
    "large": dict(hidden_size=512, num_layers=8, num_heads=8, intermediate_size=2048),  # 33.6M
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="where the model is built (default: a temporary directory)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1kit.models.tiny import ensure_tiny_model
    from r1kit.samplers.hf import HFSampler

    tmp = None
    if args.model_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="r1kit-bench-")
        args.model_dir = Path(tmp.name) / args.model
    model_dir = ensure_tiny_model(args.model_dir, seed=0, max_position_embeddings=512,
                                  **MODELS[args.model])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    prompts = [tokenizer.encode(f"<think>{i} + {3 * i + 1} = ") for i in range(args.prompts)]
    options = dict(max_new_tokens=args.tokens, temperature=args.temperature, top_p=1.0)

    def measure(sampler, name):
        sampler.generate(prompts[:2], 2)  # warm-up
        seconds, cpu, generation = timed(lambda: sampler.generate(prompts, args.samples),
                                         args.repeats)
        tokens = sum(map(len, generation.completion_ids))
        row = {"sampler": name, "seconds": seconds, "cpu_seconds": cpu, "tokens": tokens,
               "tokens_per_s": tokens / seconds, "tokens_per_cpu_s": tokens / cpu}
        print(f"{name:<14} {seconds:8.3f} s  {tokens:6d} tokens  {tokens / seconds:10.1f} tok/s"
              f"  {tokens / cpu:10.1f} tok/cpu-s", flush=True)
        return row

    params = sum(p.numel() for p in policy.parameters())
    print(f"{args.model} ({params / 1e6:.1f}M parameters): {args.prompts} prompts x "
          f"{args.samples} samples x {args.tokens} tokens, torch threads "
          f"{torch.get_num_threads()}, median of {args.repeats}", flush=True)
    rows = [measure(HFSampler(policy, tokenizer, plugin_options("sampler", "hf", **options)), "hf"),
            measure(HFSampler(policy, tokenizer,
                              plugin_options("sampler", "hf", fast_decode=False, **options)), "hf-generate")]

    from r1kit.samplers.vllm import vllm_sampler

    start = time.perf_counter()
    vllm = vllm_sampler(policy, tokenizer, plugin_options("sampler", "vllm", **options))
    startup = time.perf_counter() - start
    start = time.perf_counter()
    vllm.generate(prompts[:1], 1)
    first_call = time.perf_counter() - start
    print(f"vllm start-up  {startup:8.3f} s  (first generate call {first_call:.3f} s)", flush=True)
    rows.append(measure(vllm, "vllm"))
    sync_seconds, _, _ = timed(lambda: vllm.load_weights(policy), args.repeats)
    print(f"vllm weight sync {sync_seconds * 1000:6.1f} ms", flush=True)
    rows.append(measure(HFSampler(policy, tokenizer,
                                  plugin_options("sampler", "hf", **options)), "hf (again)"))
    vllm.close()

    vllm_row = next(r for r in rows if r["sampler"] == "vllm")
    ratios = {}
    for base in ("hf", "hf-generate"):
        base_rows = [r for r in rows if r["sampler"] in (base, f"{base} (again)")]
        ratios[base] = vllm_row["tokens_per_s"] / statistics.mean(
            r["tokens_per_s"] for r in base_rows)
        print(f"vllm / {base} throughput: {ratios[base]:.2f}x (wall)", flush=True)
    # (vLLM's engine core runs in its own process, so this process's CPU time undercounts it:
    # compare wall times, on an otherwise idle machine)
    results = {"config": {k: str(v) for k, v in vars(args).items()}, "params": params,
               "rows": rows, "vllm_startup_s": startup, "vllm_first_call_s": first_call,
               "vllm_sync_s": sync_seconds, "ratio_vs_hf": ratios["hf"],
               "ratio_vs_hf_generate": ratios["hf-generate"]}
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return results


if __name__ == "__main__":  # the vLLM engine may spawn processes that re-import this file
    main()
