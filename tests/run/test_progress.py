"""r1kit.run.progress: counts, rate and ETA; redrawn on a terminal, a line per N% in logs."""

import io

from r1kit.run.progress import Progress, progress_enabled


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_logs_get_a_start_line_and_one_line_per_step_of_percent():
    out, clock = io.StringIO(), Clock()
    with Progress(200, label="r1kit rs", unit="prompts", counters=("kept",), stream=out,
                  every_percent=25, clock=clock) as progress:
        for _ in range(20):  # 10 prompts every 5 s, 3 kept each time
            clock.now += 5
            progress.advance(10, kept=3)
    lines = out.getvalue().splitlines()
    assert lines[0] == ("r1kit rs: 0/200 prompts (0%) · kept 0 · - prompts/s · elapsed 0:00 · "
                        "ETA -")
    # 25%, 50%, 75%, 100%: one line each, not one per advance
    assert [line.split(" (")[1].split(")")[0] for line in lines[1:]] == ["25%", "50%", "75%",
                                                                         "100%"]
    assert lines[1] == ("r1kit rs: 50/200 prompts (25%) · kept 15 · 2 prompts/s · "
                        "elapsed 0:25 · ETA 1:15")
    assert lines[-1] == "r1kit rs: 200/200 prompts (100%) · kept 60 · 2 prompts/s · elapsed 1:40"


def test_an_advance_across_several_steps_prints_one_line():
    out = io.StringIO()
    progress = Progress(4, label="x", stream=out, every_percent=10, clock=Clock())
    progress.advance(3)  # 75%: crosses seven 10% steps
    progress.advance(1)
    assert len(out.getvalue().splitlines()) == 3  # start, 75%, 100%


def test_a_terminal_line_is_redrawn_in_place_at_most_every_interval_and_kept_at_the_end():
    out, clock = Terminal(), Clock()
    progress = Progress(100, label="r1kit eval", unit="rows", stream=out, min_interval=1.0,
                        clock=clock)
    for _ in range(10):
        clock.now += 0.25
        progress.advance(10)
    progress.close()
    text = out.getvalue()
    assert "\n" not in text.rstrip("\n") and text.endswith("\n")  # one line, redrawn
    draws = text.count("\r")
    assert draws == 1 + 2 + 1 + 1  # the first (0.25 s), a second later (1.25, 2.25), the last
    # (2.5 s, done), and close's final draw
    assert "100/100 rows (100%)" in text.split("\r")[-1] and "40 rows/s" in text


def test_disabled_or_empty_progress_prints_nothing():
    for progress in (Progress(10, label="x", stream=(out := io.StringIO()), enabled=False),
                     Progress(0, label="x", stream=(out := io.StringIO()))):
        progress.advance(5)
        progress.close()
        assert out.getvalue() == ""


def test_progress_follows_the_trainer_flag_and_rank_zero():
    assert progress_enabled({})  # Lightning's default: a progress bar
    assert progress_enabled({"enable_progress_bar": True})
    assert not progress_enabled({"enable_progress_bar": False})
    assert not progress_enabled({}, is_global_zero=False)


def test_score_reports_rows_scored_and_is_quiet_with_progress_false(tmp_path, capsys):
    import json

    from r1kit.cli.score import score_file
    from r1kit.plugin.manager import get_registry
    from tests.conftest import compose_config

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"completion": f"<answer>{i}</answer>"}) + "\n"
                           for i in range(5)))
    common = ["reward=[format]", f"input={src}", f"output={tmp_path / 'out.jsonl'}",
              "chunk_size=2"]
    score_file(compose_config(common, config_name="score"), get_registry())
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" · ")[0] for line in lines] == [
        "r1kit score: 0/5 rows (0%)", "r1kit score: 2/5 rows (40%)",
        "r1kit score: 4/5 rows (80%)", "r1kit score: 5/5 rows (100%)"]
    score_file(compose_config([*common, "progress=false"], config_name="score"), get_registry())
    assert capsys.readouterr().err == ""
