"""The ``sft`` stage: supervised fine-tuning on rows that carry a worked ``solution``."""

from __future__ import annotations

from r1kit.data.loading import render_prompt
from r1kit.data.response import completion_target
from r1kit.data.stream import PromptStream
from r1kit.evaluation import Evaluator
from r1kit.models.loading import encode_prompt, visible_prompt
from r1kit.pipeline.components import build_parts
from r1kit.run.trainer import build_trainer, resume_checkpoint
from r1kit.trainers.common import reduce_metrics
from r1kit.trainers.sft import SFTModule


def run(cfg, ctx) -> dict:
    parts = build_parts(cfg, ctx.registry, ctx.model_source, filters=False)
    rows = [row for row in parts.train_rows if row.get("solution")]
    if not rows:
        raise ValueError(f"stage {ctx.name}: data '{cfg.data.name}' has no rows with a "
                         "'solution' field to fine-tune on")
    tokenizer, eos = parts.tokenizer, parts.tokenizer.eos_token_id

    def encode(row):
        text = render_prompt(row, cfg.data.template)
        prompt = encode_prompt(tokenizer, text, cfg.model)
        # a solution is a whole response; the part the prompt already wrote (the template's
        # trailing <think>) is not trained on twice
        target = completion_target(visible_prompt(tokenizer, text, cfg.model), row["solution"])
        completion = tokenizer(target, add_special_tokens=False)["input_ids"] + [eos]
        return prompt, completion

    trainer = build_trainer(cfg, ctx.stage_dir, ctx.callbacks(cfg))
    stream = PromptStream(rows, seed=cfg.seed, rank=trainer.global_rank,
                          world_size=trainer.world_size)
    val_rows = parts.val_rows[trainer.global_rank::trainer.world_size]
    module = SFTModule(policy=parts.policy, tokenizer=tokenizer, encode=encode, stream=stream,
                       cfg=cfg, evaluator=Evaluator(parts.collector, val_rows,
                                                    every=cfg.eval.every, k=cfg.eval.k))
    trainer.fit(module, ckpt_path=resume_checkpoint(ctx.stage_dir))
    # every rank evaluates its share of the held-out set; the manifest gets the whole set's
    final = reduce_metrics(Evaluator(parts.collector, val_rows, every=1, k=cfg.eval.k).run(),
                           weight=len(val_rows))
    return ctx.save_model(trainer, parts.policy, tokenizer, metrics=final)
