"""The module r1kit loads through the ``r1kit`` entry point: it only registers things.

Like the rest of the package it imports from ``r1kit.api`` alone, the names r1kit keeps stable
for plugins; the annotations let a type checker check each object against its kind's Protocol.
"""

from r1kit.api import DatasetFn, Register, RewardFn, hookimpl

from r1kit_countdown.dataset import CountdownOptions, countdown_dataset
from r1kit_countdown.reward import CountdownRewardOptions, countdown_reward


@hookimpl
def r1kit_register_datasets(register: Register[DatasetFn]) -> None:
    register("countdown", countdown_dataset, schema=CountdownOptions)


@hookimpl
def r1kit_register_rewards(register: Register[RewardFn]) -> None:
    register("countdown", countdown_reward, schema=CountdownRewardOptions)
