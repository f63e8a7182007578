"""Training objectives (docs/method.md#objectives), each written once in terms of Q, V and the target V.

Shapes: B trajectories of L steps. ``q`` [B, L] is the online Q(s_t, a_t) of the taken tokens,
``v`` [B, L] the online soft value V(s_t), ``v_bar`` [B, L] the target network's value Vbar(s_t)
(no gradient), ``reward`` [B] the shaped final reward r (gamma = 1, reward at the last step only).
Losses are summed over the L steps and averaged over the batch. Because V and Vbar come from the
regulariser, every objective works with every regulariser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


def mc_loss(q: torch.Tensor, v: torch.Tensor | None, v_bar: torch.Tensor | None, reward: torch.Tensor) -> torch.Tensor:
    """"mc" (the PIN code's loss v1): regress every Q(s_t, a_t) on r. sum_t (Q_t - r)^2."""
    return (q - reward[:, None]).pow(2).sum(-1).mean()


def td_loss(q: torch.Tensor, v: torch.Tensor | None, v_bar: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    """"td" (PIN paper, Eq. 5): y_t = Vbar(s_{t+1}) for t < L-1, y_{L-1} = r. sum_t (Q_t - y_t)^2."""
    y = torch.cat([v_bar[:, 1:], reward[:, None]], dim=1)
    return (q - y).pow(2).sum(-1).mean()


def pcl_loss(q: torch.Tensor, v: torch.Tensor, v_bar: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    """"pcl" (RLPrompt's default), with A_t = Q_t - V_t and Vbar_L := r:
    single-step sum_t (A_t - (Vbar_{t+1} - Vbar_t))^2, multi-step sum_t (sum_{k>=t} A_k - (r - Vbar_t))^2;
    the loss is their mean."""
    advantage = q - v
    v_next = torch.cat([v_bar[:, 1:], reward[:, None]], dim=1)
    single = (advantage - (v_next - v_bar)).pow(2).sum(-1)
    advantage_to_go = advantage.flip(-1).cumsum(-1).flip(-1)  # sum_{k >= t} A_k
    multi = (advantage_to_go - (reward[:, None] - v_bar)).pow(2).sum(-1)
    return ((single + multi) / 2).mean()


@dataclass(frozen=True)
class Objective:
    name: str
    loss: Callable[..., torch.Tensor]
    needs_value: bool  # the online V(s_t) (with gradient)
    needs_target: bool  # the target network's Vbar(s_t)


OBJECTIVES = {
    "mc": Objective("mc", mc_loss, needs_value=False, needs_target=False),
    "td": Objective("td", td_loss, needs_value=False, needs_target=True),
    "pcl": Objective("pcl", pcl_loss, needs_value=True, needs_target=True),
}


def get_objective(name: str) -> Objective:
    from ...errors import ConfigError

    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective '{name}'; expected one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]
