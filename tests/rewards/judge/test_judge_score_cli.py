"""``python -m r1kit score 'reward=[judge]'`` on a JSONL, against the stub server: the judge's
scores in the output, and a second run answered by the cache alone."""

import json

from tests.conftest import run_cli
from tests.rewards.judge.judge_stub import StubJudgeServer


def test_score_cli_judges_a_jsonl_and_caches(tmp_path):
    rows = [{"prompt": "Capital of France?", "reference": "Paris", "completion": "Paris."},
            {"prompt": "Capital of Italy?", "reference": "Rome", "completion": "Milan."},
            {"prompt": "[ramble] Capital?", "reference": "Rome", "completion": "Rome."}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with StubJudgeServer() as stub:
        args = ["score", "reward=[judge]", "reward.judge.backend=openai",
                "reward.judge.model=stub", f"reward.judge.base_url={stub.url}",
                f"reward.judge.cache={tmp_path / 'cache.sqlite'}", f"input={src}",
                f"output={out}", "progress=false"]
        result = run_cli(*args, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        scored = [json.loads(line) for line in out.open()]
        assert [r["rewards"]["judge"] for r in scored] == [1.0, 0.0, None]
        # what the judge cost and could not score, on stderr
        assert ("judge calls=3, cache_hits=0, failures=1, failures/unparseable=1"
                in result.stderr), result.stderr
        assert len(stub.requests) == 3
        again = run_cli(*args, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        assert len(stub.requests) == 3  # every reply came from the cache
        assert "judge calls=0, cache_hits=3" in again.stderr
        assert [json.loads(line) for line in out.open()] == scored

        bad = run_cli("score", "reward=[judge]", "reward.judge.backend=openai",
                      "reward.judge.model=stub", f"input={src}", f"output={out}", timeout=300)
        assert bad.returncode != 0 and "reward.judge.base_url" in bad.stderr
