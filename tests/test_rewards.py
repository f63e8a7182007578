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


def test_grouped_rewards_are_zscored_per_column_then_averaged():
    # 2 prompts x 2 groups: column 0 is (0, 2) -> z = (-1, 1); column 1 is (5, 1) -> z = (1, -1)
    # with population std 1 each (minus eps); the mean over columns is 0 for both prompts.
    r = torch.tensor([[0.0, 5.0], [2.0, 3.0]])
    assert shaping.shape_rewards(r).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    r = torch.tensor([[0.0, 5.0], [2.0, 1.0]])  # column 1 now (5, 1): std 2 -> z = (1, -1)
    assert shaping.shape_rewards(r, scale=2.0).tolist() == pytest.approx([0.0, 0.0], abs=1e-4)
    r = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # both columns favour prompt 1: z = (-1, 1) each
    assert shaping.shape_rewards(r, scale=2.0, shift=1.0).tolist() == pytest.approx([-1.0, 3.0], abs=1e-3)


def test_zscore_of_one_or_equal_rewards_is_zero():
    assert shaping.zscore(torch.tensor([5.0])).tolist() == [0.0]
    assert shaping.zscore(torch.tensor([2.0, 2.0, 2.0])).abs().max() == 0
