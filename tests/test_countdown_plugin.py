"""The r1kit-countdown plugin package: the game, its reward and dataset, and installing it.

The unit tests import the package from its source tree; the slow test pip-installs it into a
fresh virtualenv and checks that r1kit finds it through its entry point, as a user would.
"""

import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "plugins" / "r1kit-countdown"
sys.path.insert(0, str(PLUGIN_DIR / "src"))

from r1kit_countdown import game, plugin  # noqa: E402
from r1kit_countdown.dataset import CountdownOptions, countdown_dataset  # noqa: E402
from r1kit_countdown.reward import answer_expression, countdown_reward  # noqa: E402

from r1kit.config.schema import ConfigError  # noqa: E402

EXAMPLE = {"prompt": "...", "numbers": [3, 7, 25], "target": 46, "answer": "7 * 3 + 25"}


# ---------------------------------------------------------------------------------------------
# The game
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("expression, value", [
    ("7 * 3 + 25", 46),
    ("-3 + 7", 4),
    ("(3 - 1/4) * 4", 11),  # fractional intermediates are fine
    ("1 / 3 * 3", 1),  # exact arithmetic, not 0.9999999999999999
    (" ( ( 25 ) ) ", 25),
    ("--3", 3),
])
def test_evaluate(expression, value):
    assert game.evaluate(game.parse(expression)) == Fraction(value)


@pytest.mark.parametrize("expression", [
    "__import__('os').system('echo pwned')",
    "2 ** 10",  # power
    "7 // 2",  # floor division
    "7 % 2",
    "x + 1",
    "3_0",  # ast reads 30
    "0x1e",
    "2.5",
    "1e3",
    "+3",  # unary plus is not in the rule set
    "[3, 7]",
    "(3, 7)",
    "3 7",
    "(3 + 7",
    "",
    "1 + " * 60 + "1",  # over the length cap
    "7 / (3 - 3)",
])
def test_rejects_everything_but_the_four_operators(expression):
    with pytest.raises(game.InvalidExpression):
        game.evaluate(game.parse(expression))


def test_never_evaluates_code(tmp_path):
    marker = tmp_path / "pwned"
    attack = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    assert not game.solves(attack, [3, 7, 25], 46)
    assert countdown_reward([f"<answer>{attack}</answer>"], [EXAMPLE], format_score=0.5) == [0.0]
    assert not marker.exists()


@pytest.mark.parametrize("expression, numbers, uses", [
    ("5 * 5 - 3", [5, 3, 5], True),  # repeated numbers each used as often as given
    ("5 * 3", [5, 3, 5], False),  # one 5 unused: exactly once means every number
    ("5 * 5 * 5 - 3", [5, 3, 5], False),
    ("53 - 5", [5, 3, 5], False),  # gluing digits makes another number
    ("-(7 - 3) + 25", [3, 7, 25], True),
])
def test_each_number_exactly_once(expression, numbers, uses):
    assert game.uses_numbers(game.parse(expression), numbers) is uses


def test_solves_within_tolerance():
    assert game.solves("5 / 2", [2, 5], 2.5)
    assert game.solves("(1 + 2) / 3", [1, 2, 3], 1.0000000001)
    assert not game.solves("(1 + 2) / 3", [1, 2, 3], 1.001)


@pytest.mark.parametrize("module", ["game", "reward"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"r1kit_countdown.{module}"))
    assert result.attempted and not result.failed


