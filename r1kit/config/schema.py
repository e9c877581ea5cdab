"""Typed schemas of the configuration tree; ``__post_init__`` checks values when validated.

Plugin groups (reward, filter, sampler, advantage, data) get their per-plugin fields from the
schema each plugin registers; the fields common to every member of a group live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


@dataclass
class TinyModelConfig:
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.hidden_size % self.num_heads == 0, "model.tiny.hidden_size",
               "must be divisible by model.tiny.num_heads")
        _check(self.hidden_size // self.num_heads >= 32, "model.tiny.num_heads",
               "attention head_dim (hidden_size / num_heads) must be >= 32 (vLLM's CPU kernels)")


@dataclass
class LoraConfig:
    """LoRA adapters (``peft``): with ``rank > 0`` the policy trains only these; the reference
    is the same base with the adapters off, and each stage exports the merged model."""

    rank: int = 0  # r; 0 trains every weight (full fine-tuning)
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.0
    #: Module names to adapt (e.g. [q_proj, v_proj]); null: every linear layer but the head.
    target_modules: Optional[list[str]] = None

    def __post_init__(self) -> None:
        _check(self.rank >= 0, "model.lora.rank", f"must be >= 0, got {self.rank}")
        _check(self.alpha > 0, "model.lora.alpha", f"must be > 0, got {self.alpha}")
        _check(0 <= self.dropout < 1, "model.lora.dropout", f"must be in [0, 1), got {self.dropout}")
        _check(self.target_modules is None or len(self.target_modules) > 0,
               "model.lora.target_modules", "must be null (all linear layers) or non-empty")


@dataclass
class ModelConfig:
    #: Local directory or hub id of an HF causal LM; null builds the tiny model locally.
    path: Optional[str] = None
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    dtype: str = "float32"
    trust_remote_code: bool = False
    #: Wrap prompts with the tokenizer's chat template (instruct models).
    use_chat_template: bool = False
    gradient_checkpointing: bool = False
    #: Attention kernel of the training passes (sdpa, eager, flash_attention_2, ...); null
    #: picks by device: eager on CPU (faster backward there), the model's default elsewhere.
    attn_implementation: Optional[str] = None
    lora: LoraConfig = field(default_factory=LoraConfig)
    #: GRPO's frozen reference (β > 0, no LoRA) loaded from the stage's starting checkpoint for
    #: each of its passes and dropped after, instead of held through the whole step: a model's
    #: weights less at the peak; on a CPU a load of memory-mapped safetensors costs milliseconds,
    #: on a GPU a host-to-device copy per pass (r1kit.stages.grpo.reference).
    reference_offload: bool = False

    def __post_init__(self) -> None:
        from r1kit.models.attention import KNOWN_IMPLEMENTATIONS

        _check(self.dtype in ("float32", "bfloat16", "float16"), "model.dtype",
               f"must be float32, bfloat16 or float16, got {self.dtype!r}")
        _check(self.attn_implementation is None
               or self.attn_implementation in KNOWN_IMPLEMENTATIONS, "model.attn_implementation",
               f"must be null or one of {', '.join(KNOWN_IMPLEMENTATIONS)}, "
               f"got {self.attn_implementation!r}")


@dataclass
class AlgoConfig:
    """The policy-gradient objective (GRPO and its variants, selected by values)."""

    name: str = "grpo"
    group_size: int = 8  # G
    epsilon: float = 0.2  # ε (ε_low when epsilon_high is set)
    epsilon_high: Optional[float] = None  # DAPO clip-higher
    beta: float = 0.04  # β, weight of the KL to the frozen reference; 0 skips the reference
    iterations: int = 1  # μ, policy updates per sampled batch
    kl_estimator: str = "k3"
    ratio_level: str = "token"  # token (GRPO) | sequence (GSPO)
    aggregation: str = "grpo"  # grpo | token_mean (DAPO) | constant (Dr. GRPO)
    #: The per-token surrogate (``r1kit.algo.surrogates.SURROGATES``): ppo_clip (GRPO's
    #: min(ρA, clip(ρ)A)) | dual_clip | cispo | sapo | gmpo | clip_cov | kl_cov
    policy_loss: str = "ppo_clip"
    dual_clip_c: float = 3.0  # dual_clip: bound c > 1 on the ratio's weight when A < 0
    sapo_tau_pos: float = 1.0  # sapo: gate temperature for A > 0
    sapo_tau_neg: float = 1.05  # sapo: gate temperature for A <= 0
    #: cispo: cap on the detached importance weight (null: 1 + epsilon_high; ScaleRL uses 5)
    cispo_weight_max: Optional[float] = None
    cispo_clip_low: bool = False  # cispo: also floor the weight at 1 - epsilon (verl's form)
    clip_cov_ratio: float = 2e-4  # clip_cov: share of tokens whose gradient is detached
    clip_cov_lb: float = 1.0  # clip_cov: covariance range of the candidate tokens
    clip_cov_ub: float = 5.0
    kl_cov_ratio: float = 2e-4  # kl_cov: share of tokens (top covariance) penalised
    kl_cov_coef: float = 1.0  # kl_cov: weight of the |log ρ| penalty
    #: Entropy bonus: J += entropy_coef · agg(per-token entropy) (0: none, no extra graph)
    entropy_coef: float = 0.0
    #: DeepSeek-V3.2's off-policy sequence mask: drop sequences with A < 0 whose mean
    #: log(π_old/π_θ) exceeds this δ (null: off)
    off_policy_mask_delta: Optional[float] = None
    #: at most this many completions per forward/backward pass (a cap on rows; the memory
    #: bound is micro_batch_tokens)
    micro_batch_size: int = 16
    #: Token budget of a forward/backward pass, the knob that bounds its memory: a micro-batch's
    #: rows times its longest row (prompt + completion) stay within it, rows taken longest
    #: first; a group may span micro-batches (the loss is exact for any split), and a longer
    #: row is a pass of its own. 8,192 = 16 rows of 512. null: rows only (micro_batch_size).
    micro_batch_tokens: Optional[int] = 8192
    #: Completion tokens whose full-vocabulary logits exist at once in a log-prob pass (the
    #: output projection runs in chunks of this many tokens, forward and backward; 256 tokens
    #: of a 151,936-token vocabulary are 156 MB of float32 logits).
    logprob_chunk_tokens: int = 256
    max_refill_rounds: int = 2  # extra sampling rounds when filters drop whole groups
    #: Steps in a row that may end with no group left after the filters (and their refills)
    #: before the run stops with an error: such steps make no optimizer step, so without this
    #: limit a run on prompts the model never (or always) solves would never reach max_steps.
    max_skipped_steps: int = 20
    # With β = 0, skip the forward/backward of groups whose advantages are all 0: their loss
    # and gradient are exactly 0 (same update, less work); per-token statistics (entropy, clip
    # fractions) then describe the computed groups only.
    skip_zero_advantage: bool = True
    #: Pipelined (one-step off-policy) rollouts: step k+1's completions are sampled while step k
    #: trains, from the weights of the end of step k-1 (one step stale); π_old is the sampling
    #: policy's own log-probs. The hf sampler then samples from a copy of the weights.
    async_rollouts: bool = False

    def __post_init__(self) -> None:
        _check(0 < self.epsilon < 1, "algo.epsilon", f"must be in (0, 1), got {self.epsilon}")
        if self.epsilon_high is not None:
            _check(0 < self.epsilon_high < 1, "algo.epsilon_high",
                   f"must be in (0, 1), got {self.epsilon_high}")
        _check(self.beta >= 0, "algo.beta", f"must be >= 0, got {self.beta}")
        _check(self.group_size >= 2, "algo.group_size",
               f"must be >= 2 (advantages compare completions within a group), got {self.group_size}")
        _check(self.iterations >= 1, "algo.iterations", f"must be >= 1, got {self.iterations}")
        _check(self.micro_batch_size >= 1, "algo.micro_batch_size", "must be >= 1")
        _check(self.micro_batch_tokens is None or self.micro_batch_tokens >= 1,
               "algo.micro_batch_tokens", f"must be null or >= 1, got {self.micro_batch_tokens}")
        _check(self.logprob_chunk_tokens >= 1, "algo.logprob_chunk_tokens",
               f"must be >= 1, got {self.logprob_chunk_tokens}")
        _check(self.max_refill_rounds >= 0, "algo.max_refill_rounds", "must be >= 0")
        _check(self.max_skipped_steps >= 1, "algo.max_skipped_steps", "must be >= 1")
        self._check_policy_loss()

    def _check_policy_loss(self) -> None:
        from r1kit.algo.surrogates import SURROGATES  # the table is the list of valid names

        _check(self.policy_loss in SURROGATES, "algo.policy_loss",
               f"unknown value {self.policy_loss!r}; valid: {', '.join(SURROGATES)}")
        _check(not getattr(SURROGATES[self.policy_loss], "needs_token_ratio", False)
               or self.ratio_level == "token", "algo.ratio_level",
               f"{self.policy_loss} builds its own sequence ratio; use ratio_level=token, "
               f"got {self.ratio_level!r}")
        _check(self.dual_clip_c > 1, "algo.dual_clip_c", f"must be > 1, got {self.dual_clip_c}")
        for key in ("sapo_tau_pos", "sapo_tau_neg"):
            _check(getattr(self, key) > 0, f"algo.{key}", f"must be > 0, got {getattr(self, key)}")
        _check(self.cispo_weight_max is None or self.cispo_weight_max >= 1,
               "algo.cispo_weight_max", f"must be null or >= 1, got {self.cispo_weight_max}")
        for key in ("clip_cov_ratio", "kl_cov_ratio"):
            _check(0 < getattr(self, key) <= 1, f"algo.{key}",
                   f"must be in (0, 1], got {getattr(self, key)}")
        _check(self.clip_cov_lb < self.clip_cov_ub, "algo.clip_cov_lb",
               f"must be < clip_cov_ub, got {self.clip_cov_lb} >= {self.clip_cov_ub}")
        _check(self.kl_cov_coef >= 0, "algo.kl_cov_coef", f"must be >= 0, got {self.kl_cov_coef}")
        _check(self.off_policy_mask_delta is None or self.off_policy_mask_delta >= 0,
               "algo.off_policy_mask_delta",
               f"must be null or >= 0, got {self.off_policy_mask_delta}")

    def surrogate_options(self):
        """The ``SurrogateOptions`` of these fields (ε comes from epsilon/epsilon_high)."""
        from r1kit.algo.surrogates import SurrogateOptions

        knobs = [f for f in SurrogateOptions.__dataclass_fields__ if f not in ("eps_low", "eps_high")]
        return SurrogateOptions(**{f: getattr(self, f) for f in knobs})


@dataclass
class OptimConfig:
    lr: float = 1e-6
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    warmup_steps: int = 0
    #: Gradient-norm clipping (null: none). Applied by r1kit, which steps the optimizer itself.
    max_grad_norm: Optional[float] = 1.0

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr", f"must be > 0, got {self.lr}")
        _check(self.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")


@dataclass
class DataCommon:
    """Fields every dataset option has (the dataset plugin's schema adds its own)."""

    name: str = MISSING
    batch_size: int = 16  # prompts per optimizer step per device
    #: Python format string applied to each row to build the prompt text.
    template: str = "{prompt}"
    val_size: int = 64  # held-out prompts evaluated every trainer.val_check_interval steps

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "data.batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass
class SamplerCommon:
    name: str = MISSING
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        _check(self.max_new_tokens >= 1, "sampler.max_new_tokens", "must be >= 1")
        _check(self.temperature > 0, "sampler.temperature", "must be > 0")
        _check(0 < self.top_p <= 1, "sampler.top_p", "must be in (0, 1]")


@dataclass
class RewardCommon:
    weight: float = 1.0
    #: Seconds one call of the reward may take; null = no limit.
    timeout: Optional[float] = None
    #: raise: a failing sample stops the run; skip: it is excluded, counted and logged.
    on_error: str = "raise"
    #: Route the reward: it scores only rows whose ``task`` field is listed (others get None,
    #: "does not apply"); null scores every row. R1's RL-for-all-scenarios uses this to send
    #: reasoning prompts to rule rewards and general prompts to a reward model.
    applies_to: Optional[list[str]] = None

    def __post_init__(self) -> None:
        _check(self.on_error in ("raise", "skip"), "reward.*.on_error",
               f"must be raise or skip, got {self.on_error!r}")


@dataclass
class AdvantageCommon:
    name: str = MISSING


@dataclass
class FilterCommon:
    """Filters share no field: a filter's node holds its own options only."""


#: Experiment trackers a run can log to besides the CSV (``logger.backends``).
LOGGER_BACKENDS = ("wandb", "tensorboard", "mlflow")


@dataclass
class WandbConfig:
    #: online | offline | disabled; offline needs no account (``wandb sync`` uploads later).
    mode: str = "offline"
    entity: Optional[str] = None  # team or user (null: the account's default)

    def __post_init__(self) -> None:
        _check(self.mode in ("online", "offline", "disabled"), "logger.wandb.mode",
               f"must be online, offline or disabled, got {self.mode!r}")


@dataclass
class MlflowConfig:
    #: Where runs go (``http://server:5000``, ``sqlite:///mlflow.db``, ``file:/path``); null:
    #: $MLFLOW_TRACKING_URI, else a local file store ``./mlruns`` (``mlflow ui`` reads it).
    tracking_uri: Optional[str] = None


@dataclass
class LoggerConfig:
    #: Trackers besides the CSV, which is always written (r1kit reads it back): any of
    #: wandb, tensorboard, mlflow. ``logger=wandb`` etc. select one; list several here.
    backends: list[str] = field(default_factory=list)
    project: str = "r1kit"  # the W&B project, the MLflow experiment
    #: Runs logged together (W&B group, MLflow tag r1kit.group); null: the sweep's name for
    #: the jobs of a sweep, else the run directory's name (one pipeline's stages together).
    group: Optional[str] = None
    samples_every: int = 10  # sampled completions (JSONL, tracker tables) every N steps
    wandb: WandbConfig = field(default_factory=WandbConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)

    def __post_init__(self) -> None:
        for name in self.backends:
            _check(name == "csv" or name in LOGGER_BACKENDS, "logger.backends",
                   f"unknown backend {name!r}; valid: {', '.join(LOGGER_BACKENDS)} "
                   "(the CSV is always written)")
        _check(len(set(self.backends)) == len(self.backends), "logger.backends",
               f"lists a backend twice: {self.backends}")
        _check(self.samples_every >= 0, "logger.samples_every", "must be >= 0 (0: never)")


@dataclass
class EvalConfig:
    every: int = 50  # evaluate the held-out set every N optimizer steps (0 = never)
    k: int = 4  # samples per prompt for avg@k / maj@k
    #: Held-out prompts per generation call (bounds memory; the eval stage reports progress
    #: after each); 0: all of a rank's prompts at once.
    batch_size: int = 64

    def __post_init__(self) -> None:
        _check(self.batch_size >= 0, "eval.batch_size", f"must be >= 0, got {self.batch_size}")


@dataclass
class HubConfig:
    """Push the pipeline's final model (with its model card) to the Hugging Face Hub. The
    token comes from $HF_TOKEN or ``hf auth login``, never from the config."""

    push: bool = False
    repo_id: Optional[str] = None  # namespace/name
    private: bool = True

    def __post_init__(self) -> None:
        if not self.push:
            return
        _check(self.repo_id is not None, "hub.repo_id",
               "required with hub.push=true (e.g. hub.repo_id=my-org/my-r1-model)")
        parts = self.repo_id.split("/")
        _check(len(parts) == 2 and all(parts), "hub.repo_id",
               f"must be namespace/name, got {self.repo_id!r}")


@dataclass
class RejectionConfig:
    """The rejection-sampling stage: k samples per prompt, kept by the ``filter`` plugins."""

    samples_per_prompt: int = 8
    #: Prompts per shard file; a resumed stage skips the shards already written.
    shard_size: int = 64
    #: Prompts to sample from (null: the whole training split).
    num_prompts: Optional[int] = None
    #: Non-reasoning rows (with ``prompt`` and ``solution``) mixed into the new SFT set: a data
    #: node like ``data`` (``{name: jsonl, path: ...}``), or null.
    mix: Any = None

    def __post_init__(self) -> None:
        _check(self.samples_per_prompt >= 1, "rejection.samples_per_prompt", "must be >= 1")
        _check(self.shard_size >= 1, "rejection.shard_size", "must be >= 1")


@dataclass
class StageConfig:
    """One entry of ``pipeline.stages``."""

    kind: str = MISSING  # sft | grpo | rejection_sampling | eval (r1kit.stages.STAGE_MODULES)
    #: Config values that differ for this stage, merged over the root config.
    overrides: dict = field(default_factory=dict)


@dataclass
class StageInfo:
    """Which stage a stage's config belongs to (``cfg.stage``; None in the root config)."""

    name: str = MISSING
    kind: str = MISSING


@dataclass
class PipelineConfig:
    #: name -> stage, in order. Typed (``StageConfig``) by validation; kept untyped while
    #: composing so that a bad stage gets r1kit's message rather than OmegaConf's.
    stages: Any = field(default_factory=dict)


@dataclass
class RootConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rejection: RejectionConfig = field(default_factory=RejectionConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    # Plugin groups: composed as plain nodes, then validated into each plugin's typed options
    # (``r1kit.config.options.options_class``): one instance for a single-select group, a
    # name -> instance dict for a multi-select one.
    data: Any = MISSING
    sampler: Any = MISSING
    advantage: Any = MISSING
    reward: Any = field(default_factory=dict)
    filter: Any = field(default_factory=dict)
    #: Lightning Trainer keyword arguments (checked against the Trainer's signature).
    trainer: Any = field(default_factory=dict)
    seed: int = 0
    deterministic: bool = False
    run_dir: str = MISSING
    checkpoint_every: int = 10
    #: Caps ``trainer.max_steps`` of every training stage, whatever the stage sets (a smoke
    #: run of a multi-stage recipe: ``+smoke=tiny``); null: no cap.
    stage_max_steps: Optional[int] = None
    #: Set in each stage's config (``r1kit.config.validate.stage_config``).
    stage: Optional[StageInfo] = None
