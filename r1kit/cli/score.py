"""``python -m r1kit score 'reward=[accuracy,format]' input=IN.jsonl output=OUT.jsonl``

Scores existing completions (each row holds ``completion`` plus the dataset fields) with the
same reward plugins and harness the trainer uses, and writes every row back with ``rewards``
(name -> value) and ``reward`` (the weighted total).

Rewards judge a completion in the context of the prompt the model saw: a row's
``rendered_prompt``, else its ``prompt`` rendered with ``template=...`` or with the template of
a data preset (``+data=math``), else its ``prompt`` as it is.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from r1kit.cli.startup import CONF_DIR, guarded, prepare
from r1kit.config.schema import ConfigError
from r1kit.config.validate import plugin_options
from r1kit.data.jsonl import read_jsonl
from r1kit.data.loading import render_prompt
from r1kit.rewards.judge import counters as judge_counters
from r1kit.run.progress import Progress


def in_context(rows: list[dict], template: str | None) -> list[dict]:
    """``rows`` as rewards receive them: each with the ``rendered_prompt`` the model saw."""
    if template is None:
        return rows
    return [row if "rendered_prompt" in row
            else {**row, "rendered_prompt": render_prompt(row, template)} for row in rows]


@dataclass
class ScoreConfig:
    input: str = MISSING
    output: str = MISSING
    reward: Any = field(default_factory=dict)
    #: rows scored per harness call (bounds memory; each call runs the rewards concurrently)
    chunk_size: int = 256
    #: prompt template the completions were sampled with (a format string over the row)
    template: Optional[str] = None
    #: a data preset (``+data=math``), whose ``template`` is used when ``template`` is unset
    data: Any = None
    #: report rows scored, rate and ETA on stderr (one line per 10% when not a terminal)
    progress: bool = True


ConfigStore.instance().store(name="r1kit_score_schema", node=ScoreConfig)


def score_file(cfg: DictConfig, registry) -> int:
    from r1kit.rewards.harness import compute_rewards
    from r1kit.rewards.specs import reward_specs

    if not cfg.reward:
        raise ConfigError("reward: no reward selected (use 'reward=[accuracy,format]')")
    rewards = {name: plugin_options("reward", name, OmegaConf.to_container(node or {}, resolve=True),
                                    registry, f"reward.{name}")
               for name, node in cfg.reward.items()}
    rows = read_jsonl(cfg.input, required=("completion",))
    template = cfg.template if cfg.template is not None else (
        cfg.data.template if cfg.data is not None else None)
    specs = reward_specs(rewards, registry)
    judged = judge_counters.counters()
    out = Path(cfg.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle, Progress(
            len(rows), label="r1kit score", unit="rows", enabled=cfg.progress) as progress:
        for start in range(0, len(rows), cfg.chunk_size):
            chunk = rows[start:start + cfg.chunk_size]
            scores = compute_rewards(specs, [r["completion"] for r in chunk],
                                     in_context(chunk, template))
            for i, row in enumerate(chunk):
                row = dict(row)
                row["rewards"] = {name: values[i] for name, values in scores.parts.items()}
                row["reward"] = scores.total[i]
                handle.write(json.dumps(row) + "\n")
            progress.advance(len(chunk))
    tmp.replace(out)  # a crash never leaves a half-written output
    if "judge" in rewards:  # what the judge cost and what it could not score
        counts = judge_counters.judge_counts(judged, judge_counters.counters())
        print("r1kit score: judge " + ", ".join(
            f"{metric.removeprefix('judge/')}={int(value)}" for metric, value in counts.items()
            if value or metric in ("judge/calls", "judge/cache_hits", "judge/failures")),
            file=sys.stderr)
    return len(rows)


@hydra.main(config_path=CONF_DIR, config_name="score", version_base=None)
@guarded
def _run(cfg: DictConfig) -> None:
    from r1kit.plugin.manager import get_registry

    count = score_file(cfg, get_registry())
    print(f"r1kit score: wrote {count} rows to {cfg.output}")


def main() -> None:
    import sys

    prepare(sys.argv[1:])
    _run()



if __name__ == "__main__":
    main()
