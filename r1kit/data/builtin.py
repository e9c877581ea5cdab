"""Registers the built-in dataset sources (the same path third-party datasets take)."""

from r1kit import hookimpl
from r1kit.data.arithmetic import ArithmeticOptions, arithmetic_dataset
from r1kit.data.hub import HubOptions, hub_dataset
from r1kit.data.jsonl import JsonlOptions, jsonl_dataset
from r1kit.data.mixture import MixtureOptions, mixture_dataset
from r1kit.data.stage_output import StageOutputOptions, stage_output_dataset


@hookimpl
def r1kit_register_datasets(register):
    register("arithmetic", arithmetic_dataset, schema=ArithmeticOptions)
    register("jsonl", jsonl_dataset, schema=JsonlOptions)
    register("hub", hub_dataset, schema=HubOptions)
    register("stage_output", stage_output_dataset, schema=StageOutputOptions)
    register("mixture", mixture_dataset, schema=MixtureOptions)
