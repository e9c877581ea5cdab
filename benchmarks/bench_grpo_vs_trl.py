"""r1kit vs TRL's ``GRPOTrainer``: seconds per GRPO step and peak memory on the same work.

    pip install -e '.[bench]' torch==2.13.0          # TRL, only for this benchmark
    python benchmarks/bench_grpo_vs_trl.py --quick   # tiny model, a few steps (~2 min on 2 cores)
    python benchmarks/bench_grpo_vs_trl.py           # tiny + ~8.4M-parameter model
    python benchmarks/bench_grpo_vs_trl.py --mode accuracy   # time to a held-out accuracy

Both frameworks train the same locally built Qwen2-architecture model (loaded from the same
directory, float32, CPU), on the same prompts (3-digit addition), with the same group size G,
prompts per step, max new tokens, β, μ, ε, learning rate, AdamW betas, gradient clipping,
micro-batch size and reward (r1kit's ``accuracy`` + ``format``, called as TRL reward
functions for TRL). TRL is forced onto the same CPU settings: fp32 (no bf16), ``use_vllm=False``,
no gradient checkpointing, constant learning rate, logging/saving off, ``report_to=[]``.

A *GRPO step* is one rollout (prompts × G completions sampled and scored) followed by μ
optimizer updates: one r1kit training step, μ TRL ``global_step``s. Each framework runs in its
own subprocess (no shared state, separate peak RSS); a callback timestamps the end of every
GRPO step, and the reported time per step is ``(t[n2] - t[n1]) / (n2 - n1)`` — the difference
between two step counts, so start-up (imports, model load, first-step warm-up) is excluded.
Peak memory is the worker process's ``ru_maxrss`` (whole process, start-up included).

A randomly initialised tiny model almost never emits EOS, so in ``speed`` mode both frameworks
generate the full ``max_new_tokens`` for every completion (the reported mean completion length
shows it) — the same amount of generation work for both.

``--mode accuracy`` first runs r1kit's SFT stage (a cold start on worked solutions), then
trains both frameworks with GRPO from that checkpoint and records the wall time (start-up
excluded) at which greedy accuracy on held-out problems first reaches ``--target``.
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

REPO = Path(__file__).resolve().parents[1]

#: Model shapes (Qwen2 architecture, character tokenizer of ~104 tokens, tied embeddings).
MODELS = {
    "tiny": dict(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512,
                 max_position_embeddings=256),
    "medium": dict(hidden_size=256, num_layers=8, num_heads=8, intermediate_size=1024,
                   max_position_embeddings=256),
}

#: The GRPO work both frameworks do per step.
DEFAULT_WORK = dict(prompts=4, group_size=8, max_new_tokens=64, beta=0.04, iterations=1,
                    epsilon=0.2, lr=1e-5, micro_batch_size=16, temperature=1.0, seed=0)


# ------------------------------------------------------------------------------ shared pieces
def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _train_rows(seed: int):
    from r1kit.data.arithmetic import arithmetic_dataset

    return arithmetic_dataset("train", seed), arithmetic_dataset("val", seed)


def _stamp() -> tuple[float, float]:
    """(wall clock, CPU time of this process over all its threads)."""
    return time.perf_counter(), time.process_time()


def _result(stamps: list[tuple[float, float]], n1: int, n2: int, extra: dict) -> dict:
    """Seconds per GRPO step between the ends of steps n1 and n2 (1-based), start-up excluded."""
    if len(stamps) < n2:
        raise RuntimeError(f"only {len(stamps)} steps were timed, expected {n2}")
    wall = [w for w, _ in stamps]
    durations = [b - a for a, b in zip(wall, wall[1:])]
    return {"stamps": stamps,
            "step_s": (wall[n2 - 1] - wall[n1 - 1]) / (n2 - n1),
            "cpu_step_s": (stamps[n2 - 1][1] - stamps[n1 - 1][1]) / (n2 - n1),
            "step_durations": durations,
            "median_step_s": statistics.median(durations[n1 - 1:n2 - 1]),
            "peak_rss_mib": _peak_rss_mib(), "load_avg": os.getloadavg(), **extra}


# ------------------------------------------------------------------------------- r1kit worker
def run_r1kit(spec: dict) -> dict:
    import lightning as L
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from r1kit import hookimpl, pluginmanager
    from r1kit.cli import CONF_DIR, prepare
    from r1kit.config.validate import validate
    from r1kit.pipeline.runner import run_pipeline

    w, n2 = spec["work"], spec["steps"][1]
    stamps: list[tuple[float, float]] = []
    lengths: list[float] = []
    accuracy_curve: list[tuple[float, int, float]] = []

    class Stamp(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            stamps.append(_stamp())

    class Plugin:
        @hookimpl
        def r1kit_configure_callbacks(self, cfg):
            return [Stamp()]

        @hookimpl
        def r1kit_on_train_step_end(self, metrics, step):
            lengths.append(float(metrics["completion/length"]))
            if "val/accuracy" in metrics:
                accuracy_curve.append((time.perf_counter(), step, metrics["val/accuracy"]))

    overrides = [
        "pipeline=grpo", f"model.path={spec['model_dir']}", "data=arithmetic",
        f"data.batch_size={w['prompts']}", f"algo.group_size={w['group_size']}",
        f"sampler.max_new_tokens={w['max_new_tokens']}", f"sampler.temperature={w['temperature']}",
        f"algo.beta={w['beta']}", f"algo.iterations={w['iterations']}",
        f"algo.epsilon={w['epsilon']}", f"algo.micro_batch_size={w['micro_batch_size']}",
        f"optim.lr={w['lr']}", "optim.warmup_steps=0", "optim.max_grad_norm=1.0",
        "reward=[accuracy,format]", f"seed={w['seed']}", "logger=csv",
        "logger.samples_every=1000000", "checkpoint_every=1000000",
        f"trainer.max_steps={n2}", "trainer.enable_progress_bar=false",
        f"run_dir={spec['run_dir']}",
    ]
    if spec.get("eval_every"):
        overrides += [f"eval.every={spec['eval_every']}", "eval.k=1",
                      f"data.val_size={spec['val_size']}"]
    else:
        overrides += ["eval.every=0", "eval.k=1", "data.val_size=1"]
    overrides += spec.get("r1kit_overrides", [])
    registry = pluginmanager.install(extra_plugins=(("bench_timing", Plugin()),))
    prepare()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=overrides)
    validate(cfg, registry)
    started = time.perf_counter()
    run_pipeline(cfg)
    n1 = spec["steps"][0]
    return _result(stamps, n1, n2, {
        "completion_length": statistics.mean(lengths) if lengths else None,
        "started": started, "accuracy_curve": accuracy_curve,
        "torch_threads": __import__("torch").get_num_threads()})


# --------------------------------------------------------------------------------- TRL worker
def run_trl(spec: dict) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from r1kit.rewards.accuracy import accuracy_reward
    from r1kit.rewards.format import format_reward

    w, (n1, n2) = spec["work"], spec["steps"]
    mu = w["iterations"]
    completions_per_step = w["prompts"] * w["group_size"]
    micro = min(w["micro_batch_size"], completions_per_step)
    if completions_per_step % micro:
        raise SystemExit(f"prompts*G={completions_per_step} must be a multiple of the "
                         f"micro-batch size {micro}")
    train, val = _train_rows(w["seed"])
    dataset = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in train])
    lengths: list[float] = []

    # r1kit's rewards, called the TRL way: (completions, **dataset columns) -> list[float]
    def accuracy(completions, prompts, answer, **kwargs):
        lengths.extend(len(ids) for ids in kwargs.get("completion_ids", []))
        examples = [{"prompt": p, "answer": a} for p, a in zip(prompts, answer)]
        return accuracy_reward(completions, examples)

    def format(completions, prompts, **kwargs):  # noqa: A001  (the reward's name in logs)
        return format_reward(completions, [{"prompt": p} for p in prompts])

    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    args = GRPOConfig(
        output_dir=spec["run_dir"], use_cpu=True, bf16=False, fp16=False, use_vllm=False,
        gradient_checkpointing=False, num_generations=w["group_size"],
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=completions_per_step // micro,
        max_completion_length=w["max_new_tokens"], temperature=w["temperature"], top_p=1.0,
        top_k=0, beta=w["beta"], num_iterations=mu, epsilon=w["epsilon"],
        loss_type="grpo", scale_rewards="group", learning_rate=w["lr"],
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, adam_beta1=0.9,
        adam_beta2=0.99, max_grad_norm=1.0, max_steps=n2 * mu, logging_steps=10 ** 6,
        save_strategy="no", report_to=[], disable_tqdm=True, log_completions=False,
        seed=w["seed"], dataloader_num_workers=0,
        **spec.get("trl_args", {}))
    stamps: list[tuple[float, float]] = []
    accuracy_curve: list[tuple[float, int, float]] = []
    evaluate = _greedy_evaluator(spec, tokenizer, val) if spec.get("eval_every") else None

    class Stamp(TrainerCallback):
        def on_step_end(self, targs, state, control, model=None, **kwargs):
            if state.global_step % mu == 0:  # a GRPO step = μ optimizer steps on one rollout
                rollout_step = state.global_step // mu
                if evaluate is not None and rollout_step % spec["eval_every"] == 0:
                    accuracy_curve.append((time.perf_counter(), rollout_step, evaluate(model)))
                stamps.append(_stamp())

    trainer = GRPOTrainer(model=model, reward_funcs=[accuracy, format], args=args,
                          train_dataset=dataset, processing_class=tokenizer, callbacks=[Stamp()])
    started = time.perf_counter()
    trainer.train()
    return _result(stamps, n1, n2, {
        "completion_length": statistics.mean(lengths) if lengths else None,
        "started": started, "accuracy_curve": accuracy_curve,
        "torch_threads": torch.get_num_threads()})


def _greedy_evaluator(spec, tokenizer, val_rows):
    """Greedy accuracy on held-out rows, generated the same way r1kit's evaluator does."""
    from r1kit.rewards.accuracy import accuracy_reward
    from r1kit.samplers.hf import HFSampler

    rows = val_rows[: spec["val_size"]]
    prompt_ids = [tokenizer(r["prompt"], add_special_tokens=False)["input_ids"] for r in rows]

    def evaluate(model) -> float:
        sampler = HFSampler(model, tokenizer, max_new_tokens=spec["work"]["max_new_tokens"],
                            temperature=1.0)
        ids = sampler.generate(prompt_ids, 1, greedy=True).completion_ids
        texts = [t.replace(tokenizer.eos_token, "") for t in tokenizer.batch_decode(ids)]
        scores = accuracy_reward(texts, rows)
        return sum(scores) / len(scores)

    return evaluate


