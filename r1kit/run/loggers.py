"""The loggers a stage writes to: always the CSV (``metrics.csv``, which r1kit reads back), and
the trackers of ``logger.backends`` (W&B, TensorBoard, MLflow), all Lightning's own loggers,
so every backend receives exactly the metrics the CSV does.

Trackers are built on global rank 0 only (the other ranks never open a tracker run). Each
tracker run is one stage; the runs of one pipeline (or of a whole sweep) share a group, and
each carries the stage's resolved config and the run's environment (``environment.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import uuid
from pathlib import Path

from lightning.pytorch.loggers import (CSVLogger, Logger, MLFlowLogger, TensorBoardLogger,
                                       WandbLogger)

from r1kit.run.ranks import is_global_zero


@dataclasses.dataclass(frozen=True)
class RunNames:
    """How a stage is named in the trackers."""

    group: str  # logger.group, or the run directory's name
    run: str  # the run directory's name
    stage: str

    @property
    def display(self) -> str:
        return f"{self.run}/{self.stage}"


def run_names(cfg, stage_dir: Path) -> RunNames:
    run = Path(cfg.run_dir).resolve().name
    stage = cfg.stage.name if cfg.stage is not None else stage_dir.name
    return RunNames(group=cfg.logger.group or run, run=run, stage=stage)


def build_loggers(cfg, stage_dir: Path, *, csv: bool = True) -> list[Logger]:
    """The stage's loggers, the CSV first (``trainer.logger`` and ``trainer.log_dir`` are
    its). ``csv=False``: the trackers only (a stage that writes its own result files)."""
    loggers: list[Logger] = []
    if csv:
        # every row reaches disk at once (a killed run keeps its metrics up to its last step)
        loggers.append(CSVLogger(save_dir=str(stage_dir), name="", version="",
                                 flush_logs_every_n_steps=1))
    if not is_global_zero():
        return loggers
    names = run_names(cfg, stage_dir)
    for backend in cfg.logger.backends:
        if backend in _BUILDERS:
            loggers.append(_BUILDERS[backend](cfg, stage_dir, names))
    return loggers


def trackers(loggers) -> list[Logger]:
    return [logger for logger in loggers if not isinstance(logger, CSVLogger)]


def stage_record(cfg, stage_dir: Path) -> dict:
    """What a tracker run records about its stage: the stage's resolved config, with r1kit's
    names for the run and the run's environment (library and plugin versions)."""
    names = run_names(cfg, stage_dir)
    record = dataclasses.asdict(cfg)
    record["r1kit"] = {"run": names.run, "stage": names.stage, "group": names.group,
                       "kind": cfg.stage.kind if cfg.stage is not None else None,
                       "run_dir": str(Path(cfg.run_dir).resolve())}
    environment = Path(cfg.run_dir) / "environment.json"
    if environment.exists():
        record["environment"] = json.loads(environment.read_text())
    return record


def log_stage_record(loggers, cfg, stage_dir: Path) -> None:
    """Give each tracker the stage's config and environment (W&B has them at init)."""
    record = stage_record(cfg, stage_dir)
    for logger in trackers(loggers):
        if isinstance(logger, MLFlowLogger):
            # params are flat and immutable in MLflow: a resumed run keeps its first ones (a
            # rerun may change a knob left out of the run directory's name, trainer.max_steps)
            if not getattr(logger, "r1kit_resumed", False):
                logger.log_hyperparams({k: v for k, v in record.items() if k != "environment"})
            logger.experiment.log_dict(logger.run_id, record, "r1kit/stage.json")
        elif isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams({k: v for k, v in record.items() if k != "environment"})
            logger.experiment.add_text("r1kit/stage", _code_block(record))


def close_loggers(loggers) -> None:
    """Finish the stage's tracker runs, so the next stage (same process) opens its own:
    Lightning finalizes a W&B logger without finishing its run, and a new ``WandbLogger``
    would then log into the old one."""
    for logger in trackers(loggers):
        logger.finalize("success")
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        if wandb.run is not None:
            wandb.run.finish()


