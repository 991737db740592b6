"""sgdlab.quadratic against its closed forms, with Monte-Carlo tolerances from standard errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sgdlab import quadratic as q


def test_noise_floor_matches_stationary_simulation():
    # constant step: E f(x_k) -> alpha sigma^2 / (2 (2 - alpha mu)); the exact transient agrees too
    mu, sigma, x0 = 2.0, 1.5, 1.0
    for alpha in (0.05, 0.3, 0.8):
        steps = np.full(int(40 / (alpha * mu)), alpha)
        stats = q.simulate(jax.random.key(1), mu, sigma, x0, steps, 20_000)
        exact = q.expected_loss(mu, sigma, x0, steps)
        floor = q.noise_floor(alpha, mu, sigma)
        assert abs(exact[-1] - floor) < 1e-4 * floor
        assert abs(stats.mean[-1] - floor) < 4 * stats.se[-1]
        k = len(steps) // 10
        assert abs(stats.mean[k] - exact[k]) < 4 * stats.se[k] + 1e-6


def test_bcn_bound_is_above_the_exact_floor():
    # on f = mu x^2/2 with unbiased noise of variance sigma^2: c = L = mu, BCN's mu = 1, M = sigma^2
    mu, sigma = 1.0, 1.0
    for alpha in (0.01, 0.1, 0.5, 1.0):
        bound = q.bcn_floor(alpha, L=mu, M=sigma**2, c=mu, mu=1.0)
        floor = q.noise_floor(alpha, mu, sigma)
        assert floor <= bound
        assert bound == pytest.approx(alpha * sigma**2 / 2)
    assert q.noise_floor(1e-4, mu, sigma) / q.bcn_floor(1e-4, mu, sigma**2, mu) == pytest.approx(0.5, rel=1e-3)


def test_mean_estimation_floor_with_real_minibatches():
    rng = np.random.default_rng(0)
    y = rng.exponential(2.0, size=500).astype(np.float32)
    var_y = float(np.var(y.astype(np.float64)))
    for alpha, b in ((0.1, 1), (0.1, 8), (0.4, 8)):
        steps = np.full(int(30 / alpha), alpha)
        stats = q.mean_estimation_sgd(jax.random.key(2), y, steps, b, 20_000, beta0=float(y.mean()))
        floor = q.noise_floor(alpha, 1.0, np.sqrt(var_y / b))
        tail = slice(len(steps) // 2, None)
        # average the stationary part; its SE is at most the per-step one (correlated steps)
        est, se = stats.mean[tail].mean(), stats.se[tail].max()
        assert abs(est - floor) < 4 * se, (alpha, b, est, floor, se)


def test_harmonic_fast_regime_constant():
    # 2 c mu > 1:  t E f(x_t) -> mu c^2 sigma^2 / (2 (2 c mu - 1)); 10^4 chains, within 3 %
    mu, sigma, x0, T = 1.0, 1.0, 1.0, 4000
    for c in (1.0, 1.5):
        steps = q.harmonic_steps(c, T)
        stats = q.simulate(jax.random.key(3), mu, sigma, x0, steps, 20_000, tail_from=T // 2)
        limit = q.harmonic_limit(mu, c, sigma)
        exact = q.expected_loss(mu, sigma, x0, steps)
        t = np.arange(1, T + 2)
        exact_tail = float((t * exact)[T // 2:].mean())
        assert abs(stats.tail_mean - exact_tail) < 4 * stats.tail_se
        assert abs(stats.tail_mean - limit) < 0.03 * limit, (c, stats.tail_mean, limit)
        assert abs(exact_tail - limit) < 0.01 * limit


def test_harmonic_slow_regime_slope():
    # 2 c mu < 1: E f(x_t) ~ t^(-2 c mu); fitted slope within 0.05
    mu, sigma, x0, T = 1.0, 1.0, 1.0, 4000
    for c in (0.2, 0.3):
        steps = q.harmonic_steps(c, T)
        stats = q.simulate(jax.random.key(4), mu, sigma, x0, steps, 10_000)
        t = np.arange(1, T + 2)
        window = slice(T // 10, None)
        slope = np.polyfit(np.log(t[window]), np.log(stats.mean[window]), 1)[0]
        assert abs(slope + q.harmonic_exponent(mu, c)) < 0.05, (c, slope)
        exact = q.expected_loss(mu, sigma, x0, steps)
        assert np.all(np.abs(stats.mean - exact)[1:] < 4 * stats.se[1:] + 1e-7 + 1e-3 * exact[1:])


def test_expected_loss_against_direct_recursion():
    rng = np.random.default_rng(5)
    steps = rng.uniform(0, 0.9, size=50)
    mu, sigma, x0 = 1.3, 0.7, -2.0
    v, out = x0**2, [mu / 2 * x0**2]
    for a in steps:
        v = (1 - a * mu) ** 2 * v + a**2 * sigma**2
        out.append(mu / 2 * v)
    np.testing.assert_allclose(q.expected_loss(mu, sigma, x0, steps), out, rtol=1e-5)


def test_gradient_flow_against_solve_ivp():
    mu, x0 = 0.7, 2.0
    t = np.linspace(0, 5, 11)
    sol = solve_ivp(lambda _, x: -mu * x, (0, 5), [x0], t_eval=t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(q.gradient_flow(mu, x0, t), 0.5 * mu * sol.y[0] ** 2, rtol=1e-6)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: q.noise_floor(-0.1, 1.0, 1.0), "alpha"),
        (lambda: q.noise_floor(3.0, 1.0, 1.0), "alpha"),
        (lambda: q.noise_floor(0.1, 0.0, 1.0), "mu"),
        (lambda: q.bcn_floor(0.1, L=1.0, M=1.0, c=2.0), "c"),
        (lambda: q.harmonic_limit(1.0, 0.4, 1.0), "c"),
        (lambda: q.harmonic_steps(1.0, 0), "steps"),
        (lambda: q.simulate(jax.random.key(0), 1.0, 1.0, 1.0, [0.1, -0.1], 10), "step_sizes"),
        (lambda: q.simulate(jax.random.key(0), 1.0, 1.0, 1.0, [0.1], 0), "n_chains"),
        (lambda: q.simulate(jax.random.key(0), 1.0, 1.0, 1.0, [0.1], 5, tail_from=4), "tail_from"),
        (lambda: q.simulate(jax.random.key(0), 1.0, float("nan"), 1.0, [0.1], 5), "sigma"),
        (lambda: q.mean_estimation_sgd(jax.random.key(0), [1.0, 2.0], [0.1], 3, 5), "batch_size"),
        (lambda: q.gradient_flow(1.0, 1.0, [-1.0]), "t"),
    ],
)
def test_bad_arguments_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
