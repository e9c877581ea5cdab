"""Registers the ``code`` reward and the built-in Python runner, the way any plugin would."""

from r1kit import hookimpl
from r1kit.rewards.code.reward import CodeRewardOptions, code_reward
from r1kit.rewards.code.runners import PythonRunner


@hookimpl
def r1kit_register_rewards(register):
    register("code", code_reward, schema=CodeRewardOptions)


@hookimpl
def r1kit_register_code_runners(register):
    register("python", PythonRunner)
