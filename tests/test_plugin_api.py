"""Every plugin kind can be written from ``r1kit.api`` alone.

This module is itself a plugin: one object of each kind, written with nothing from r1kit but
``r1kit.api`` (``r1kit.plugin.manager`` only installs it, as an embedding application would).
The tests register it, call each object through the registry and check it against its Protocol.
"""

import ast
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from r1kit.plugin import manager as pluginmanager
from r1kit.api import (AdvantageFn, CodeRunner, CodeRunnerFactory, ConfigError, DatasetFn,
                       FilterFn, Generation, JudgeBackend, JudgeBackendFactory, JudgeFailure,
                       Register, RewardFn, Rollout, Sampler, SamplerCapabilities,
                       SamplerFactory, full_response, hookimpl, plugin_options)

PLUGIN = "api_example"

# ---------------------------------------------------------------------------------------------
# reward: the boxed answer of the whole response, prompt's opening included
# ---------------------------------------------------------------------------------------------


@dataclass
class ExactAnswerOptions:
    #: Score of a well-formed response with a wrong answer.
    wrong: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.wrong < 1.0:
            raise ConfigError(f"reward.exact_answer.wrong: must be in [0, 1), got {self.wrong}")


def exact_answer(completions: list[str], examples: list[dict],
                 options: ExactAnswerOptions) -> list[float | None]:
    scores: list[float | None] = []
    for completion, example in zip(completions, examples, strict=True):
        if "answer" not in example:
            scores.append(None)
            continue
        response = full_response(example["rendered_prompt"], completion)
        if not (response.startswith("<think>") and "</think>" in response):
            scores.append(0.0)
        else:
            right = response.endswith(f"<answer>{example['answer']}</answer>")
            scores.append(1.0 if right else options.wrong)
    return scores


# ---------------------------------------------------------------------------------------------
# sampler: "generates" each prompt's last token over and over
# ---------------------------------------------------------------------------------------------


@dataclass
class RepeatOptions:
    max_new_tokens: int = 3


class RepeatSampler:
    capabilities = SamplerCapabilities(exact_logprobs=True)

    def __init__(self, model: torch.nn.Module, max_new_tokens: int) -> None:
        self.model, self.max_new_tokens, self.logprobs = model, max_new_tokens, False

    def generate(self, prompt_ids: list[list[int]], num_samples: int, *,
                 greedy: bool = False) -> Generation:
        ids = [[p[-1]] * self.max_new_tokens for p in prompt_ids for _ in range(num_samples)]
        return Generation(completion_ids=ids, truncated=[True] * len(ids),
                          logprobs=[[0.0] * len(c) for c in ids] if self.logprobs else None,
                          logprobs_exact=self.logprobs)

    def sync_weights(self, model: torch.nn.Module) -> None:
        self.model = model

    def request_logprobs(self, wanted: bool) -> None:
        self.logprobs = wanted


def repeat_sampler(model: torch.nn.Module, tokenizer, options: RepeatOptions) -> RepeatSampler:
    return RepeatSampler(model, options.max_new_tokens)


# ---------------------------------------------------------------------------------------------
# advantage, filter, dataset
# ---------------------------------------------------------------------------------------------


def centred(rewards: torch.Tensor, group_ids: torch.Tensor, options) -> torch.Tensor:
    """Reward minus the mean reward of its group."""
    _, index = torch.unique(group_ids, return_inverse=True)
    sums = torch.zeros(int(index.max()) + 1).index_add_(0, index, rewards)
    counts = torch.bincount(index).float()
    return rewards - (sums / counts)[index]


@dataclass
class MinRewardOptions:
    threshold: float = 0.5


def min_reward(rollout: Rollout, options: MinRewardOptions) -> Rollout:
    """Keep the completions whose reward reaches ``threshold``."""
    keep = rollout.rewards >= options.threshold
    return rollout.select(keep.nonzero().flatten())


@dataclass
class SquaresOptions:
    num_rows: int = 8


def squares(split: str, seed: int, options: SquaresOptions) -> list[dict]:
    """``What is n squared?`` for distinct n drawn from the seed; val rows differ from train's."""
    num_rows = options.num_rows
    numbers = random.Random(seed).sample(range(1, 1000), 2 * num_rows)
    picked = numbers[:num_rows] if split == "train" else numbers[num_rows:]
    return [{"prompt": f"What is {n} squared?", "answer": str(n * n)} for n in picked]


# ---------------------------------------------------------------------------------------------
# code runner: POSIX shell programs
# ---------------------------------------------------------------------------------------------


