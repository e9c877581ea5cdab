"""Registration through the public plugin path, options, and backend selection (no sandbox)."""

import logging

import pytest
from code_reward_helpers import code_registry

import r1kit
from r1kit.plugin.registry import UnknownPluginError
from r1kit.rewards.code import isolation, reward
from r1kit.rewards.code.isolation import SandboxUnavailableError, select_isolation
from r1kit.rewards.code.reward import CodeRewardOptions, code_reward
from r1kit.rewards.code.runners import CodeRunner, PythonRunner
from r1kit.api import plugin_options


def test_registers_reward_and_python_runner():
    registry = code_registry()
    entry = registry.get("reward", "code")
    assert entry.obj is code_reward and entry.schema is CodeRewardOptions
    assert entry.provider == f"r1kit {r1kit.__version__}"
    assert entry.plugin == "r1kit.rewards.code.plugin"
    runner = registry.get("code_runner", "python").obj()
    assert isinstance(runner, PythonRunner) and isinstance(runner, CodeRunner)


def test_unknown_language_lists_the_registered_runners():
    with pytest.raises(UnknownPluginError, match="python"):
        code_reward(["x"], [{"test_code": "assert True"}],
                    plugin_options("reward", "code", language="cobol"))


def test_a_runner_plugin_is_used_by_language_name(monkeypatch, tmp_path):
    class Shell(CodeRunner):
        fence_tags = ("sh",)

        def prepare(self, source, workdir):
            (workdir / "main.sh").write_text(source)
            return ["sh", "main.sh"]

    registry = code_registry()
    registry.add("code_runner", "sh", Shell, provider="test", plugin="test")
    monkeypatch.setattr(reward, "get_registry", lambda: registry)
    scores = code_reward(["```sh\nread x; echo $((x * 2))\n```"], [{"tests": [{"input": "21\n", "output": "42"}]}],
                         plugin_options("reward", "code", language="sh", isolation="none"))
    assert scores == [1.0]


@pytest.mark.parametrize("bad", [dict(isolation="docker"), dict(workers=0), dict(max_tests=0),
                                 dict(time_limit=0), dict(memory_mb=-1), dict(no_such_option=1)])
def test_bad_options_fail_before_running_anything(bad):
    with pytest.raises((ValueError, TypeError)):
        code_reward(["x"], [{"test_code": "assert True"}], plugin_options("reward", "code", **bad))


def test_options_avoid_the_common_reward_keys():
    # weight, timeout, on_error, ... belong to every reward's config node and are not passed on
    schema = pytest.importorskip("r1kit.config.schema")
    common = set(schema.RewardCommon.__dataclass_fields__) | {"weight", "timeout", "on_error"}
    assert not set(CodeRewardOptions.__dataclass_fields__) & common


def test_no_working_backend_refuses_to_run_code(monkeypatch):
    monkeypatch.setattr(isolation, "probe", lambda name: f"{name} is broken in this test")
    with pytest.raises(SandboxUnavailableError, match="isolation=none") as err:
        select_isolation("auto")
    assert "bwrap is broken" in str(err.value) and "unshare is broken" in str(err.value)
    with pytest.raises(SandboxUnavailableError):
        code_reward(["```python\nprint(1)\n```"], [{"tests": [{"input": "", "output": "1"}]}],
                    plugin_options("reward", "code"))
    with pytest.raises(SandboxUnavailableError, match="bwrap is broken"):
        select_isolation("bwrap")


def test_rows_without_tests_need_no_sandbox(monkeypatch):
    monkeypatch.setattr(isolation, "probe", lambda name: "broken")
    assert code_reward(["```python\nprint(1)\n```", "no code"], [{}, {"tests": "[]"}],
                       plugin_options("reward", "code")) == [
        None, None]
    # a completion without a program scores 0 without running anything either
    assert code_reward(["no code"], [{"test_code": "assert True"}],
                       plugin_options("reward", "code")) == [0.0]


def test_isolation_none_warns_loudly(caplog):
    isolation._warn_unisolated.cache_clear()
    with caplog.at_level(logging.WARNING, logger="r1kit.rewards.code.isolation"):
        assert select_isolation("none").name == "none"
    assert "WITHOUT a sandbox" in caplog.text


def test_interpreter_outside_usr_is_shown_to_the_sandbox(tmp_path):
    assert PythonRunner().host_paths() == ()
    assert PythonRunner("/usr/bin/python3").host_paths() == ()
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to("/usr/bin/python3")
    assert PythonRunner(str(venv / "python")).host_paths() == (str(tmp_path / "venv"),)


def test_a_runner_that_cannot_run_fails_loudly_not_as_zero_rewards(monkeypatch):
    # e.g. no interpreter in the sandbox: every program would fail and score a silent 0.0
    class Missing(PythonRunner):
        smoke_program = "print('ok')"

        def __init__(self):
            super().__init__(interpreter="no-such-python")

    registry = code_registry()
    registry.add("code_runner", "broken", Missing, provider="test", plugin="test")
    monkeypatch.setattr(reward, "get_registry", lambda: registry)
    with pytest.raises(SandboxUnavailableError, match="'broken' runner does not work"):
        code_reward(["```python\nprint(1)\n```"], [{"tests": [{"input": "", "output": "1"}]}],
                    plugin_options("reward", "code", language="broken", isolation="none"))
