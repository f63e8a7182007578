import pytest
import torch

from pinbench.methods.rl import shaping
from pinbench.tasks.classification import rewards


def test_gap_reward_hand_computed():
    # 1 prompt, 3 examples, 3 classes.
    probs = torch.tensor([[[0.7, 0.2, 0.1],    # label 0: gap = 0.7 - 0.2 = 0.5  -> 200 * 0.5 = 100
                           [0.5, 0.3, 0.2],    # label 2: gap = 0.2 - 0.5 = -0.3 -> 180 * -0.3 = -54
                           [0.1, 0.45, 0.45]]])  # label 1: gap = 0.45 - 0.45 = 0 -> 0
    labels = torch.tensor([0, 2, 1])
    per_example = rewards.gap_reward_per_example(probs, labels)
    assert per_example[0].tolist() == pytest.approx([100.0, -54.0, 0.0])
    assert rewards.gap_reward(probs, labels).tolist() == pytest.approx([(100 - 54) / 3])


def test_gap_reward_batched_over_prompts():
    probs = torch.tensor([[[0.9, 0.1]], [[0.4, 0.6]]])  # 2 prompts, 1 example labelled 0
    out = rewards.gap_reward(probs, torch.tensor([0]))
    assert out.tolist() == pytest.approx([200 * 0.8, 180 * -0.2])


def test_accuracy_counts_argmax_hits():
    probs = torch.tensor([[[0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.1, 0.9]]])
    assert rewards.accuracy(probs, torch.tensor([0, 1, 1, 0])).tolist() == [0.5]


def test_zscore_uses_the_population_std_as_the_authors_np_std():
    r = torch.tensor([1.0, 2.0, 3.0, 6.0])  # mean 3; population variance (4 + 1 + 0 + 9) / 4 = 3.5
    z = shaping.zscore(r)
    std = 3.5 ** 0.5  # 1.8708..., not the unbiased 2.1602
    assert z.tolist() == pytest.approx([-2 / (std + 1e-4), -1 / (std + 1e-4), 0.0, 3 / (std + 1e-4)], rel=1e-6)
    shaped = shaping.shape_rewards(r, scale=100.0, shift=-20.0)
    assert shaped[3].item() == pytest.approx(100 * 3 / (std + 1e-4) - 20, rel=1e-6)


def test_grouped_draws_are_zscored_with_the_groups_pooled_std():
    # RLPrompt's style transfer (tst_reward.py::_compute_reward_zscores): prompts 0 and 1 share
    # input 0 with block maxima (1, 3) and (5, 7); pooled: mean 4, population std sqrt(5), so
    # z = (2 - 4) / sqrt(5) = -0.8944 and +0.8944 (the std of the prompt means, 2, would give -1, 1).
    # Prompt 2 is alone with input 1: mean of its draws minus itself, z = 0.
    draws = torch.tensor([[1.0, 3.0], [5.0, 7.0], [2.0, 4.0]])
    groups = torch.tensor([0, 0, 1])
    expected = 2 / (5 ** 0.5 + 1e-4)
    assert shaping.zscore(draws, groups).tolist() == pytest.approx([-expected, expected, 0.0], abs=1e-6)
    assert shaping.shape_rewards(draws, 100.0, -20.0, groups).tolist() == \
        pytest.approx([-100 * expected - 20, 100 * expected - 20, -20.0], abs=1e-4)
    # one group: all six draws pooled (mean 11/3, population std by hand); prompt 2's mean is 3
    pooled_std = (sum((x - 11 / 3) ** 2 for x in (1, 3, 5, 7, 2, 4)) / 6) ** 0.5
    assert shaping.zscore(draws)[2].item() == pytest.approx((3 - 11 / 3) / (pooled_std + 1e-4), abs=1e-6)


def test_zscore_of_one_or_equal_rewards_is_zero():
    assert shaping.zscore(torch.tensor([5.0])).tolist() == [0.0]
    assert shaping.zscore(torch.tensor([2.0, 2.0, 2.0])).abs().max() == 0
