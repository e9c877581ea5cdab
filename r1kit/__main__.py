"""``python -m r1kit [overrides]``: compose the config, validate it, run the pipeline."""

import hydra
from omegaconf import DictConfig

import sys

from r1kit.cli import CONF_DIR, check_group_choices, follow_hydra_run_dir, guarded, prepare


@hydra.main(config_path=CONF_DIR, config_name="config", version_base=None)
@guarded
def _run(cfg: DictConfig):
    from r1kit.config.validate import validate
    from r1kit.pluginmanager import get_registry

    follow_hydra_run_dir(cfg)
    validate(cfg, get_registry())  # before any model or data loads
    from r1kit.pipeline.runner import run_pipeline  # heavy imports only after validation

    return run_pipeline(cfg)


def main() -> None:
    prepare()
    from r1kit.pluginmanager import get_registry

    check_group_choices(sys.argv[1:], get_registry())
    _run()


if __name__ == "__main__":
    main()