# ---------------------------------------------------------------------------------------------
# The reward
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("completion, score, with_format_score", [
    ("<think>7*3=21, 21+25=46</think><answer>7 * 3 + 25</answer>", 1.0, 1.0),
    ("<answer>(7*3)+25 = 46</answer>", 1.0, 1.0),  # an equation: its left side counts
    ("<answer>7 × 3 + 25</answer>", 1.0, 1.0),  # printed operators
    ("<answer>25 − 3 × 7</answer>", 0.0, 0.1),  # valid, wrong value
    ("<answer>7 * 3 + 26</answer>", 0.0, 0.1),  # valid, a number not given
    ("<answer>25 + 7 * 3 + 3</answer>", 0.0, 0.1),  # valid, 3 used twice
    ("<answer>3 + 7</answer> no, <answer>7 * 3 + 25</answer>", 1.0, 1.0),  # last block wins
    ("<answer>7 * 3 + 25</answer> no, <answer>3 + 7</answer>", 0.0, 0.1),
    ("<answer>7 * 3 + 25 is 46</answer>", 0.0, 0.0),  # not an expression: not well formed
    ("<answer>7 ** 3 + 25</answer>", 0.0, 0.0),
    ("<answer></answer>", 0.0, 0.0),
    ("7 * 3 + 25", 0.0, 0.0),  # no answer block
])
def test_reward(completion, score, with_format_score):
    assert countdown_reward([completion], [EXAMPLE]) == [score]
    assert countdown_reward([completion], [EXAMPLE], format_score=0.1) == [with_format_score]


def test_reward_does_not_apply_without_a_target():
    completions = ["<answer>1 + 1</answer>", "<answer>7 * 3 + 25</answer>"]
    assert countdown_reward(completions, [{"prompt": "1+1", "answer": "2"}, EXAMPLE]) == [None, 1.0]


def test_reward_option_is_checked():
    with pytest.raises(ConfigError, match=r"reward\.countdown\.format_score"):
        countdown_reward(["<answer>1</answer>"], [EXAMPLE], format_score=2.0)


def test_answer_expression():
    assert answer_expression("<think>x</think>") is None
    assert answer_expression("<answer>\n (25 − 7) ÷ 3 = 6 \n</answer>") == "(25 - 7) / 3"


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_numbers", [3, 4])
def test_dataset_rows_are_solvable_and_well_formed(num_numbers):
    options = dict(num_numbers=num_numbers, max_number=50, max_target=500, num_train=300,
                   num_val=40)
    train, val = countdown_dataset("train", 0, **options), countdown_dataset("val", 0, **options)
    assert (len(train), len(val)) == (300, 40)
    rows = train + val
    for row in rows:
        assert set(row) == {"prompt", "answer", "numbers", "target", "solution"}
        assert len(row["numbers"]) == num_numbers
        assert all(1 <= n <= 50 for n in row["numbers"])
        assert isinstance(row["target"], int) and 1 <= row["target"] <= 500
        assert row["prompt"].startswith(f"Using the numbers {row['numbers']}, create an equation "
                                        f"that equals {row['target']}.")
        assert row["solution"].endswith(f"<answer>{row['answer']}</answer>")
    # The reference answer and the worked solution both score 1.0.
    assert countdown_reward([f"<answer>{r['answer']}</answer>" for r in rows], rows) == [1.0] * 340
    assert countdown_reward([r["solution"] for r in rows], rows) == [1.0] * 340


def test_dataset_is_reproducible_and_splits_are_disjoint():
    options = dict(num_train=500, num_val=100)
    train = countdown_dataset("train", 1, **options)
    assert train == countdown_dataset("train", 1, **options)
    assert train != countdown_dataset("train", 2, **options)
    val = countdown_dataset("val", 1, **options)
    assert val == countdown_dataset("val", 1, num_train=20, num_val=100)  # val ignores num_train

    def key(row):
        return tuple(sorted(row["numbers"])), row["target"]
    assert len({key(r) for r in train + val}) == 600


def test_dataset_options_are_checked():
    with pytest.raises(ConfigError, match=r"data\.num_numbers"):
        CountdownOptions(num_numbers=1)
    with pytest.raises(ConfigError, match=r"data\.max_target"):
        CountdownOptions(num_numbers=4, min_number=50, max_target=100)
    with pytest.raises(ValueError, match="split"):
        countdown_dataset("test", 0, num_train=1, num_val=1)
    with pytest.raises(ValueError, match="distinct"):  # only 2x2 number pairs exist
        countdown_dataset("train", 0, num_numbers=2, min_number=1, max_number=2, num_train=50)


