"""Shared start-up for r1kit's command-line entry points.

Plugins are loaded before Hydra composes anything, because registered names are config options.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from omegaconf import OmegaConf

from r1kit.config.schema import ConfigError
from r1kit.config.store import store_plugin_options
from r1kit.plugin.manager import get_registry
from r1kit.plugin.registry import PluginError
from r1kit.run.errors import RunStopped

#: The Hydra tree, a package directory of r1kit (``r1kit/conf``).
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


MAX_NAME = 120  # file systems reject names over 255 bytes


def _run_name(override_dirname: str) -> str:
    """The run directory's name: the command's overrides, or a prefix plus a hash when long."""
    name = override_dirname.replace("/", "_").replace("+", "") or "default"
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[:MAX_NAME - 11]}-{digest}"
    return name


def prepare(argv: list[str] | None = None) -> None:
    """Load plugins and feed their config nodes to Hydra; safe to call more than once. With
    the command line ``argv``, also check its config-group choices (``check_group_choices``)."""
    if not OmegaConf.has_resolver("r1kit_run_name"):
        OmegaConf.register_new_resolver("r1kit_run_name", _run_name)
    try:
        store_plugin_options(get_registry())
    except PluginError as err:
        fail(str(err))
    if argv is not None:
        check_group_choices(argv, get_registry())


#: Config groups made of YAML files only (their options are the files in conf/<group>/).
YAML_GROUPS = ("model", "algo", "trainer", "logger", "pipeline", "experiment", "hydra/launcher")


def group_options(group: str, registry) -> dict[str, str]:
    """Every option of a config group, name -> where it comes from."""
    from r1kit.config.store import PLUGIN_GROUPS

    options = {path.stem: "conf/" + group for path in Path(CONF_DIR, group).glob("*.yaml")}
    if group in PLUGIN_GROUPS:
        options.update({e.name: e.provider for e in registry.entries(PLUGIN_GROUPS[group][0])})
    return options


def check_group_choices(argv: list[str], registry) -> None:
    """Fail, naming the valid options and the nearest one, when a command line selects a
    config-group option that does not exist (``reward=[acuracy]``, ``sampler=vlm``): Hydra's
    own message ("Could not load 'sampler/vlm'") lists search paths, not options."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from r1kit.config.store import PLUGIN_GROUPS
    from r1kit.plugin.registry import nearest

    groups = (*PLUGIN_GROUPS, *YAML_GROUPS)
    try:
        overrides = get_args_parser().parse_args(argv).overrides
        parsed = OverridesParser.create().parse_overrides(overrides)
    except (HydraException, SystemExit):
        return  # Hydra reports bad arguments itself
    for override in parsed:
        group = override.key_or_group
        if group not in groups or override.is_delete() or override.package:
            continue
        values = (list(override.sweep_iterator()) if override.is_sweep_override()
                  else [override.value()])
        options = group_options(group, registry)
        for value in values:
            for name in (value if isinstance(value, list) else [value]):
                if isinstance(name, str) and name not in options:
                    hint = nearest(name, options)
                    hint = f" (did you mean '{hint}'?)" if hint else ""
                    valid = ", ".join(sorted(options)) or "none"
                    fail(f"{group}={name}: no such {group}{hint}; valid: {valid}")


def fail(message: str, code: int = 2) -> None:
    print(f"r1kit: error: {message}", file=sys.stderr)
    raise SystemExit(code)


#: What Hydra writes into a job's directory before r1kit's code runs.
_HYDRA_FILES = {".hydra", "train.log", "score.log"}


def _discard_rejected_run_dir() -> None:
    """Remove the job directory Hydra created for a command r1kit then rejected, so a typo
    leaves nothing behind; a directory holding anything else (a run to resume) is kept."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    out = Path(HydraConfig.get().runtime.output_dir)
    if out.is_dir() and out.resolve() != Path.cwd().resolve() \
            and {p.name for p in out.iterdir()} <= _HYDRA_FILES:
        shutil.rmtree(out, ignore_errors=True)


def guarded(fn):
    """Run ``fn`` turning configuration and plugin errors into a one-line message and exit 2."""
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ConfigError, PluginError) as err:
            _discard_rejected_run_dir()
            fail(str(err))
        except RunStopped as err:  # the run itself found it cannot go on; its files are kept
            fail(str(err), code=1)
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper


def follow_hydra_run_dir(cfg) -> None:
    """``hydra.run.dir=X`` on the command line means "write this run to X": make ``run_dir``
    X too, so Hydra's files and r1kit's outputs are not split over two directories."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.RUN:
        return  # a sweep's jobs each get run_dir/subdir from the sweep settings
    given = [o.split("=", 1)[1] for o in hydra_cfg.overrides.hydra if o.startswith("hydra.run.dir=")]
    if not given:
        return
    wanted = Path(hydra_cfg.runtime.output_dir)
    user_run_dir = any(o.startswith("run_dir=") for o in hydra_cfg.overrides.task)
    if user_run_dir and Path(cfg.run_dir).resolve() != wanted.resolve():
        raise ConfigError(f"hydra.run.dir={given[0]} and run_dir={cfg.run_dir} disagree; "
                          "give one of them (run_dir sets both)")
    cfg.run_dir = str(wanted)
