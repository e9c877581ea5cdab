"""The module r1kit loads through the ``r1kit`` entry point: it only registers things."""

from r1kit import hookimpl

from r1kit_countdown.dataset import CountdownOptions, countdown_dataset
from r1kit_countdown.reward import CountdownRewardOptions, countdown_reward


@hookimpl
def r1kit_register_datasets(register):
    register("countdown", countdown_dataset, schema=CountdownOptions)


@hookimpl
def r1kit_register_rewards(register):
    register("countdown", countdown_reward, schema=CountdownRewardOptions)