# ---------------------------------------------------------------------------------------------
# Through r1kit, in process: registered names, config composition and validation
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry():
    from hydra.core.config_store import ConfigStore

    from r1kit.pluginmanager import build_registry, create_plugin_manager

    # autoload off: the package may also be pip-installed here, which would register it twice
    yield build_registry(create_plugin_manager(autoload=False,
                                               extra_plugins=(("countdown", plugin),)))
    # _compose put the countdown options in Hydra's process-wide ConfigStore
    for group in ("reward", "data"):
        ConfigStore.instance().repo[group].pop("countdown.yaml", None)


def test_registers_a_reward_and_a_dataset(registry):
    reward, dataset = registry.get("reward", "countdown"), registry.get("dataset", "countdown")
    assert (reward.obj, dataset.obj) == (countdown_reward, countdown_dataset)
    assert dataset.schema is CountdownOptions
    assert (reward.plugin, dataset.plugin) == ("countdown", "countdown")


def _compose(registry, overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from r1kit.cli import CONF_DIR
    from r1kit.config.store import store_plugin_options

    store_plugin_options(registry)
    GlobalHydra.instance().clear()  # in case a test left Hydra initialized
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        # outside the CLI there is no Hydra runtime to name the run directory: give one
        return compose("config", overrides=[*overrides, "run_dir=/tmp/r1kit-compose"])


def test_composes_and_validates(registry):
    from r1kit.config.validate import validate

    # one GRPO stage: the embedded pipeline's rejection sampling keeps samples by `accuracy`
    cfg = _compose(registry, ["pipeline=grpo", "reward=[countdown,format]", "data=countdown",
                              "reward.countdown.format_score=0.1", "data.num_numbers=4"])
    assert cfg.data.name == "countdown" and cfg.data.num_numbers == 4
    assert set(cfg.reward) == {"countdown", "format"}
    assert cfg.reward.countdown.format_score == 0.1
    validate(cfg, registry)

    bad = _compose(registry, ["reward=[countdown]", "data=countdown", "data.num_numbers=9"])
    with pytest.raises(ConfigError, match=r"data\.num_numbers"):
        validate(bad, registry)


# ---------------------------------------------------------------------------------------------
# As a user installs it: pip install into a fresh virtualenv, found through the entry point
# ---------------------------------------------------------------------------------------------


def _run(args, **kwargs):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv(tmp_path):
    import site

    # Build from a copy: setuptools writes *.egg-info and build/ next to the sources.
    source = tmp_path / "r1kit-countdown"
    shutil.copytree(PLUGIN_DIR, source,
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = str(venv / "bin" / "python")
    # The new venv sees the packages of the environment running these tests (torch, r1kit,
    # setuptools, pip), after its own. Not --system-site-packages: when that environment is
    # itself a venv, it would show the base interpreter's packages instead, which may hold other
    # versions of r1kit's dependencies. addsitedir also runs that environment's .pth files,
    # which is what makes an editable r1kit importable.
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib.strip(), "_r1kit_test_outer.pth").write_text(
        f"import site; list(map(site.addsitedir, {outer!r}))\n")

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "R1KIT_DISABLE_PLUGIN_AUTOLOAD", "R1KIT_BLOCK_PLUGINS")}
    _run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
          "--disable-pip-version-check", "--quiet", str(source)], env=env, cwd=tmp_path)

    # cwd is outside the repository, so r1kit_countdown can only come from the installed wheel.
    listing = _run([python, "-m", "r1kit.plugins"], env=env, cwd=tmp_path)
    rows = {tuple(re.split(r"\s{2,}", line.strip())) for line in listing.splitlines()}
    for kind in ("reward", "dataset"):
        assert (kind, "countdown", "r1kit-countdown 0.1.0", "countdown") in rows, listing
    assert ("reward", "accuracy", "r1kit 0.1.0", "r1kit.rewards.accuracy") in rows, listing

    printed = _run([python, "-m", "r1kit", "reward=[countdown,format]", "data=countdown",
                    "--cfg", "job"], env=env, cwd=tmp_path)
    cfg = yaml.safe_load(printed)
    assert set(cfg["reward"]) == {"countdown", "format"}
    assert cfg["reward"]["countdown"]["format_score"] == 0.0
    assert cfg["data"]["name"] == "countdown" and cfg["data"]["num_numbers"] == 3
