"""Rejection sampling and eval report progress (counts, rate, ETA) while they run; a line per
10% when stderr is not a terminal, nothing with trainer.enable_progress_bar=false."""

import re

from r1kit.config.validate import validate
from r1kit.pipeline.runner import run_pipeline
from r1kit.plugin.manager import get_registry
from tests.conftest import SHRINK, compose_config

LINE = re.compile(r"^r1kit (?P<stage>\w+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>[a-z -]+) "
                  r"\((?P<pct>\d+)%\)(?P<rest>.*)$")


def _lines(text: str, stage: str) -> list[dict]:
    return [m.groupdict() for m in map(LINE.match, text.splitlines())
            if m and m["stage"] == stage]


def test_rejection_sampling_reports_prompts_and_kept_samples(tiny_run):
    lines = _lines(tiny_run.stderr, "rs")
    # 8 prompts in shards of 4: the start, then one line per shard (50%, 100%)
    assert [(l["done"], l["total"], l["unit"], l["pct"]) for l in lines] == [
        ("0", "8", "prompts", "0"), ("4", "8", "prompts", "50"), ("8", "8", "prompts", "100")]
    kept = [int(re.search(r"kept (\d+)", l["rest"])[1]) for l in lines]
    assert kept[-1] == tiny_run.results["rs"]["metrics"]["kept"] and kept[0] == 0
    assert "prompts/s" in lines[1]["rest"] and "ETA" in lines[1]["rest"]
    assert "ETA" not in lines[-1]["rest"]  # done


def test_eval_reports_held_out_rows(tiny_run):
    lines = _lines(tiny_run.stderr, "ev")
    # 4 held-out rows, eval.batch_size=2 at a time
    assert [(l["done"], l["total"], l["unit"]) for l in lines] == [
        ("0", "4", "held-out rows"), ("2", "4", "held-out rows"), ("4", "4", "held-out rows")]
    assert "held-out rows/s" in lines[1]["rest"] and "elapsed" in lines[1]["rest"]


def test_a_training_stage_reports_its_final_eval(tiny_run):
    assert any("r1kit rl final eval: 4/4 held-out rows (100%)" in line
               for line in tiny_run.stderr.splitlines())


def test_no_progress_with_the_progress_bar_off(tmp_path, capsys):
    cfg = compose_config([*SHRINK, "pipeline=sft", "pipeline.stages.sft.kind=eval",
                          "data.val_size=4", "eval.k=1", "trainer.enable_progress_bar=false"],
                         run_dir=str(tmp_path))
    run_pipeline(validate(cfg, get_registry()))
    assert (tmp_path / "sft" / "eval.json").exists()
    assert "held-out rows" not in capsys.readouterr().err
