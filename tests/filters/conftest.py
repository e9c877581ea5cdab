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


def takes_typed_options(entry):
    """A registered filter takes ``(rollout, options)``: its defaults live in its schema only."""
    params = list(inspect.signature(entry.obj).parameters.values())
    assert [p.name for p in params] == ["rollout", "options"], entry.name
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params), entry.name
    if entry.schema is not None:  # an options-free filter may default options to None
        assert params[1].default is inspect.Parameter.empty, entry.name


@pytest.fixture
def check_schema():
    return takes_typed_options
