"""W&B (offline), TensorBoard and MLflow runs of the tiny task: the metrics the CSV has under
the same names, the sampled completions as tables, the stage's config and environment, and
the stages of one pipeline grouped by the run directory's name."""

import csv
import json
import os

import pytest

from r1kit.run.loggers import mlflow_metric_name
from tests.run.wandb_records import offline_run


def _csv_metric_names(stage_dir) -> set[str]:
    with (stage_dir / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {k for row in rows for k, v in row.items() if v not in ("", None) and k != "step"}


def _mlflow(tiny_run, stage: str):
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(f"file:{tiny_run.mlruns}")
    run_id = (tiny_run.run_dir / stage / "mlflow_run_id.txt").read_text()
    return client, client.get_run(run_id)


def test_the_csv_has_the_metrics_the_trackers_are_compared_with(tiny_run):
    names = _csv_metric_names(tiny_run.run_dir / "rl")
    # training, rollout and held-out metrics, "@" included (MLflow cannot store it as is)
    assert {"reward/mean", "train/loss", "rollout/kept_groups", "val/accuracy",
            "val/avg@2"} <= names


def test_tensorboard_holds_the_csv_metric_names_and_the_samples(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_run.run_dir / "rl" / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == _csv_metric_names(tiny_run.run_dir / "rl")
    assert [e.step for e in events.Scalars("reward/mean")] == [0, 1]
    texts = events.Tensors("samples/text_summary")
    assert [t.step for t in texts] == [1, 2]  # logger.samples_every=1: both steps
    table = texts[0].tensor_proto.string_val[0].decode()
    assert table.startswith("| step | group | prompt | completion | reward/accuracy | "
                            "reward/format | reward | advantage | truncated |")
    assert table.count("\n| 1 | ") == 16  # 4 prompts x 4 completions of step 1


def test_mlflow_holds_the_csv_metric_names_the_samples_and_the_config(tiny_run):
    client, run = _mlflow(tiny_run, "rl")
    csv_names = _csv_metric_names(tiny_run.run_dir / "rl")
    assert set(run.data.metrics) == {mlflow_metric_name(n) for n in csv_names}
    assert mlflow_metric_name("val/avg@2") == "val/avg_at_2"  # the only renamed ones
    assert {n for n in csv_names if mlflow_metric_name(n) != n} == {"val/avg@2", "val/maj@2"}
    history = client.get_metric_history(run.info.run_id, "reward/mean")
    assert sorted(m.step for m in history) == [0, 1]
    assert run.info.status == "FINISHED"
    assert run.data.tags["r1kit.group"] == "run" and run.data.tags["r1kit.stage"] == "rl"
    assert run.data.params["algo/group_size"] == "4"
    samples = [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    assert samples == ["samples/step_000001.json", "samples/step_000002.json"]
    table = json.loads(open(client.download_artifacts(run.info.run_id, samples[0])).read())
    assert "completion" in table["columns"] and len(table["data"]) == 16
    stage = json.loads(open(client.download_artifacts(
        run.info.run_id, "r1kit/stage.json")).read())
    assert stage["environment"]["libraries"]["torch"] and stage["r1kit"]["stage"] == "rl"


def test_wandb_offline_run_holds_the_samples_table_config_and_group(tiny_run):
    run = offline_run(tiny_run.run_dir / "rl")
    assert (run["name"], run["group"], run["job_type"]) == ("run/rl", "run", "rl")
    (first, second) = run["tables"]["samples"]
    assert first["columns"] == ["step", "group", "prompt", "completion", "reward/accuracy",
                                "reward/format", "reward", "advantage", "truncated"]
    samples = [json.loads(line) for line in (tiny_run.run_dir / "rl" / "samples.jsonl").open()]
    written = [[s["step"], s["group"], s["prompt"], s["completion"], s["rewards"]["accuracy"],
                s["rewards"]["format"], s["reward"], s["advantage"], s["truncated"]]
               for s in samples]
    assert first["data"] + second["data"] == written  # what samples.jsonl has
    config = run["config"]
    assert config["algo"]["group_size"] == 4 and config["logger"]["samples_every"] == 1
    assert config["r1kit"]["run"] == "run" and config["r1kit"]["kind"] == "grpo"
    assert config["environment"]["libraries"]["lightning"]
    assert any(p["name"] == "accuracy" for p in config["environment"]["plugins"])


def test_each_stage_is_its_own_tracker_run_in_the_pipeline_group(tiny_run):
    train, evaluation = offline_run(tiny_run.run_dir / "rl"), offline_run(tiny_run.run_dir / "ev")
    assert evaluation["group"] == train["group"] == "run"
    assert evaluation["job_type"] == "ev" and evaluation["name"] == "run/ev"
    (table,) = evaluation["tables"]["eval/samples"]
    assert table["columns"][:3] == ["prompt", "completion", "answer"]
    eval_samples = [json.loads(line) for line in (tiny_run.run_dir / "ev" / "samples.jsonl").open()]
    assert len(table["data"]) == len(eval_samples) == 4  # every held-out row, greedy
    _, run = _mlflow(tiny_run, "ev")
    metrics = json.loads((tiny_run.run_dir / "ev" / "eval.json").read_text())
    assert run.data.metrics == pytest.approx({mlflow_metric_name(k): v for k, v in metrics.items()})


def test_held_out_completions_during_training_go_to_a_table_too(tiny_run):
    rows = [json.loads(line) for line in (tiny_run.run_dir / "rl" / "val_samples.jsonl").open()]
    assert [r["step"] for r in rows] == [1] * 4  # eval.every=2: once, all 4 held-out rows
    assert {"prompt", "completion", "answer", "rewards", "reward", "truncated"} <= set(rows[0])
    (table,) = offline_run(tiny_run.run_dir / "rl")["tables"]["val/samples"]
    assert table["columns"][:4] == ["step", "prompt", "completion", "answer"]
    assert [row[2] for row in table["data"]] == [r["completion"] for r in rows]
