"""Turn the typed ``reward`` group (name -> options) into the harness's reward specs."""

from __future__ import annotations

from r1kit.plugin.registry import Registry
from r1kit.rewards.harness import RewardSpec


def reward_specs(rewards: dict, registry: Registry) -> list[RewardSpec]:
    """One spec per selected reward; ``rewards`` maps each name to its typed options (an
    instance of the reward's schema with the common ``RewardCommon`` fields)."""
    specs = []
    for name, options in rewards.items():
        fn = registry.get("reward", name).obj
        if options.applies_to is not None:
            fn = routed(fn, options.applies_to)
        specs.append(RewardSpec(name=name, fn=fn, weight=options.weight, options=options,
                                timeout=options.timeout, on_error=options.on_error))
    return specs


def routed(fn, tasks):
    """``fn`` restricted to rows whose ``task`` is in ``tasks``; other rows get None."""
    tasks = set(tasks)

    def route(completions, examples, options):
        picked = [i for i, row in enumerate(examples) if row.get("task") in tasks]
        out = [None] * len(completions)
        if picked:
            values = fn([completions[i] for i in picked], [examples[i] for i in picked], options)
            for i, value in zip(picked, values):
                out[i] = value
        return out

    route.__name__ = getattr(fn, "__name__", "reward")
    route.__module__ = getattr(fn, "__module__", None)
    return route