class ShellRunner(CodeRunner):
    fence_tags = ("sh", "shell")
    smoke_program = "echo ok"

    def prepare(self, source: str, workdir: Path) -> list[str]:
        (workdir / "main.sh").write_text(source, encoding="utf-8")
        return ["sh", "main.sh"]


# ---------------------------------------------------------------------------------------------
# judge backend: CORRECT when the response quotes the reference; a failure on "???"
# ---------------------------------------------------------------------------------------------


class QuotingJudge:
    identity = "quoting-judge v1"

    def __init__(self, options) -> None:
        self.options = options

    def complete(self, conversations: list[list[dict]]) -> list:
        replies = []
        for conversation in conversations:
            text = conversation[-1]["content"]
            reference = text.split("Reference answer:\n")[1].split("\n")[0]
            response = text.split("Response:\n")[1].split("\n")[0]
            if response == "???":
                replies.append(JudgeFailure("backend_error", "cannot read it"))
            else:
                replies.append("Verdict: " + ("CORRECT" if reference in response
                                              else "INCORRECT"))
        return replies


# ---------------------------------------------------------------------------------------------
# the registration hooks
# ---------------------------------------------------------------------------------------------

#: every ``register`` this plugin was handed, by hook
RECEIVED: dict[str, object] = {}


@hookimpl
def r1kit_register_rewards(register: Register[RewardFn]) -> None:
    RECEIVED["reward"] = register
    register("exact_answer", exact_answer, schema=ExactAnswerOptions)


@hookimpl
def r1kit_register_samplers(register: Register[SamplerFactory]) -> None:
    RECEIVED["sampler"] = register
    register("repeat", repeat_sampler, schema=RepeatOptions)


@hookimpl
def r1kit_register_advantages(register: Register[AdvantageFn]) -> None:
    RECEIVED["advantage"] = register
    register("centred", centred)


@hookimpl
def r1kit_register_filters(register: Register[FilterFn]) -> None:
    RECEIVED["filter"] = register
    register("min_reward", min_reward, schema=MinRewardOptions)


@hookimpl
def r1kit_register_datasets(register: Register[DatasetFn]) -> None:
    RECEIVED["dataset"] = register
    register("squares", squares, schema=SquaresOptions)


@hookimpl
def r1kit_register_code_runners(register: Register[CodeRunnerFactory]) -> None:
    RECEIVED["code_runner"] = register
    register("sh", ShellRunner)


@hookimpl
def r1kit_register_judge_backends(register: Register[JudgeBackendFactory]) -> None:
    RECEIVED["judge_backend"] = register
    register("quoting", QuotingJudge)


#: kind -> (registered name, object, the Protocol it must satisfy)
REGISTERED = {"reward": ("exact_answer", exact_answer, RewardFn),
              "sampler": ("repeat", repeat_sampler, SamplerFactory),
              "advantage": ("centred", centred, AdvantageFn),
              "filter": ("min_reward", min_reward, FilterFn),
              "dataset": ("squares", squares, DatasetFn),
              "code_runner": ("sh", ShellRunner, CodeRunnerFactory),
              "judge_backend": ("quoting", QuotingJudge, JudgeBackendFactory)}


# ---------------------------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry():
    RECEIVED.clear()
    yield pluginmanager.install(autoload=False, extra_plugins=((PLUGIN, sys.modules[__name__]),))
    pluginmanager.reset()


