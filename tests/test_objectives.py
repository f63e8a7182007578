import pytest
import torch

from pinbench.errors import ConfigError
from pinbench.methods.rl.objectives import OBJECTIVES, get_objective, mc_loss, pcl_loss, td_loss

B, L = 3, 4


def _tensors(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(B, L, generator=gen), torch.randn(B, L, generator=gen),
            torch.randn(B, L, generator=gen), torch.randn(B, generator=gen))


def test_mc_zero_at_fixed_point_and_hand_value():
    _, v, v_bar, r = _tensors()
    assert mc_loss(r[:, None].expand(B, L), v, v_bar, r) == 0
    q = torch.tensor([[1.0, 2.0]])
    # (1 - 3)^2 + (2 - 3)^2 = 5
    assert mc_loss(q, None, None, torch.tensor([3.0])).item() == pytest.approx(5.0)


def test_td_zero_at_fixed_point_and_hand_value():
    _, v, v_bar, r = _tensors()
    q = torch.cat([v_bar[:, 1:], r[:, None]], dim=1)  # Q_t = Vbar_{t+1}, Q_{L-1} = r
    assert td_loss(q, v, v_bar, r) == 0
    # targets (0.5, 4): (1 - 0.5)^2 + (2 - 4)^2 = 4.25
    loss = td_loss(torch.tensor([[1.0, 2.0]]), None, torch.tensor([[9.0, 0.5]]), torch.tensor([4.0]))
    assert loss.item() == pytest.approx(4.25)


def test_pcl_zero_at_fixed_point_and_hand_value():
    q, v, v_bar, r = _tensors()
    v_next = torch.cat([v_bar[:, 1:], r[:, None]], dim=1)
    q_fixed = v + (v_next - v_bar)  # A_t = Vbar_{t+1} - Vbar_t makes both terms vanish
    assert pcl_loss(q_fixed, v, v_bar, r).abs() < 1e-6
    # L = 2, A = (1, 2), Vbar = (0.5, 1), r = 3:
    # single: (1 - (1 - 0.5))^2 + (2 - (3 - 1))^2 = 0.25; multi: (3 - 2.5)^2 + (2 - 2)^2 = 0.25
    loss = pcl_loss(torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2), torch.tensor([[0.5, 1.0]]), torch.tensor([3.0]))
    assert loss.item() == pytest.approx(0.25)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_positive_away_from_the_fixed_point_with_gradients(name):
    q, v, v_bar, r = _tensors(1)
    q.requires_grad_(True)
    v.requires_grad_(True)
    loss = OBJECTIVES[name].loss(q, v, v_bar, r)
    assert loss > 0
    loss.backward()
    assert q.grad.abs().sum() > 0


def test_unknown_objective():
    assert get_objective("td").needs_target and not get_objective("mc").needs_target
    with pytest.raises(ConfigError, match="unknown objective 'v2'"):
        get_objective("v2")


def test_the_config_names_exactly_the_implemented_objectives():
    """RLConfig validates ``objective`` against its own list (no torch when a config is checked)."""
    from pinbench.methods.rl import config

    assert set(config.OBJECTIVES) == set(OBJECTIVES)
