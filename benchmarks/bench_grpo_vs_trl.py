"""r1kit vs TRL's ``GRPOTrainer``: seconds per GRPO step, peak memory, and time to accuracy.

    pip install -e '.[bench]' torch==2.13.0          # TRL, only for this benchmark
    python benchmarks/bench_grpo_vs_trl.py --quick   # tiny model, one run each (~2 min)
    python benchmarks/bench_grpo_vs_trl.py           # tiny + ~8.4M-parameter model, 3 runs each
    python benchmarks/bench_grpo_vs_trl.py --mode accuracy   # time to a held-out accuracy

Both frameworks train the same locally built Qwen2-architecture model (loaded from the same
directory, float32, CPU) on the same prompts (3-digit addition), with the same group size G,
prompts per step, max new tokens, temperature, β, μ, ε, learning rate (constant), AdamW betas,
gradient clipping, micro-batch size and reward: r1kit's ``accuracy`` + ``format`` (``--reward
r1``, called as TRL reward functions for TRL) or a cheap pure-Python one (``--reward digits``:
the fraction of digit characters), to separate the frameworks from the reward's cost. TRL is
held to the same settings: the same precision (``--set precision=fp32``, the default: float32
everywhere; ``--set precision=bf16``: bf16 autocast over float32 weights, r1kit's
``trainer.precision=bf16-mixed`` and TRL's ``bf16=True``), ``use_vllm=False``, no gradient
checkpointing, ``loss_type="grpo"``, logging and saving off, ``report_to=[]``; both run with
the same ``torch.set_num_threads`` (``--threads``, 1 by default: with more OpenMP threads than
idle cores a run can stall 30-50x; 0 keeps torch's default). Each framework keeps its own
defaults otherwise (r1kit: eager attention on CPU; TRL: the model's SDPA); ``trl-eager`` runs
TRL with eager attention too, to show what that choice alone is worth. Memory variants:
``trl-gc`` is TRL with gradient checkpointing, its own ``GRPOConfig`` default; ``r1kit-lean``
is r1kit with its memory options on (``LEAN_OVERRIDES``: the reference loaded per pass,
gradient checkpointing, SDPA, small head chunks and micro-batches).

A *GRPO step* is one rollout (prompts × G completions sampled and scored) followed by μ
optimizer updates: one r1kit training step, μ TRL ``global_step``s. Each framework runs in its
own subprocess (no shared state, its own peak RSS); a callback stamps the end of every GRPO step
and the time per step is ``(t[n2] - t[n1]) / (n2 - n1)``: the difference between two step
counts, so start-up (imports, model load, first steps' warm-up) is excluded. Wall time and the
process's CPU time are both reported (the CPU time is the steadier number on a shared machine).
Peak memory is the worker process's ``ru_maxrss`` (start-up included). Runs are repeated
(``--repeats``) and interleaved (r1kit, TRL, r1kit, ...); the median run is reported.

A randomly initialised model rarely emits EOS (1 token in ~104), so both frameworks generate
up to ``max_new_tokens`` almost always (the mean completion length is printed to show it); both
stop a completion at EOS and both stop the batch when every completion has stopped.

``--mode accuracy`` runs r1kit's SFT stage once (the embedded default's cold start: 300 worked
solutions), then GRPO with each framework from that checkpoint with the embedded default's RL
settings, measuring greedy accuracy on the same held-out problems every ``--eval-every`` steps
(the evaluation's time is excluded from the clock) until ``--target`` is reached or
``--max-steps`` have run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from r1kit.api import plugin_options

REPO = Path(__file__).resolve().parents[1]

#: Model shapes (Qwen2 architecture, ~104-token character vocabulary, tied embeddings).
MODELS = {
    "tiny": dict(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512,
                 max_position_embeddings=256),
    "medium": dict(hidden_size=256, num_layers=8, num_heads=8, intermediate_size=1024,
                   max_position_embeddings=256),
}
#: Real shapes (``benchmarks/real_shapes.py``): the real vocabulary and widths, few layers.
REAL_MODELS = {"qwen2.5-0.5b-2l": 2}

#: The GRPO work both frameworks do per step (``--set key=value`` changes it).
SPEED_WORK = dict(prompts=4, group_size=8, max_new_tokens=64, beta=0.04, iterations=1,
                  epsilon=0.2, lr=1e-5, micro_batch_size=16, temperature=1.0, seed=0,
                  precision="fp32")
#: ``--set precision=...``: fp32 everywhere, or bf16 autocast over fp32 weights (mixed precision,
#: as GRPO runs on GPUs): r1kit's ``trainer.precision=bf16-mixed``, TRL's ``bf16=True``.
PRECISIONS = {"fp32": ("32-true", False), "bf16": ("bf16-mixed", True)}
#: The embedded default's RL stage (conf/pipeline/embedded.yaml), for ``--mode accuracy``.
ACCURACY_WORK = dict(SPEED_WORK, prompts=16, max_new_tokens=48, lr=3e-5)
#: The embedded default's cold start (its ``cold_start`` stage).
SFT_OVERRIDES = ["pipeline=sft", "data.num_solutions=300", "data.batch_size=32",
                 "optim.lr=1e-3", "optim.warmup_steps=10", "eval.every=0", "eval.k=1",
                 "data.val_size=64", "sampler.max_new_tokens=48",
                 "trainer.enable_progress_bar=false"]


# ------------------------------------------------------------------------------ shared pieces
def digits_reward(completions, examples=None, options=None):
    """The cheap reward of ``--reward digits``: the fraction of characters that are digits."""
    return [sum(c.isdigit() for c in text) / max(len(text), 1) for text in completions]


def _stamp() -> tuple[float, float]:
    """(wall clock, CPU time of this process over all its threads)."""
    return time.perf_counter(), time.process_time()


class Clock:
    """Stamps the end of every GRPO step, and runs the held-out evaluation (whose time is taken
    off the clock) every ``eval_every`` steps; says when the target accuracy is reached."""

    def __init__(self, spec: dict, tokenizer):
        self.spec = spec
        self.stamps: list[tuple[float, float]] = []  # per step, evaluation time excluded
        self.curve: list[dict] = []
        self.off_wall = self.off_cpu = 0.0
        self.start: tuple[float, float] | None = None
        self.evaluate = _greedy_evaluator(spec, tokenizer) if spec.get("eval_every") else None

    def begin(self, model) -> None:
        self.start = _stamp()
        self._evaluate(model, 0)

    def step_end(self, model) -> bool:
        """Stamp a finished step; True when training should stop (target reached)."""
        wall, cpu = _stamp()
        self.stamps.append((wall - self.off_wall, cpu - self.off_cpu))
        step = len(self.stamps)
        if self.evaluate is not None and step % self.spec["eval_every"] == 0:
            return self._evaluate(model, step)
        return False

    def _evaluate(self, model, step: int) -> bool:
        if self.evaluate is None:
            return False
        before = _stamp()
        train_s = before[0] - self.off_wall - self.start[0]  # training time so far
        accuracy = self.evaluate(model)
        after = _stamp()
        self.off_wall += after[0] - before[0]
        self.off_cpu += after[1] - before[1]
        self.curve.append({"step": step, "train_s": train_s, "accuracy": accuracy})
        target = self.spec.get("target")
        return target is not None and accuracy >= target

    def result(self, extra: dict) -> dict:
        n1, n2 = self.spec["steps"]
        out = {"stamps": self.stamps, "curve": self.curve, "peak_rss_mib": _peak_rss_mib(),
               "load_avg": os.getloadavg(), **extra}
        if len(self.stamps) >= n2 > n1:
            wall = [w for w, _ in self.stamps]
            out["step_s"] = (wall[n2 - 1] - wall[n1 - 1]) / (n2 - n1)
            out["cpu_step_s"] = (self.stamps[n2 - 1][1] - self.stamps[n1 - 1][1]) / (n2 - n1)
        return out


def _greedy_evaluator(spec: dict, tokenizer):
    """Greedy accuracy on the first ``val_size`` held-out problems: one code path for both
    frameworks (r1kit's HF sampler and r1kit's accuracy reward)."""
    from r1kit.data.arithmetic import arithmetic_dataset
    from r1kit.rewards.accuracy import accuracy_reward
    from r1kit.samplers.hf import HFSampler

    rows = arithmetic_dataset("val", spec["work"]["seed"],
                              plugin_options("data", "arithmetic"))[: spec["val_size"]]
    prompt_ids = [tokenizer(r["prompt"], add_special_tokens=False)["input_ids"] for r in rows]

    def evaluate(model) -> float:
        sampler = HFSampler(model, tokenizer,
                            plugin_options("sampler", "hf", max_new_tokens=spec["work"]["max_new_tokens"], temperature=1.0))
        ids = sampler.generate(prompt_ids, 1, greedy=True).completion_ids
        texts = [t.replace(tokenizer.eos_token, "") for t in tokenizer.batch_decode(ids)]
        scores = accuracy_reward(texts, rows, plugin_options("reward", "accuracy"))
        return sum(scores) / len(scores)

    return evaluate


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ------------------------------------------------------------------------------- r1kit worker
def run_r1kit(spec: dict) -> dict:
    import lightning as L
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from r1kit import hookimpl
    from r1kit.plugin import manager as pluginmanager
    from r1kit.cli.startup import CONF_DIR, prepare
    from r1kit.config.validate import validate
    from r1kit.pipeline.runner import run_pipeline

    w, n2 = spec["work"], spec["steps"][1]
    lengths: list[float] = []
    clocks: list[Clock] = []

    class Timing(L.Callback):
        def on_train_start(self, trainer, module):
            clocks.append(Clock(spec, module.tokenizer))
            clocks[0].begin(module.policy)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if clocks[0].step_end(module.policy):
                trainer.should_stop = True

    class Plugin:
        @hookimpl
        def r1kit_configure_callbacks(self, cfg):
            return [Timing()]

        @hookimpl
        def r1kit_on_train_step_end(self, metrics, step):
            lengths.append(float(metrics["completion/length"]))

        @hookimpl
        def r1kit_register_rewards(self, register):
            register("digits", digits_reward)

    reward = "[digits]" if spec["reward"] == "digits" else "[accuracy,format]"
    overrides = [
        "pipeline=grpo", f"model.path={spec['model_dir']}", "data=arithmetic",
        f"data.batch_size={w['prompts']}", f"algo.group_size={w['group_size']}",
        f"sampler.max_new_tokens={w['max_new_tokens']}", f"sampler.temperature={w['temperature']}",
        f"algo.beta={w['beta']}", f"algo.iterations={w['iterations']}",
        f"algo.epsilon={w['epsilon']}", f"algo.micro_batch_size={w['micro_batch_size']}",
        f"optim.lr={w['lr']}", "optim.warmup_steps=0", "optim.max_grad_norm=1.0",
        f"reward={reward}", f"seed={w['seed']}", "logger=csv", "logger.samples_every=1000000",
        "checkpoint_every=1000000", f"trainer.max_steps={n2 * w['iterations']}",
        "trainer.enable_progress_bar=false", "eval.every=0", "eval.k=1", "data.val_size=1",
        f"run_dir={spec['run_dir']}", f"trainer.precision={PRECISIONS[w['precision']][0]}",
        *spec.get("r1kit_overrides", []),
    ]
    if spec.get("baseline"):
        # r1kit without its main CPU optimisations: transformers' generate, padded log-prob
        # forwards and SDPA attention (an ablation, ``--frameworks r1kit-base``)
        from r1kit.algo import logprobs

        logprobs.PACKABLE_ARCHITECTURES = set()
        overrides += ["sampler.fast_decode=false", "model.attn_implementation=sdpa"]
    if spec.get("full_logits"):
        # r1kit's log-prob passes as they were before the chunked output head: the whole
        # (rows, tokens, vocabulary) logits, their log-softmax and its exp for the entropy
        # (``--frameworks r1kit-full-logits``, the "before" of issue 16)
        from r1kit.algo import logprobs

        logprobs.HEAD_ARCHITECTURES = set()
    registry = pluginmanager.install(extra_plugins=(("bench_timing", Plugin()),))
    prepare()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=overrides)
    run_pipeline(validate(cfg, registry))
    return clocks[0].result({"completion_length": statistics.mean(lengths),
                             "torch_threads": torch.get_num_threads()})


# --------------------------------------------------------------------------------- TRL worker
def run_trl(spec: dict) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from r1kit.data.arithmetic import arithmetic_dataset
    from r1kit.rewards.accuracy import accuracy_reward
    from r1kit.rewards.format import format_reward

    w, n2 = spec["work"], spec["steps"][1]
    mu = w["iterations"]
    completions_per_step = w["prompts"] * w["group_size"]
    micro = min(w["micro_batch_size"], completions_per_step)
    if completions_per_step % micro:
        raise SystemExit(f"prompts*G={completions_per_step} must be a multiple of the "
                         f"micro-batch size {micro}")
    train = arithmetic_dataset("train", w["seed"], plugin_options("data", "arithmetic"))
    dataset = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in train])
    lengths: list[int] = []

    # r1kit's rewards, called the TRL way: (completions, **dataset columns) -> list[float]
    def accuracy(completions, prompts, answer, completion_ids, **kwargs):
        lengths.extend(map(len, completion_ids))
        return accuracy_reward(completions, [{"prompt": p, "answer": a}
                                             for p, a in zip(prompts, answer)], plugin_options("reward", "accuracy"))

    def format(completions, prompts, **kwargs):  # noqa: A001  (the reward's name in logs)
        return format_reward(completions, [{"prompt": p} for p in prompts])

    def digits(completions, completion_ids, **kwargs):
        lengths.extend(map(len, completion_ids))
        return digits_reward(completions)

    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    args = GRPOConfig(
        output_dir=spec["run_dir"], use_cpu=True, bf16=PRECISIONS[w["precision"]][1],
        fp16=False, use_vllm=False,
        gradient_checkpointing=bool(spec.get("trl_gradient_checkpointing")),
        num_generations=w["group_size"],
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=completions_per_step // micro,
        max_completion_length=w["max_new_tokens"], temperature=w["temperature"], top_p=1.0,
        top_k=0, beta=w["beta"], num_iterations=mu, epsilon=w["epsilon"],
        # GRPO's KL gradient as in DeepSeekMath/R1, as r1kit computes it: TRL 1.16 by default
        # multiplies the KL by the (differentiable) ratio, DeepSeek-V3.2's correction, which
        # changes the gradient whenever beta != 0 (measured: 0.55% at beta=0.04 on one batch)
        use_bias_correction_kl=False,
        loss_type="grpo", scale_rewards="group", learning_rate=w["lr"],
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, adam_beta1=0.9,
        adam_beta2=0.99, max_grad_norm=1.0, max_steps=n2 * mu, logging_steps=10 ** 6,
        save_strategy="no", report_to=[], disable_tqdm=True, log_completions=False,
        seed=w["seed"], dataloader_num_workers=0)
    clock = Clock(spec, tokenizer)

    class Timing(TrainerCallback):
        def on_train_begin(self, targs, state, control, model=None, **kwargs):
            clock.begin(model)

        def on_step_end(self, targs, state, control, model=None, **kwargs):
            # a GRPO step = μ optimizer steps on one rollout
            if state.global_step % mu == 0 and clock.step_end(model):
                control.should_training_stop = True

    rewards = [digits] if spec["reward"] == "digits" else [accuracy, format]
    trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[Timing()])
    if spec.get("trl_eager"):
        # TRL given r1kit's CPU attention choice (``--frameworks trl-eager``): eager attention
        # in the policy and the reference
        for m in (trainer.model, getattr(trainer, "ref_model", None)):
            if m is not None:
                m.set_attn_implementation("eager")
    trainer.train()
    return clock.result({"completion_length": statistics.mean(lengths),
                         "torch_threads": torch.get_num_threads(),
                         "trl_version": __import__("trl").__version__})


# ------------------------------------------------------------------------------------ driver
#: ``--frameworks r1kit-lean``: r1kit's memory options (README, "Memory"): the reference loaded
#: per pass, activations recomputed in the backward, SDPA attention (O(T) memory where eager's
#: scores are O(T²)), 64 tokens of head logits at a time, micro-batches of at most 1,024 tokens
LEAN_OVERRIDES = ["model.reference_offload=true", "model.gradient_checkpointing=true",
                  "model.attn_implementation=sdpa", "algo.logprob_chunk_tokens=64",
                  "algo.micro_batch_tokens=1024"]


def _spawn(framework: str, spec: dict) -> dict:
    if framework == "r1kit-base":
        framework, spec = "r1kit", {**spec, "baseline": True}
    if framework == "r1kit-sdpa":  # torch's SDPA in the training passes (O(T) memory on CPU)
        framework, spec = "r1kit", {**spec, "r1kit_overrides": ["model.attn_implementation=sdpa"]}
    if framework == "r1kit-full-logits":
        framework, spec = "r1kit", {**spec, "full_logits": True}
    if framework == "r1kit-lean":  # r1kit's memory options (README, "Memory"), all on
        framework, spec = "r1kit", {**spec, "r1kit_overrides": LEAN_OVERRIDES}
    if framework == "trl-gc":  # TRL at its own default: GRPOConfig's gradient checkpointing
        framework, spec = "trl", {**spec, "trl_gradient_checkpointing": True}
    if framework == "trl-eager":
        framework, spec = "trl", {**spec, "trl_eager": True}
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        cmd = [sys.executable, __file__, "--worker", framework, "--spec", json.dumps(spec),
               "--out", out.name]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled",
               "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
            raise SystemExit(f"{framework} worker failed (exit {proc.returncode})")
        return json.loads(Path(out.name).read_text())


def _build_model(work_dir: Path, name: str) -> Path:
    from r1kit.models.tiny import ensure_tiny_model

    if name in REAL_MODELS:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from real_shapes import build_qwen25_05b

        return build_qwen25_05b(work_dir / f"model-{name}", REAL_MODELS[name])
    return ensure_tiny_model(work_dir / f"model-{name}", seed=0, **MODELS[name])


def _param_count(model_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        return sum(f.get_tensor(k).numel() for k in f.keys())


def _spec(args, model_dir, work, framework, work_dir, **extra) -> dict:
    return {"model_dir": str(model_dir), "work": work, "steps": args.steps,
            "threads": args.threads, "reward": args.reward,
            "run_dir": str(work_dir / f"run-{framework}-{time.time_ns()}"), **extra}


def speed(args, work_dir: Path) -> list[dict]:
    rows = []
    for name in args.models:
        model_dir = _build_model(work_dir, name)
        work = {**SPEED_WORK, **args.work}
        runs: dict[str, list[dict]] = {f: [] for f in args.frameworks}
        for repeat in range(args.repeats):
            for framework in args.frameworks:
                print(f"[{name}] {framework} (run {repeat + 1}/{args.repeats}): "
                      f"{args.steps[1]} GRPO steps ...", flush=True)
                res = _spawn(framework, _spec(args, model_dir, work, framework, work_dir))
                runs[framework].append(res)
                print(f"[{name}] {framework}: {res['step_s']:.3f} s/step (CPU "
                      f"{res['cpu_step_s']:.3f}), completion length "
                      f"{res['completion_length']:.1f}, peak RSS {res['peak_rss_mib']:.0f} MiB, "
                      f"load {res['load_avg'][0]:.1f}", flush=True)
        for framework, results in runs.items():
            median = sorted(results, key=lambda r: r["step_s"])[len(results) // 2]
            rows.append({"model": name, "params": _param_count(model_dir),
                         "framework": framework, "work": work, "reward": args.reward,
                         "threads": args.threads, "all_step_s": [r["step_s"] for r in results],
                         "all_cpu_step_s": [r["cpu_step_s"] for r in results], **median})
    return rows


def print_speed_table(rows: list[dict]) -> None:
    print("\n| model | params | framework | s/GRPO step (wall) | r1kit/TRL | CPU s/step | "
          "r1kit/TRL (CPU) | mean completion tokens | peak RSS MiB | every run (wall) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        trl = next((r for r in rows if r["model"] == row["model"] and r["framework"] == "trl"),
                   None)
        ratio = f"{row['step_s'] / trl['step_s']:.2f}" if trl else "-"
        cpu_ratio = f"{row['cpu_step_s'] / trl['cpu_step_s']:.2f}" if trl else "-"
        runs = ", ".join(f"{x:.3f}" for x in row["all_step_s"])
        print(f"| {row['model']} | {row['params'] / 1e6:.2f}M | {row['framework']} | "
              f"{row['step_s']:.3f} | {ratio} | {row['cpu_step_s']:.3f} | {cpu_ratio} | "
              f"{row['completion_length']:.1f} | {row['peak_rss_mib']:.0f} | {runs} |")


def time_to_accuracy(args, work_dir: Path) -> list[dict]:
    # the embedded default's tiny model (built by the SFT stage), or a benchmark shape
    name = args.models[0]
    sft_dir = work_dir / ("sft" if name == "tiny" else f"sft-{name}")
    model_dir = sft_dir / "sft" / "model"
    if not (sft_dir / "sft" / "manifest.json").exists():
        print(f"SFT cold start ({args.sft_steps} steps) -> {model_dir} ...", flush=True)
        base = [] if name == "tiny" else [f"model.path={_build_model(work_dir, name)}"]
        cmd = [sys.executable, "-m", "r1kit", *SFT_OVERRIDES, *base,
               f"trainer.max_steps={args.sft_steps}", f"run_dir={sft_dir}"]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-6000:])
            raise SystemExit("SFT stage failed")
    work = {**ACCURACY_WORK, **args.work}
    rows = []
    for framework in args.frameworks:
        print(f"[accuracy] {framework}: GRPO until greedy accuracy >= {args.target} "
              f"(at most {args.max_steps} steps) ...", flush=True)
        spec = _spec(args, model_dir, work, framework, work_dir, eval_every=args.eval_every,
                     val_size=args.val_size, target=args.target)
        spec["steps"] = [1, args.max_steps]
        res = _spawn(framework, spec)
        reached = next((c for c in res["curve"] if c["accuracy"] >= args.target), None)
        rows.append({"framework": framework, "work": work, "target": args.target,
                     "reached": reached, **res})
        print(f"[accuracy] {framework}: start {res['curve'][0]['accuracy']:.3f}, "
              + (f"reached {reached['accuracy']:.3f} at step {reached['step']} after "
                 f"{reached['train_s']:.1f} s of training" if reached else
                 f"not reached in {len(res['stamps'])} steps (best "
                 f"{max(c['accuracy'] for c in res['curve']):.3f})"), flush=True)
    print("\n| framework | start accuracy | target | steps to target | seconds to target "
          "(training, eval excluded) | s/step | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        reached, stamps = row["reached"], row["stamps"]
        per_step = (stamps[-1][0] - stamps[0][0]) / max(len(stamps) - 1, 1)
        steps = reached["step"] if reached else "-"
        seconds = f"{reached['train_s']:.1f}" if reached else "-"
        print(f"| {row['framework']} | {row['curve'][0]['accuracy']:.3f} | {row['target']} | "
              f"{steps} | {seconds} | {per_step:.3f} | {row['peak_rss_mib']:.0f} |")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, one run, few steps")
    parser.add_argument("--mode", choices=("speed", "accuracy"), default="speed")
    parser.add_argument("--models", default=None,
                        help="comma list of " + ",".join([*MODELS, *REAL_MODELS]) +
                             " (accuracy mode: the first "
                             "one; tiny is the embedded default's model)")
    parser.add_argument("--frameworks", default="r1kit,trl",
                        help="comma list of r1kit, trl, trl-eager (TRL with eager attention, "
                             "r1kit's CPU default), r1kit-base (r1kit without its fast "
                             "decoding loop and packed log-prob forwards: an ablation), "
                             "r1kit-full-logits (r1kit without its chunked output head), "
                             "r1kit-sdpa (r1kit with SDPA attention, its GPU default, on CPU)")
    parser.add_argument("--reward", choices=("r1", "digits"), default="r1",
                        help="r1: r1kit's accuracy+format; digits: a cheap Python reward")
    parser.add_argument("--steps", default=None,
                        help="n1,n2: time per step = (t[n2]-t[n1])/(n2-n1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"change the per-step work (keys: {', '.join(SPEED_WORK)})")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads in both workers (0: torch's default; on a "
                             "shared machine 2+ OpenMP threads can stall 30-50x, so 1 by default)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per framework, interleaved; the median is reported")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="models, SFT checkpoint and run directories (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--target", type=float, default=0.5, help="accuracy mode: the target")
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--val-size", type=int, default=64)
    parser.add_argument("--sft-steps", type=int, default=300)
    parser.add_argument("--worker", choices=("r1kit", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        spec = json.loads(args.spec)
        if spec.get("threads"):
            import torch

            torch.set_num_threads(spec["threads"])
        result = (run_r1kit if args.worker == "r1kit" else run_trl)(spec)
        Path(args.out).write_text(json.dumps(result))
        return

    default_models = "tiny" if args.quick or args.mode == "accuracy" else "tiny,medium"
    args.models = (args.models or default_models).split(",")
    args.frameworks = args.frameworks.split(",")
    args.steps = [int(s) for s in (args.steps or ("2,6" if args.quick else "3,10")).split(",")]
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.work = {}
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in SPEED_WORK:
            raise SystemExit(f"--set: unknown key {key!r}")
        if key == "precision" and value not in PRECISIONS:
            raise SystemExit(f"--set precision: one of {', '.join(PRECISIONS)}")
        args.work[key] = type(SPEED_WORK[key])(value)
    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="r1kit-bench-trl-")
        args.work_dir = Path(tmp.name)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; threads "
          f"{args.threads or 'default'}; reward {args.reward}", flush=True)
    if args.mode == "speed":
        rows = speed(args, args.work_dir)
        print_speed_table(rows)
    else:
        rows = time_to_accuracy(args, args.work_dir)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
