import torch

from r1kit.algo.groups import group_all_equal, group_count, group_index, group_mean


def test_non_contiguous_unsorted_ids():
    ids = torch.tensor([7, 3, 7, 9, 3, 7])
    index, k = group_index(ids)
    assert k == 3
    assert index.tolist() == [1, 0, 1, 2, 0, 1]  # sorted id order: 3, 7, 9
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 6.0, 5.0])
    torch.testing.assert_close(group_mean(values, index, k), torch.tensor([4.0, 3.0, 4.0]))
    assert group_count(index, k, torch.float32).tolist() == [2.0, 3.0, 1.0]


def test_all_equal_is_exact_where_mean_is_not():
    values = torch.tensor([0.1, 0.1, 0.1, 0.3, 0.2], dtype=torch.float64)
    index, k = group_index(torch.tensor([0, 0, 0, 1, 1]))
    assert group_mean(values, index, k)[0] != 0.1  # 0.30000000000000004 / 3
    assert group_all_equal(values, index, k).tolist() == [True, True, True, False, False]
