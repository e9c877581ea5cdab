import dataclasses
import inspect

import pytest
import torch

from r1kit.rollout.batch import Rollout


def build_rollout(completions, group_ids, *, rewards=None, truncated=None, completion_ids=None,
                  reward_parts=None):
    """A Rollout with only what filters look at filled in meaningfully."""
    n = len(completions)
    return Rollout(
        examples=[{"prompt": f"q{g}"} for g in group_ids],
        prompts=[f"q{g}" for g in group_ids],
        completions=list(completions),
        prompt_ids=[[g] for g in group_ids],
        completion_ids=completion_ids or [[1] * (i + 1) for i in range(n)],
        group_ids=torch.tensor(group_ids, dtype=torch.long),
        truncated=torch.tensor(truncated or [False] * n),
        rewards=None if rewards is None else torch.tensor(rewards, dtype=torch.float32),
        reward_parts={k: torch.tensor(v, dtype=torch.float32)
                      for k, v in (reward_parts or {}).items()},
    )


@pytest.fixture
def make_rollout():
    return build_rollout


def schema_matches_function(entry):
    """A registered filter's schema fields are exactly its keyword options, with equal defaults
    (a required option has no default in the function and ``???`` in the schema)."""
    params = {name: p.default for name, p in inspect.signature(entry.obj).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY}
    fields = {f.name: f.default for f in dataclasses.fields(entry.schema)} if entry.schema else {}
    assert params.keys() == fields.keys(), entry.name
    for name, default in params.items():
        expected = "???" if default is inspect.Parameter.empty else default
        assert fields[name] == expected, (entry.name, name)


@pytest.fixture
def check_schema():
    return schema_matches_function
