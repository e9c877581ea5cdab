"""The ``countdown`` dataset: solvable, well-formed rows, reproducible and disjoint splits."""

import pytest

from r1kit.api import ConfigError
from r1kit_countdown.dataset import CountdownOptions, countdown_dataset
from r1kit_countdown.reward import countdown_reward
from r1kit.api import plugin_options


@pytest.mark.parametrize("num_numbers", [3, 4])
def test_dataset_rows_are_solvable_and_well_formed(num_numbers):
    options = dict(num_numbers=num_numbers, max_number=50, max_target=500, num_train=300,
                   num_val=40)
    train, val = countdown_dataset("train", 0,
                                   plugin_options("data", "countdown", **options)), countdown_dataset("val", 0, plugin_options("data", "countdown", **options))
    assert (len(train), len(val)) == (300, 40)
    rows = train + val
    for row in rows:
        assert set(row) == {"prompt", "answer", "numbers", "target", "solution"}
        assert len(row["numbers"]) == num_numbers
        assert all(1 <= n <= 50 for n in row["numbers"])
        assert isinstance(row["target"], int) and 1 <= row["target"] <= 500
        assert row["prompt"].startswith(f"Using the numbers {row['numbers']}, create an equation "
                                        f"that equals {row['target']}.")
        assert row["solution"].endswith(f"<answer>{row['answer']}</answer>")
    # The reference answer and the worked solution both score 1.0.
    assert countdown_reward([f"<answer>{r['answer']}</answer>" for r in rows], rows,
                            plugin_options("reward", "countdown")) == [1.0] * 340
    assert countdown_reward([r["solution"] for r in rows], rows,
                            plugin_options("reward", "countdown")) == [1.0] * 340


def test_dataset_is_reproducible_and_splits_are_disjoint():
    options = dict(num_train=500, num_val=100)
    train = countdown_dataset("train", 1, plugin_options("data", "countdown", **options))
    assert train == countdown_dataset("train", 1, plugin_options("data", "countdown", **options))
    assert train != countdown_dataset("train", 2, plugin_options("data", "countdown", **options))
    val = countdown_dataset("val", 1, plugin_options("data", "countdown", **options))
    assert val == countdown_dataset("val", 1,
                                    plugin_options("data", "countdown", num_train=20, num_val=100))  # val ignores num_train

    def key(row):
        return tuple(sorted(row["numbers"])), row["target"]
    assert len({key(r) for r in train + val}) == 600


def test_dataset_options_are_checked():
    with pytest.raises(ConfigError, match=r"data\.num_numbers"):
        CountdownOptions(num_numbers=1)
    with pytest.raises(ConfigError, match=r"data\.max_target"):
        CountdownOptions(num_numbers=4, min_number=50, max_target=100)
    with pytest.raises(ValueError, match="split"):
        countdown_dataset("test", 0, plugin_options("data", "countdown", num_train=1, num_val=1))
    with pytest.raises(ValueError, match="distinct"):  # only 2x2 number pairs exist
        countdown_dataset("train", 0,
                          plugin_options("data", "countdown", num_numbers=2, min_number=1, max_number=2, num_train=50))