def test_this_module_imports_nothing_of_r1kit_but_the_api():
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {f"{node.module}.{alias.name}" if node.module in ("r1kit", "r1kit.plugin")
                else node.module
                for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert {m for m in modules if m.split(".")[0] == "r1kit"} == {"r1kit.api",
                                                                 "r1kit.plugin.manager"}


def test_every_kind_is_registered_by_this_plugin(registry):
    assert set(REGISTERED) == set(pluginmanager.KINDS)
    for kind, (name, obj, protocol) in REGISTERED.items():
        entry = registry.get(kind, name)
        assert (entry.obj, entry.plugin) == (obj, PLUGIN)
        assert isinstance(entry.obj, protocol), (kind, name)
        assert isinstance(RECEIVED[kind], Register), kind


def test_reward(registry):
    reward = registry.get("reward", "exact_answer").obj
    rows = [{"prompt": "1+1?", "answer": "2", "rendered_prompt": "User: 1+1? Assistant: <think>"},
            {"prompt": "1+1?", "answer": "2", "rendered_prompt": "Question: 1+1?"},
            {"prompt": "hello", "rendered_prompt": "hello"}]
    completions = ["1+1=2</think><answer>2</answer>", "<think>x</think><answer>3</answer>", "hi"]
    assert reward(completions, rows, plugin_options("reward", "exact_answer")) == [1.0, 0.0, None]
    options = plugin_options("reward", "exact_answer", wrong=0.25)
    assert isinstance(options, ExactAnswerOptions) and options.weight == 1.0  # common fields too
    assert reward(completions, rows, options) == [1.0, 0.25, None]
    with pytest.raises(ConfigError, match=r"reward\.exact_answer\.wrong"):
        plugin_options("reward", "exact_answer", wrong=2.0)


def test_sampler(registry):
    factory = registry.get("sampler", "repeat").obj
    policy, newer = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    sampler = factory(policy, None, plugin_options("sampler", "repeat", max_new_tokens=2))
    assert plugin_options("sampler", "repeat").max_new_tokens == 3  # the schema's own default
    assert isinstance(sampler, Sampler) and sampler.capabilities.exact_logprobs
    generation = sampler.generate([[5, 6], [7]], 2)
    assert generation.completion_ids == [[6, 6], [6, 6], [7, 7], [7, 7]]  # prompt-major
    assert generation.logprobs is None and not generation.logprobs_exact
    sampler.request_logprobs(True)
    assert sampler.generate([[1]], 1).logprobs_exact
    sampler.sync_weights(newer)
    assert sampler.model is newer


def test_sampler_protocol_checks_the_members():
    class Incomplete:  # no capabilities, no request_logprobs
        def generate(self, prompt_ids, num_samples, *, greedy=False): ...

        def sync_weights(self, model): ...

    assert not isinstance(Incomplete(), Sampler) and not isinstance(object(), Sampler)


def test_advantage(registry):
    advantage = registry.get("advantage", "centred").obj
    rewards, groups = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.5]), torch.tensor([0, 0, 3, 3, 7])
    assert torch.equal(advantage(rewards, groups, plugin_options("advantage", "centred")),
                       torch.tensor([0.5, -0.5, 0.0, 0.0, 0.0]))


def test_filter(registry):
    keep = registry.get("filter", "min_reward").obj
    rollout = Rollout(examples=[{}] * 4, prompts=["p"] * 4, completions=["a", "b", "c", "d"],
                      prompt_ids=[[1]] * 4, completion_ids=[[2], [3], [4], [5]],
                      group_ids=torch.tensor([0, 0, 1, 1]), truncated=torch.zeros(4, dtype=bool),
                      rewards=torch.tensor([1.0, 0.2, 0.6, 0.0]))
    kept = keep(rollout, plugin_options("filter", "min_reward", threshold=0.5))
    assert kept.completions == ["a", "c"] and kept.group_ids.tolist() == [0, 1]
    assert len(rollout) == 4  # the input is left as it was


def test_dataset(registry):
    dataset = registry.get("dataset", "squares").obj
    options = plugin_options("data", "squares", num_rows=5)
    train, val = dataset("train", 3, options), dataset("val", 3, options)
    assert len(train) == len(val) == 5 and train == dataset("train", 3, options)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in val}
    assert all(int(r["answer"]) == int(r["prompt"].split()[2]) ** 2 for r in train + val)


def test_code_runner_runs_in_the_code_reward(registry, tmp_path):
    runner = registry.get("code_runner", "sh").obj()
    assert isinstance(runner, CodeRunner)
    command = runner.prepare("echo hi", tmp_path)
    assert subprocess.run(command, cwd=tmp_path, capture_output=True, text=True).stdout == "hi\n"
    # the built-in ``code`` reward finds the runner by its language, in the installed registry
    code = registry.get("reward", "code").obj
    program = "```sh\nread x; echo $((x * x))\n```"
    scores = code([program, program], [{"tests": [{"input": "7\n", "output": "49"}]},
                                       {"tests": [{"input": "7\n", "output": "48"}]}],
                  plugin_options("reward", "code", language="sh", isolation="none"))
    assert scores == [1.0, 0.0]


def test_judge_backend_serves_the_judge_reward(registry):
    backend = registry.get("judge_backend", "quoting").obj(None)
    assert isinstance(backend, JudgeBackend)
    judge = registry.get("reward", "judge").obj
    rows = [{"prompt": "Capital of France?", "reference": "Paris", "rendered_prompt": "Q"}] * 3
    options = plugin_options("reward", "judge", backend="quoting", model="-", cache=None)
    assert judge(["<think>hm</think>It is Paris.", "Lyon", "???"], rows, options) == [
        1.0, 0.0, None]  # the failed request is not scored
