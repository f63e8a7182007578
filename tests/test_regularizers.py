import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from pinbench.errors import ConfigError
from pinbench.methods.rl.regularizers import Shannon, SparseTsallis, Tsallis, make_regularizer, sparsemax_threshold


@pytest.fixture(autouse=True)
def float64():
    """Exact comparisons below: run this module's tests in float64."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)

REGULARIZERS = [Shannon(), SparseTsallis(), Tsallis(q=1.5), Tsallis(q=1.2)]
IDS = ["shannon", "sparse_tsallis", "tsallis-1.5", "tsallis-1.2"]


@pytest.mark.parametrize("reg", REGULARIZERS, ids=IDS)
@pytest.mark.parametrize("alpha", [0.3, 1.0, 5.0])
def test_policy_is_a_distribution(reg, alpha):
    q = torch.randn(7, 50, generator=torch.Generator().manual_seed(1)) * 3
    pi = reg.policy(q, alpha)
    assert (pi >= 0).all()
    assert torch.allclose(pi.sum(-1), torch.ones(7), atol=1e-6)


def test_sparsemax_hand_worked_example():
    # u = (1.2, 0.8, 0.1, -1): k=1: 1+1.2 > 1.2 yes; k=2: 1+1.6 > 2.0 yes; k=3: 1+0.3 > 2.1 no.
    # K = 2, tau = (1.2 + 0.8 - 1)/2 = 0.5, pi = (0.7, 0.3, 0, 0).
    u = torch.tensor([[1.2, 0.8, 0.1, -1.0]])
    tau, support = sparsemax_threshold(u)
    assert support.item() == 2 and tau.item() == pytest.approx(0.5)
    assert SparseTsallis().policy(u, 1.0)[0].tolist() == pytest.approx([0.7, 0.3, 0.0, 0.0])
    # spmax = 1/2 (1.44 - .25 + .64 - .25) + 1/2 = 1.29; with alpha = 2 the value scales: 2*spmax(u/2).
    assert SparseTsallis().value(u, 1.0).item() == pytest.approx(1.29)


def test_sparsemax_partial_sort_equals_full_sort():
    u = torch.randn(5, 3000, generator=torch.Generator().manual_seed(0))
    u[0] = 0.0  # all equal: the support is the whole vocabulary, k must double up to it
    full = sparsemax_threshold(u, k=3000)
    for k in (1, 7, 256):
        part = sparsemax_threshold(u, k=k)
        assert torch.equal(part[1], full[1]) and torch.allclose(part[0], full[0])
    assert full[1][0].item() == 3000


def _sparsemax_reference(u: np.ndarray) -> tuple[float, int]:
    """tau and K over the finite entries only, by a full sort (the textbook algorithm)."""
    z = np.sort(u[np.isfinite(u)])[::-1]
    ks = np.arange(1, len(z) + 1)
    k = int(ks[1 + ks * z > np.cumsum(z)].max())
    return (z[:k].sum() - 1) / k, k


def test_sparsemax_with_filtered_tokens_and_a_growing_partial_sort():
    # PIN's real setting: most of the vocabulary filtered to -inf (top-k), and a support larger
    # than the first partial sort (k = 256), so k grows while -inf entries sit in the rows.
    gen = torch.Generator().manual_seed(8)
    u = torch.full((3, 5000), float("-inf"))
    u[0, :1000] = 0.0  # 1000 equal kept entries: the support is all of them (k grows to 1000)
    u[1, 500:3500] = torch.randn(3000, generator=gen) * 1e-3  # a near-flat 3000: support > 256
    u[2, :40] = torch.randn(40, generator=gen)  # a row with fewer kept entries than k
    tau, support = sparsemax_threshold(u)
    for row in range(3):
        want_tau, want_k = _sparsemax_reference(u[row].numpy())
        assert support[row].item() == want_k and tau[row].item() == pytest.approx(want_tau, abs=1e-12)
    assert support[0].item() == 1000 and tau[0].item() == pytest.approx(-1 / 1000)
    assert support[1].item() > 256
    pi = SparseTsallis().policy(u, 1.0)
    assert torch.allclose(pi.sum(-1), torch.ones(3)) and (pi[~torch.isfinite(u)] == 0).all()
    assert torch.allclose(pi[0, :1000], torch.full((1000,), 1e-3))


def _objective(reg, q, alpha, p):
    p = torch.as_tensor(p)
    return float((p * q).sum() + alpha * reg.entropy(p))


@pytest.mark.parametrize("reg", REGULARIZERS, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_value_is_the_regularised_maximum(reg, seed):
    gen = torch.Generator().manual_seed(seed)
    alpha = 0.7
    q = torch.randn(6, generator=gen) * 2
    v = reg.value(q, alpha).item()
    pi = reg.policy(q, alpha)
    # V is attained at pi ...
    assert v == pytest.approx(_objective(reg, q, alpha, pi), abs=1e-6)
    # ... and no distribution does better: random points and a numerical optimiser.
    for p in torch.distributions.Dirichlet(torch.ones(6)).sample((500,)):
        assert _objective(reg, q, alpha, p) <= v + 1e-9
    res = minimize(lambda p: -_objective(reg, q, alpha, np.clip(p, 1e-12, 1)), np.full(6, 1 / 6),
                   bounds=[(0, 1)] * 6, constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
                   method="SLSQP", options={"ftol": 1e-12, "maxiter": 500})
    assert -res.fun == pytest.approx(v, abs=1e-5)


def test_tsallis_q2_equals_sparse_tsallis_and_approaches_shannon():
    q = torch.randn(4, 30, generator=torch.Generator().manual_seed(3)) * 2
    for alpha in (0.5, 1.0):
        assert torch.allclose(Tsallis(q=2.0).policy(q, alpha), SparseTsallis().policy(q, alpha), atol=1e-7)
        assert torch.allclose(Tsallis(q=2.0).value(q, alpha), SparseTsallis().value(q, alpha), atol=1e-7)
    gaps = [(Tsallis(q=iq).policy(q, 1.0) - Shannon().policy(q, 1.0)).abs().max().item()
            for iq in (1.5, 1.1, 1.01, 1.001)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 2e-3
    v_gap = (Tsallis(q=1.001).value(q, 1.0) - Shannon().value(q, 1.0)).abs().max().item()
    assert v_gap < 1e-2


def test_sparsemax_support_identity():
    # For i in the support: u_i - spmax(u) = pi_i - (1 + ||pi||^2)/2.
    alpha = 0.5
    q = torch.randn(8, 40, generator=torch.Generator().manual_seed(4))
    reg = SparseTsallis()
    pi = reg.policy(q, alpha)
    lhs = q / alpha - (reg.value(q, alpha) / alpha)[:, None]
    rhs = pi - (1 + pi.pow(2).sum(-1, keepdim=True)) / 2
    support = pi > 0
    assert support.sum() > 8  # not a degenerate one-hot case
    assert torch.allclose(lhs[support], rhs[support], atol=1e-9)


def test_smaller_alpha_means_smaller_support():
    q = torch.randn(1, 200, generator=torch.Generator().manual_seed(5))
    sizes = [(SparseTsallis().policy(q, a) > 0).sum().item() for a in (10.0, 1.0, 0.1)]
    assert sizes[0] > sizes[1] > sizes[2] >= 1


@pytest.mark.parametrize("reg", REGULARIZERS, ids=IDS)
def test_filtered_tokens_get_zero_probability_and_no_nans(reg):
    q = torch.randn(3, 20, generator=torch.Generator().manual_seed(6), requires_grad=True)
    keep = torch.zeros(3, 20, dtype=torch.bool)
    keep[:, :5] = True
    masked = q.masked_fill(~keep, float("-inf"))
    pi = reg.policy(masked, 1.0)
    assert (pi[~keep] == 0).all() and torch.allclose(pi.sum(-1), torch.ones(3))
    v = reg.value(masked, 1.0)
    # The value of the filtered problem is the value of the kept tokens alone.
    assert torch.allclose(v, reg.value(q[:, :5], 1.0))
    assert torch.isfinite(reg.entropy(pi)).all()
    v.sum().backward()
    assert torch.isfinite(q.grad).all()
    assert (q.grad[~keep] == 0).all()


@pytest.mark.parametrize("reg", REGULARIZERS, ids=IDS)
def test_value_gradient_matches_central_finite_differences(reg):
    # The autograd gradient of V against central differences of the true regularised maximum,
    # max_p E_p[Q] + alpha S(p), evaluated at the code's own argmax (float64, h = 1e-6: error
    # ~1e-10). Not against pi: Tsallis's value holds pi fixed, which makes "grad == pi" true by
    # construction whether or not V is the maximum; a wrong V would move the differences only.
    alpha = 0.8
    q = torch.randn(2, 15, generator=torch.Generator().manual_seed(7)) * 2
    q.requires_grad_(True)
    reg.value(q, alpha).sum().backward()

    def true_value(x):
        pi = reg.policy(x, alpha)
        return (pi * x).sum(-1) + alpha * reg.entropy(pi)

    h = 1e-6
    numeric = torch.zeros_like(q)
    with torch.no_grad():
        for i in range(q.shape[1]):
            step = torch.zeros_like(q)
            step[:, i] = h
            numeric[:, i] = (true_value(q + step) - true_value(q - step)) / (2 * h)
    assert torch.allclose(q.grad, numeric, atol=1e-6), (q.grad - numeric).abs().max()
    # and the code's V itself is that maximum, differentiated the same way
    with torch.no_grad():
        step = torch.zeros_like(q)
        step[:, 3] = h
        fd_code = (reg.value(q + step, alpha) - reg.value(q - step, alpha)) / (2 * h)
    assert torch.allclose(fd_code, numeric[:, 3], atol=1e-6)


def test_registry():
    assert make_regularizer("tsallis", 1.3).q == 1.3
    assert isinstance(make_regularizer("sparse_tsallis"), SparseTsallis)
    with pytest.raises(ConfigError, match="unknown regulariser 'mode2'"):
        make_regularizer("mode2")
    with pytest.raises(ConfigError, match=r"q must be in \(1, 2\], got 2.5"):
        make_regularizer("tsallis", 2.5)


def test_sparsemax_with_a_tiny_alpha_is_the_greedy_policy_not_zeros():
    # u = q / 1e-10 passes 2**24: unshifted, 1 + u_(1) == u_(1) in float32, the support came out
    # empty (an index -1 crash), then an all-zero policy. The argmax takes all the mass, and the
    # value is max q (spmax(u) -> max u as alpha -> 0).
    torch.manual_seed(0)
    q = torch.randn(3, 50)
    reg = SparseTsallis()
    pi = reg.policy(q, 1e-10)
    assert torch.equal(pi, torch.nn.functional.one_hot(q.argmax(-1), 50).float())
    assert torch.allclose(reg.value(q, 1e-10), q.max(-1).values)


def test_the_config_names_exactly_the_implemented_regularizers():
    """RLConfig validates ``regularizer`` against its own list (no torch when a config is checked)."""
    from pinbench.methods.rl import config
    from pinbench.methods.rl.regularizers import REGULARIZERS as IMPLEMENTED

    assert set(config.REGULARIZERS) == set(IMPLEMENTED)
