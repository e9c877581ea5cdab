"""The errors a new user meets daily: one line naming the problem (and the nearest valid
name), before anything expensive, and no run directory left behind."""

import textwrap

import pytest

from r1kit.plugin.manager import create_plugin_manager
from r1kit.plugin.registry import PluginError
from tests.conftest import run_cli


@pytest.mark.parametrize("args,message", [
    (["reward=[acuracy,format]"],
     "r1kit: error: reward=acuracy: no such reward (did you mean 'accuracy'?); valid: "),
    (["sampler=vlm"], "r1kit: error: sampler=vlm: no such sampler (did you mean 'vllm'?)"),
    (["+experiment=r1_zer"], "(did you mean 'r1_zero'?)"),
    (["reward.accuracy.workers=0"], "r1kit: error: reward.accuracy.workers must be >= 1, got 0"),
    (["reward=[code]", "reward.code.isolation=bogus"],
     "r1kit: error: reward.code.isolation must be one of"),
    (["+experiment=r1_zero", "reward=[accuracy]", "+reward.format.weight=2"],
     "r1kit: error: reward.format: options are set for reward 'format', which is not selected"),
    (['data.template="Q: {prompt} A: <answer>"'],
     "the format reward could never be earned"),
])
def test_bad_command_fails_in_one_line_and_leaves_no_run_directory(args, message, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(*args, f"run_dir={run_dir}", timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert not run_dir.exists()


def test_a_rejected_command_keeps_a_run_directory_that_holds_a_run(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "rl").mkdir(parents=True)  # an earlier run's stage, to be resumed later
    result = run_cli("reward.accuracy.workers=0", f"run_dir={run_dir}", timeout=120)
    assert result.returncode == 2
    assert (run_dir / "rl").is_dir()


def test_hydra_run_dir_is_where_the_outputs_go(tmp_path):
    out = tmp_path / "chosen"
    result = run_cli("pipeline=grpo", "model=tiny", "data=arithmetic", "trainer.max_steps=1",
                     "data.batch_size=2", "algo.group_size=2", "sampler.max_new_tokens=4",
                     "eval.every=0", "data.val_size=2", "eval.k=1",
                     "trainer.enable_progress_bar=false", f"hydra.run.dir={out}", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "rl" / "manifest.json").exists() and (out / "config.yaml").exists()


def test_hydra_run_dir_and_a_different_run_dir_are_refused(tmp_path):
    result = run_cli(f"hydra.run.dir={tmp_path / 'a'}", f"run_dir={tmp_path / 'b'}", timeout=120)
    assert result.returncode == 2
    assert "disagree" in result.stderr


def test_a_misspelled_hook_fails_at_load_naming_the_plugin_and_the_hook(tmp_path, monkeypatch):
    (tmp_path / "typo_plugin.py").write_text(textwrap.dedent("""
        from r1kit import hookimpl

        @hookimpl
        def r1kit_register_reward(register):
            register("never", lambda completions, examples: [0.0] * len(completions))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import typo_plugin

    with pytest.raises(PluginError, match=r"plugin typo_plugin: .*'r1kit_register_reward' is no "
                                          r"r1kit hook \(did you mean 'r1kit_register_rewards'"):
        create_plugin_manager(autoload=False, extra_plugins=(typo_plugin,))