# ------------------------------------------------------------------------------------ driver
def _spawn(framework: str, spec: dict) -> dict:
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

    return ensure_tiny_model(work_dir / f"model-{name}", seed=0, **MODELS[name])


def _param_count(model_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        return sum(f.get_tensor(k).numel() for k in f.keys())


def speed(args, work_dir: Path) -> list[dict]:
    """Each framework ``--repeats`` times, interleaved (r1kit, TRL, r1kit, TRL, ...) so that
    both see the same machine load; per model and framework the run with the median
    seconds per step is reported."""
    rows = []
    for name in args.models:
        model_dir = _build_model(work_dir, name)
        work = {**DEFAULT_WORK, **args.work}
        runs: dict[str, list[dict]] = {f: [] for f in args.frameworks}
        for repeat in range(args.repeats):
            for framework in args.frameworks:
                spec = {"model_dir": str(model_dir), "work": work, "steps": args.steps,
                        "threads": args.threads,
                        "run_dir": str(work_dir / f"run-{name}-{framework}-{time.time_ns()}")}
                print(f"[{name}] {framework} (run {repeat + 1}/{args.repeats}): "
                      f"{args.steps[1]} GRPO steps ...", flush=True)
                res = _spawn(framework, spec)
                runs[framework].append(res)
                print(f"[{name}] {framework}: {res['step_s']:.3f} s/step (CPU "
                      f"{res['cpu_step_s']:.3f}), completion length "
                      f"{res['completion_length']:.1f}, peak RSS {res['peak_rss_mib']:.0f} MiB, "
                      f"load {res['load_avg'][0]:.1f}", flush=True)
        for framework, results in runs.items():
            ranked = sorted(results, key=lambda r: r["step_s"])
            median = ranked[len(ranked) // 2]
            rows.append({"model": name, "params": _param_count(model_dir),
                         "framework": framework, "work": work, "threads": args.threads,
                         "all_step_s": [r["step_s"] for r in results],
                         "all_cpu_step_s": [r["cpu_step_s"] for r in results], **median})
    return rows


def print_speed_table(rows: list[dict]) -> None:
    print()
    print("| model | params | framework | s/GRPO step (wall) | r1kit/TRL | CPU s/step | "
          "r1kit/TRL (CPU) | mean completion tokens | peak RSS MiB | all runs s/step |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        trl = next((r for r in rows if r["model"] == row["model"] and r["framework"] == "trl"),
                   None)
        ratio = f"{row['step_s'] / trl['step_s']:.2f}" if trl else "-"
        cpu_ratio = f"{row['cpu_step_s'] / trl['cpu_step_s']:.2f}" if trl else "-"
        runs = ", ".join(f"{x:.2f}" for x in row["all_step_s"])
        print(f"| {row['model']} | {row['params'] / 1e6:.2f}M | {row['framework']} | "
              f"{row['step_s']:.3f} | {ratio} | {row['cpu_step_s']:.3f} | {cpu_ratio} | "
              f"{row['completion_length']:.1f} | {row['peak_rss_mib']:.0f} | {runs} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, fewer steps")
    parser.add_argument("--mode", choices=("speed", "accuracy"), default="speed")
    parser.add_argument("--models", default=None, help="comma list of " + ",".join(MODELS))
    parser.add_argument("--frameworks", default="r1kit,trl")
    parser.add_argument("--steps", default=None,
                        help="n1,n2: time per step = (t[n2]-t[n1])/(n2-n1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the per-step work, e.g. --set iterations=2 "
                             f"(keys: {', '.join(DEFAULT_WORK)})")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads in both workers (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per framework, interleaved; the median is reported")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    # accuracy mode
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--val-size", type=int, default=64)
    parser.add_argument("--sft-steps", type=int, default=300)
    # internal: run one framework
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

    args.models = (args.models or ("tiny" if args.quick else "tiny,medium")).split(",")
    args.frameworks = args.frameworks.split(",")
    steps = args.steps or ("1,4" if args.quick else "2,8")
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.steps = [int(s) for s in steps.split(",")]
    args.work = {}
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in DEFAULT_WORK:
            raise SystemExit(f"--set: unknown key {key!r}")
        args.work[key] = type(DEFAULT_WORK[key])(value)

    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="r1kit-bench-trl-")
        args.work_dir = Path(tmp.name)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.mode == "speed":
        rows = speed(args, args.work_dir)
        print_speed_table(rows)
    else:
        rows = time_to_accuracy(args, args.work_dir)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def time_to_accuracy(args, work_dir):
    raise NotImplementedError


if __name__ == "__main__":
    main()
