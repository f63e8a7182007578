"""Entropy regularisers: each owns its policy, soft value and entropy (docs/method.md#regularisers).

For Q-values Q(s, .) over the vocabulary and a coefficient alpha, write u = Q / alpha. Every
regulariser solves

    V(s) = max_p  E_p[Q] + alpha * S(p)     (attained at p = pi)

for its own entropy S:

    shannon         S = -sum p log p             pi = softmax(u)       V = alpha * logsumexp(u)
    sparse_tsallis  S = 1/2 (1 - sum p^2)        pi = sparsemax(u)     V = alpha * spmax(u)
    tsallis (q)     S = sum(p - p^q) / (q(q-1))  pi = q-entmax(u)      V = alpha * (E_pi[u] + S(pi))

Filtered tokens carry Q = -inf: they get probability 0, add nothing to V, and never make NaNs
(values or gradients). All functions work on [..., vocab] and are differentiable in Q.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _masked(u: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """u where ``keep``, 0 elsewhere, without inf * 0 = NaN in the forward or backward pass."""
    return torch.where(keep, u, torch.zeros((), dtype=u.dtype, device=u.device))


@dataclass(frozen=True)
class Shannon:
    """Soft Q-learning (RLPrompt): softmax policy, log-sum-exp value."""

    name: str = "shannon"

    def policy(self, q: torch.Tensor, alpha: float) -> torch.Tensor:
        return torch.softmax(q / alpha, dim=-1)

    def value(self, q: torch.Tensor, alpha: float) -> torch.Tensor:
        return alpha * torch.logsumexp(q / alpha, dim=-1)

    def entropy(self, pi: torch.Tensor) -> torch.Tensor:
        return -torch.special.xlogy(pi, pi).sum(-1)  # 0 log 0 = 0


def sparsemax_threshold(u: torch.Tensor, k: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparsemax threshold tau [..., 1] and support size K [..., 1] of u [..., V].

    Sort u descending: u_(1) >= u_(2) >= ...; K = max{k : 1 + k u_(k) > sum_{j<=k} u_(j)};
    tau = (sum_{j<=K} u_(j) - 1) / K. The condition holds exactly for k <= K, so a partial sort
    of the top k entries suffices when it fails inside them; otherwise k grows 8x, up to the number
    of finite entries (filtered tokens are -inf and never in the support), exact either way.
    """
    vocab = u.shape[-1]
    finite = max(1, int(torch.isfinite(u).sum(-1).max())) if vocab else vocab
    k = min(k, finite)
    while True:
        top = torch.topk(u, k, dim=-1).values if k < vocab else torch.sort(u, dim=-1, descending=True).values
        ranks = torch.arange(1, k + 1, device=u.device, dtype=u.dtype)
        cumsum = top.cumsum(-1)
        in_support = 1 + ranks * top > cumsum  # -inf entries: -inf > -inf is False
        # K >= 1 always (1 + u_(1) > u_(1)); in floats 1 + u == u once u passes 2**24 (a tiny alpha)
        support = in_support.sum(-1, keepdim=True).clamp(min=1)
        if k >= finite or bool((support < k).all()):
            break
        k = min(8 * k, finite)
    tau = (cumsum.gather(-1, support - 1) - 1) / support.to(u.dtype)
    return tau, support


@dataclass(frozen=True)
class SparseTsallis:
    """Sparse Tsallis entropy (PIN, q = 2): sparsemax policy, closed-form spmax value."""

    name: str = "sparse_tsallis"

    @staticmethod
    def _shifted(q: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        """u = q / alpha less its maximum, and that maximum: sparsemax(u) = sparsemax(u - c) and
        spmax(u) = spmax(u - c) + c, and without the shift a small alpha (u past 2**24) loses the
        1 in 1 + k u_(k) > sum u_(j) to float rounding and gives an all-zero policy."""
        u = q / alpha
        top = u.max(-1, keepdim=True).values
        return u - top, top

    def policy(self, q: torch.Tensor, alpha: float) -> torch.Tensor:
        u, _ = self._shifted(q, alpha)
        tau, _ = sparsemax_threshold(u)
        return torch.clamp(u - tau, min=0)

    def value(self, q: torch.Tensor, alpha: float) -> torch.Tensor:
        # spmax(u) = 1/2 sum_{i in S} (u_i^2 - tau^2) + 1/2, S = {i : u_i > tau}
        u, top = self._shifted(q, alpha)
        tau, _ = sparsemax_threshold(u)
        support = u > tau
        u_s = _masked(u, support)
        spmax = 0.5 * (u_s.pow(2) - _masked(tau.expand_as(u), support).pow(2)).sum(-1) + 0.5
        return alpha * spmax + alpha * top.squeeze(-1)

    def entropy(self, pi: torch.Tensor) -> torch.Tensor:
        return 0.5 * (1 - pi.pow(2).sum(-1))


@dataclass(frozen=True)
class Tsallis:
    """General Tsallis entropy with index q in (1, 2]: alpha-entmax policy (Peters et al., 2019)
    by exact bisection (the `entmax` package); q = 2 is sparsemax, q -> 1 approaches softmax."""

    q: float = 1.5
    name: str = "tsallis"

    def __post_init__(self):
        if not 1.0 < self.q <= 2.0:
            raise ValueError(f"tsallis entropic index q must be in (1, 2], got {self.q}")

    def policy(self, q: torch.Tensor, alpha: float) -> torch.Tensor:
        from entmax import entmax_bisect

        return entmax_bisect(q / alpha, alpha=self.q, dim=-1, n_iter=60)

    def value(self, q: torch.Tensor, alpha: float) -> torch.Tensor:
        # V = alpha * (E_pi[u] + S_q(pi)). With pi held fixed the gradient is d/dQ = pi, which is
        # exactly the gradient of the max (envelope theorem), so no backward through bisection.
        u = q / alpha
        pi = self.policy(q.detach(), alpha)
        expected = (pi * _masked(u, pi > 0)).sum(-1)
        return alpha * (expected + self.entropy(pi))

    def entropy(self, pi: torch.Tensor) -> torch.Tensor:
        return (pi - pi.pow(self.q)).sum(-1) / (self.q * (self.q - 1))


REGULARIZERS = {"shannon": Shannon, "sparse_tsallis": SparseTsallis, "tsallis": Tsallis}


def make_regularizer(name: str, q: float | None = None):
    """Registry lookup: ``shannon``, ``sparse_tsallis`` or ``tsallis`` (with ``q``)."""
    from ...errors import ConfigError

    if name not in REGULARIZERS:
        raise ConfigError(f"unknown regulariser '{name}'; expected one of {sorted(REGULARIZERS)}")
    if name == "tsallis":
        try:
            return Tsallis(q=1.5 if q is None else float(q))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return REGULARIZERS[name]()
