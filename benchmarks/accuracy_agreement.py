"""How often the ``accuracy`` reward agrees with math-verify and with the expected verdicts.

Reads the graded answer pairs of tests/rewards/data/answer_pairs.jsonl, puts each prediction in
an R1 completion (``<think>…</think><answer>PRED</answer>``), and scores it with

* the reward as it is now (``r1kit.rewards.accuracy``),
* the reward as it was at ``--old-rev`` (loaded from git; skipped with ``--old-rev ''``),
* math-verify called directly: ``verify(parse(gold), parse(pred))``, default extraction.

It prints each one's agreement with the expected verdicts and with math-verify direct, by class,
then every row where the new reward disagrees with either, and finally how well each way of
reading a bare reference answer (no ``$``, no box) does, which is how the reward's choice of
reading was made.

    python benchmarks/accuracy_agreement.py
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import types
from collections import defaultdict
from pathlib import Path
from r1kit.api import plugin_options

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "rewards" / "data" / "answer_pairs.jsonl"
# The last commit whose reward extracted with r1kit.rewards.answer.extract_answer and boxed
# bare text before math-verify parsed it.
OLD_REV = "5ef297d"


def completion(prediction: str) -> str:
    return f"<think>Let me work it out.</think><answer>{prediction}</answer>"


def load_rows(path: Path = CORPUS) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def new_verdicts(rows: list[dict]) -> list[bool]:
    from r1kit.rewards.accuracy import accuracy_reward

    scores = accuracy_reward([completion(r["prediction"]) for r in rows],
                             [{"answer": r["gold"]} for r in rows], plugin_options("reward", "accuracy"))
    return [score == 1.0 for score in scores]


def direct_verdicts(rows: list[dict]) -> list[bool]:
    """math-verify as its README calls it (main thread: its own signal timeouts work here)."""
    from math_verify import parse, verify

    return [verify(parse(r["gold"]), parse(r["prediction"])) for r in rows]


def old_verdicts(rows: list[dict], rev: str) -> list[bool]:
    """The reward at ``rev``, its math-verify calls run in this process.

    Its worker processes would import the *current* module's worker entry point, so its
    ``_verify_in_workers`` is replaced by a direct loop (no row here needs a time limit).
    """
    source = subprocess.run(["git", "show", f"{rev}:r1kit/rewards/accuracy.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("r1kit_old_accuracy")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"{rev}:r1kit/rewards/accuracy.py", "exec"), module.__dict__)
    module._verify_in_workers = lambda jobs, timeout, workers: [
        module.math_verify_equal(gold, pred) for gold, pred in jobs]
    # an old revision's reward took its options as keywords (all defaults here)
    scores = module.accuracy_reward([completion(r["prediction"]) for r in rows],
                                    [{"answer": r["gold"]} for r in rows])
    return [score == 1.0 for score in scores]


def agreement(a: list[bool], b: list[bool]) -> str:
    same = sum(x == y for x, y in zip(a, b, strict=True))
    return f"{same}/{len(a)} ({100 * same / len(a):.1f}%)"


def print_table(rows: list[dict], verdicts: dict[str, list[bool]]) -> None:
    expected = [r["expected"] for r in rows]
    direct = verdicts["math-verify direct"]
    print("| scorer | agrees with expected | agrees with math-verify direct |")
    print("|---|---|---|")
    for name, values in verdicts.items():
        print(f"| {name} | {agreement(values, expected)} | {agreement(values, direct)} |")
    print()
    for name, values in verdicts.items():
        if name == "math-verify direct":
            continue
        right = [i for i, (d, e) in enumerate(zip(direct, expected)) if d == e]
        wrong = [i for i in range(len(rows)) if i not in right]
        print(f"{name}: expected verdict on {sum(values[i] == expected[i] for i in right)}"
              f"/{len(right)} rows where math-verify direct gives it, on "
              f"{sum(values[i] == expected[i] for i in wrong)}/{len(wrong)} where it does not")
    print()
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_class[row["class"]].append(i)
    print("| class | rows | " + " | ".join(f"{name} = expected" for name in verdicts) + " |")
    print("|---|---|" + "---|" * len(verdicts))
    for cls, idx in by_class.items():
        cells = [str(sum(values[i] == expected[i] for i in idx)) for values in verdicts.values()]
        print(f"| {cls} | {len(idx)} | " + " | ".join(cells) + " |")
    print()


def print_disagreements(rows: list[dict], verdicts: dict[str, list[bool]]) -> None:
    new, direct = verdicts["reward (new)"], verdicts["math-verify direct"]
    print("Rows where the new reward disagrees with the expected verdict or math-verify direct:")
    print("| class | gold | prediction | expected | reward | math-verify direct |")
    print("|---|---|---|---|---|---|")
    for row, n, d in zip(rows, new, direct, strict=True):
        if n != row["expected"] or n != d:
            print(f"| {row['class']} | `{row['gold']}` | `{row['prediction']}` | "
                  f"{row['expected']} | {n} | {d} |")
    print()


def print_gold_readings(rows: list[dict]) -> None:
    """For bare reference answers: which reading of the gold gives the expected verdicts.

    The prediction is read by the reward's :func:`parse_answer` throughout; only the gold's
    reading varies.
    """
    from math_verify import parse, verify

    from r1kit.rewards.accuracy import _DELIMITED, _extraction_targets, answer_text, parse_answer
    from r1kit.rewards.answer import ends_in_open_box

    # Truncated predictions never reach math-verify; a cold-start reference is read by its block.
    bare = [r for r in rows if not _DELIMITED.search(r["gold"]) and "<answer>" not in r["gold"]
            and not ends_in_open_box(r["prediction"])]
    def read(text: str) -> list:
        return parse(text, _extraction_targets(), parsing_timeout=None)

    readings = {
        "as is": read,
        "in $…$": lambda gold: read(f"${gold}$"),
        "in \\boxed{}": lambda gold: read(f"\\boxed{{{gold}}}"),
        "parse_answer (the reward's)": parse_answer,
    }
    print(f"Reading a bare gold ({len(bare)} rows), prediction read by parse_answer:")
    print("| gold read | agrees with expected |")
    print("|---|---|")
    for name, read_gold in readings.items():
        verdicts = [verify(read_gold(r["gold"]), parse_answer(answer_text(r["prediction"])))
                    for r in bare]
        print(f"| {name} | {agreement(verdicts, [r['expected'] for r in bare])} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--old-rev", default=OLD_REV,
                        help="git revision of the old reward ('' to skip it)")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeouts disabled" warnings

    rows = load_rows(args.corpus)
    verdicts = {"reward (new)": new_verdicts(rows)}
    if args.old_rev:
        verdicts[f"reward (old, {args.old_rev})"] = old_verdicts(rows, args.old_rev)
    verdicts["math-verify direct"] = direct_verdicts(rows)
    print(f"{len(rows)} answer pairs from {args.corpus.relative_to(ROOT)}\n")
    print_table(rows, verdicts)
    print_disagreements(rows, verdicts)
    print_gold_readings(rows)


if __name__ == "__main__":
    main()
