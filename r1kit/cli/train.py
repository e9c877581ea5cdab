"""``python -m r1kit [overrides]``: compose the config, validate it, run the pipeline."""

import sys

import hydra
from omegaconf import DictConfig

from r1kit.cli.startup import CONF_DIR, follow_hydra_run_dir, guarded, prepare


@hydra.main(config_path=CONF_DIR, config_name="config", version_base=None)
@guarded
def _run(cfg: DictConfig):
    from r1kit.config.validate import validate
    from r1kit.plugin.manager import get_registry

    follow_hydra_run_dir(cfg)
    plan = validate(cfg, get_registry())  # before any model or data loads
    from r1kit.pipeline.runner import run_pipeline  # heavy imports only after validation

    return run_pipeline(plan)


def main() -> None:
    prepare(sys.argv[1:])
    _run()


if __name__ == "__main__":
    main()
