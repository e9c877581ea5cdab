"""The ``sft`` stage: supervised fine-tuning on rows that carry a worked ``solution``."""

from __future__ import annotations

from r1kit.data.loading import render_prompt
from r1kit.data.response import completion_target
from r1kit.models.loading import encode_visible, visible_prompt
from r1kit.stages.training import TrainingStage, run_training_stage
from r1kit.stages.sft.module import SFTModule


def _rows_with_solutions(cfg, ctx, parts) -> list[dict]:
    rows = [row for row in parts.train_rows if row.get("solution")]
    if not rows:
        raise ValueError(f"stage {ctx.name}: data '{cfg.data.name}' has no rows with a "
                         "'solution' field to fine-tune on")
    return rows


def _module(cfg, ctx, parts, stream, evaluator) -> SFTModule:
    tokenizer, eos = parts.tokenizer, parts.tokenizer.eos_token_id

    def encode(row):
        visible = visible_prompt(tokenizer, render_prompt(row, cfg.data.template), cfg.model)
        prompt = encode_visible(tokenizer, visible)
        # a solution is a whole response; the part the prompt already wrote (the template's
        # trailing <think>) is not trained on twice
        target = completion_target(visible, row["solution"])
        completion = tokenizer(target, add_special_tokens=False)["input_ids"] + [eos]
        return prompt, completion

    return SFTModule(policy=parts.policy, tokenizer=tokenizer, encode=encode, stream=stream,
                     cfg=cfg, evaluator=evaluator)


def run(cfg, ctx) -> dict:
    return run_training_stage(cfg, ctx, TrainingStage(
        train_rows=_rows_with_solutions, module=_module, filters=False))
