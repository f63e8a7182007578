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
    # By hand: mean 3; population variance (4 + 1 + 0 + 9) / 4 = 3.5, std 1.870829 (not the
    # unbiased 2.160247, which would give -0.9258, -0.4629, 0, 1.3887); z = (r - 3) / 1.870929
    # (std + eps 1e-4).
    z = shaping.zscore(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert z.tolist() == pytest.approx([-1.068988, -0.534494, 0.0, 1.603482], abs=1e-6)
    # 100 z - 20 (RLPrompt's style-transfer shaping): 100 * 1.603482 - 20 = 140.3482
    shaped = shaping.shape_rewards(torch.tensor([1.0, 2.0, 3.0, 6.0]), scale=100.0, shift=-20.0)
    assert shaped.tolist() == pytest.approx([-126.8988, -73.4494, -20.0, 140.3482], abs=1e-3)
    # without z-scoring: scale * R + shift
    raw = shaping.shape_rewards(torch.tensor([1.0, 2.0, 3.0, 6.0]), 100.0, -20.0, standardize=False)
    assert raw.tolist() == [80.0, 180.0, 280.0, 580.0]


def test_grouped_draws_are_zscored_with_the_groups_pooled_std():
    # RLPrompt's style transfer (tst_reward.py::_compute_reward_zscores): prompts 0 and 1 share
    # input 0 with block maxima (1, 3) and (5, 7); pooled: mean 4, population variance
    # (9 + 1 + 1 + 9) / 4 = 5, std 2.236068, so z = -2 / 2.236168 = -0.894387 and +0.894387 (the std
    # of the prompt means, 2, would give -1, 1). Prompt 2 is alone with input 1: z = 0.
    draws = torch.tensor([[1.0, 3.0], [5.0, 7.0], [2.0, 4.0]])
    groups = torch.tensor([0, 0, 1])
    assert shaping.zscore(draws, groups).tolist() == pytest.approx([-0.894387, 0.894387, 0.0], abs=1e-6)
    assert shaping.shape_rewards(draws, 100.0, -20.0, groups).tolist() == \
        pytest.approx([-109.4387, 69.4387, -20.0], abs=1e-3)
    # One group: all six draws pooled: mean 11/3, squared deviations 64/9, 4/9, 16/9, 100/9, 25/9,
    # 1/9 sum to 210/9, / 6 = 3.888889, std 1.972027; prompt 2's mean 3: (3 - 11/3) / 1.972127.
    assert shaping.zscore(draws)[2].item() == pytest.approx(-0.338045, abs=1e-6)


def test_zscore_of_one_or_equal_rewards_is_zero():
    assert shaping.zscore(torch.tensor([5.0])).tolist() == [0.0]
    assert shaping.zscore(torch.tensor([2.0, 2.0, 2.0])).abs().max() == 0
