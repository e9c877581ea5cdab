"""``python -m r1kit score`` scores existing completions with the trainer's reward path."""

import json

from tests.conftest import run_cli


def test_scores_math_completions_and_writes_rewards_and_total(tmp_path):
    rows = [
        {"prompt": "1/2 as a decimal?", "answer": "0.5",
         "completion": "<think>half is one over two</think><answer>\\frac{1}{2}</answer>"},
        {"prompt": "2+2", "answer": "4", "completion": "<answer>5</answer>"},
        {"prompt": "no reference", "completion": "<think>hm</think><answer>7</answer> extra"},
    ]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_cli("score", "reward=[accuracy,format,language]", "reward.format.weight=0.5",
                     f"input={src}", f"output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    scored = [json.loads(line) for line in out.open()]
    assert [r["rewards"]["accuracy"] for r in scored] == [1.0, 0.0, None]
    assert [r["rewards"]["format"] for r in scored] == [1.0, 0.0, 0.0]
    assert scored[0]["reward"] == 1.0 + 0.5 * 1.0 + scored[0]["rewards"]["language"]
    assert scored[2]["prompt"] == "no reference"  # dataset fields are kept


def test_scores_code_completions_in_the_sandbox(tmp_path):
    tests = [{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4\n", "output": "6\n"}]
    good = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    hostile = "```python\nimport os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n```"
    rows = [{"prompt": "add", "tests": tests, "completion": good},
            {"prompt": "add", "tests": tests, "completion": hostile}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_cli("score", "reward=[code]", f"input={src}", f"output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [json.loads(line)["rewards"]["code"] for line in out.open()] == [1.0, 0.0]


def test_bad_input_file_is_named(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"completion": "x"}\nnot json\n')
    result = run_cli("score", "reward=[format]", f"input={src}", f"output={tmp_path / 'o.jsonl'}")
    assert result.returncode != 0 and f"{src}:2" in result.stderr
