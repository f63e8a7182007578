import pytest
import torch

from pinbench import rewards


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


def test_zscore_and_shaping():
    r = torch.tensor([1.0, 2.0, 3.0, 6.0])
    z = rewards.zscore(r)
    expected = (r - 3.0) / (r.std() + 1e-4)
    assert torch.allclose(z, expected)
    assert z.mean().abs() < 1e-6
    shaped = rewards.shape_rewards(r, scale=100.0, shift=-20.0)
    assert torch.allclose(shaped, 100 * expected - 20)


def test_zscore_of_one_or_equal_rewards_is_zero():
    assert rewards.zscore(torch.tensor([5.0])).tolist() == [0.0]
    assert rewards.zscore(torch.tensor([2.0, 2.0, 2.0])).abs().max() == 0
