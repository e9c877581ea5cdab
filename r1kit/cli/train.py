"""``python -m r1kit [overrides]``: compose the config, validate it, run the pipeline."""

import shlex
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from r1kit.cli.startup import CONF_DIR, follow_hydra_run_dir, guarded, prepare


@hydra.main(config_path=CONF_DIR, config_name="config", version_base=None)
@guarded
def _run(cfg: DictConfig):
    from r1kit.config.validate import validate
    from r1kit.plugin.manager import get_registry

    follow_hydra_run_dir(cfg)
    name_sweep_group(cfg)
    plan = validate(cfg, get_registry())  # before any model or data loads
    from r1kit.pipeline.runner import run_pipeline  # heavy imports only after validation

    return run_pipeline(plan, command=launch_command())


def launch_command() -> str:
    """The command that reruns this run (one job of a sweep: that job alone)."""
    from hydra.core.hydra_config import HydraConfig

    overrides = HydraConfig.get().overrides.task
    return " ".join(["python -m r1kit", *map(shlex.quote, overrides)])


def name_sweep_group(cfg: DictConfig) -> None:
    """In a sweep, ``logger.group`` (unless given) is the sweep's name, so the trackers put
    every job of the sweep together; a single run's default is its run directory's name."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN and cfg.logger.group is None:
        cfg.logger.group = Path(str(hydra_cfg.sweep.dir)).name


def main() -> None:
    prepare(sys.argv[1:])
    _run()


if __name__ == "__main__":
    main()