def _code_block(value) -> str:
    return "```\n" + json.dumps(value, indent=2, default=str) + "\n```"


# ------------------------------------------------------------------------------ W&B
def _wandb(cfg, stage_dir: Path, names: RunNames) -> Logger:
    options = cfg.logger.wandb
    # absolute: the run's files are written by the wandb-core service, a separate process that
    # resolves a relative path against its own working directory, which is not the run's when
    # the service was started by another process (a parent that logged before, a notebook)
    stage_dir = Path(stage_dir).resolve()
    return WandbLogger(
        project=cfg.logger.project, entity=options.entity, mode=options.mode,
        save_dir=str(stage_dir), name=names.display, id=_stable_id(stage_dir, "wandb_id.txt"),
        resume="allow", group=names.group, job_type=names.stage,
        config=stage_record(cfg, stage_dir))


def _stable_id(stage_dir: Path, filename: str) -> str:
    """A stable id per stage directory, so a resumed stage continues the same tracker run."""
    path = stage_dir / filename
    if not path.exists():
        stage_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(uuid.uuid4().hex[:12])
        os.replace(tmp, path)
    return path.read_text().strip()


# ---------------------------------------------------------------------------- TensorBoard
def _tensorboard(cfg, stage_dir: Path, names: RunNames) -> Logger:
    # <stage>/tensorboard: `tensorboard --logdir runs` shows every run and stage by its path;
    # no hp_metric placeholder (it would be a metric the CSV does not have)
    return TensorBoardLogger(save_dir=str(stage_dir), name="tensorboard", version="",
                             default_hp_metric=False)


# --------------------------------------------------------------------------------- MLflow
#: The characters MLflow allows in a metric name; r1kit's names also use "@" (val/avg@4).
_MLFLOW_INVALID = re.compile(r"[^a-zA-Z0-9_/. \-:]")


def mlflow_metric_name(name: str) -> str:
    """The MLflow name of an r1kit metric: ``@`` becomes ``_at_`` (``val/avg_at_4``), any other
    character MLflow rejects ``_``; every other name is the CSV's."""
    return _MLFLOW_INVALID.sub("_", name.replace("@", "_at_"))


class _MLflowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger, with r1kit's metric names mapped (``mlflow_metric_name``)
    rather than stripped of the characters MLflow rejects."""

    def log_metrics(self, metrics, step=None) -> None:
        super().log_metrics({mlflow_metric_name(k): v for k, v in metrics.items()}, step)


def mlflow_tracking_uri(configured: str | None) -> str:
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or \
        "file:" + str(Path("mlruns").resolve())
    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 keeps its file store (in maintenance) behind this switch. It is r1kit's
        # default because the jobs of a sweep, on several nodes, can all write one on a shared
        # filesystem, where an sqlite file would be locked against them.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def _mlflow(cfg, stage_dir: Path, names: RunNames) -> Logger:
    uri = mlflow_tracking_uri(cfg.logger.mlflow.tracking_uri)
    id_file = stage_dir / "mlflow_run_id.txt"
    run_id = _existing_mlflow_run(uri, id_file)
    logger = _MLflowLogger(
        experiment_name=cfg.logger.project, run_name=names.display, tracking_uri=uri,
        run_id=run_id, tags={"r1kit.group": names.group, "r1kit.run": names.run,
                             "r1kit.stage": names.stage})
    logger.r1kit_resumed = run_id is not None
    id_file.write_text(logger.run_id)  # creates the run now; a rerun continues it
    return logger


def _existing_mlflow_run(uri: str, id_file: Path) -> str | None:
    """The run an earlier attempt of this stage logged to, if the store still has it."""
    if not id_file.exists():
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    run_id = id_file.read_text().strip()
    try:
        MlflowClient(uri).get_run(run_id)
    except MlflowException:
        return None  # another store (logger.mlflow.tracking_uri changed): a new run
    return run_id


_BUILDERS = {"wandb": _wandb, "tensorboard": _tensorboard, "mlflow": _mlflow}
