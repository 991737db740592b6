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
        stats = q.simulate(jax.random.key(1), mu, sigma, x0, steps, 10_000)
        exact = q.expected_loss(mu, sigma, x0, steps)
        floor = q.noise_floor(alpha, mu, sigma)
        assert abs(exact[-1] - floor) < 1e-4 * floor
        assert abs(stats.mean[-1] - floor) < 4 * stats.se[-1]
        k = len(steps) // 10
        assert abs(stats.mean[k] - exact[k]) < 4 * stats.se[k] + 1e-6


def test_bcn_bound_is_above_the_exact_floor():
    # on L = mu w^2/2 with unbiased noise of variance sigma^2: strong convexity = smoothness = mu,
    # gamma = gamma_G = 1, M = sigma^2, M_V = 0, so M_G = 1 and the largest step is 1/mu
    mu, sigma = 1.0, 1.0
    assert q.bcn_max_step(mu) == pytest.approx(1 / mu)
    assert q.bcn_max_step(2.0, gamma=0.5, gamma_g=1.0, M_V=3.0) == pytest.approx(0.5 / (2.0 * 4.0))
    for eta in (0.01, 0.1, 0.5, 1.0):
        bound = q.bcn_floor(eta, smoothness=mu, M=sigma**2, mu=mu)
        floor = q.noise_floor(eta, mu, sigma)
        assert floor <= bound
        assert bound == pytest.approx(eta * sigma**2 / 2)
    assert q.noise_floor(1e-4, mu, sigma) / q.bcn_floor(1e-4, mu, sigma**2, mu) == pytest.approx(0.5, rel=1e-3)


def test_bcn_diminishing_bound_holds_for_simulation_and_exact_curve():
    # Thm 4.7: eta_k = s/(k0 + k), s > 1/mu, eta_1 <= 1/mu; E L(w_k) <= nu / (k0 + k), w_1 the start
    mu, sigma, w1, s, k0, T = 1.0, 1.0, 2.0, 2.0, 1.0, 2000
    steps = s / (k0 + 1 + np.arange(T))
    assert steps[0] <= q.bcn_max_step(mu)
    bound = q.bcn_diminishing_bound(np.arange(1, T + 2), s, k0, mu, sigma**2, mu, 0.5 * mu * w1**2)
    exact = q.expected_loss(mu, sigma, w1, steps)
    assert np.all(exact <= bound * (1 + 1e-5))
    stats = q.simulate(jax.random.key(6), mu, sigma, w1, steps, 10_000)
    assert np.all(stats.mean - 4 * stats.se <= bound)
    # the bound's constant is s^2 Lambda M / (2 (s mu - 1)) = 2 here: (k0 + k) E L -> mu s^2 sigma^2 / (2 (2 s mu - 1))
    assert (k0 + T + 1) * exact[-1] == pytest.approx(mu * s**2 * sigma**2 / (2 * (2 * s * mu - 1)), rel=0.02)


def test_bcn_nonconvex_bound_on_a_bounded_curvature_saddle():
    # L(u, v) = u^2/2 + cos v: gradient 1-Lipschitz, L >= -1, noise N(0, sigma^2 I) so M = 2 sigma^2
    rng = np.random.default_rng(7)
    sigma, chains = 0.5, 4000
    w1 = np.array([2.0, 0.5])
    gap = 0.5 * w1[0] ** 2 + np.cos(w1[1]) + 1.0
    for K in (100, 400, 1600):
        eta = 1 / np.sqrt(K)
        w = np.tile(w1, (chains, 1))
        total = np.zeros(chains)
        for _ in range(K):
            grad = np.stack([w[:, 0], -np.sin(w[:, 1])], axis=1)
            total += (grad**2).sum(1)
            w = w - eta * (grad + sigma * rng.normal(size=w.shape))
        avg = total / K
        bound = q.bcn_nonconvex_bound(K, eta, 1.0, 2 * sigma**2, gap)
        assert avg.mean() - 4 * avg.std(ddof=1) / np.sqrt(chains) <= bound, (K, avg.mean(), bound)


def test_averaged_expected_loss_against_linear_algebra_and_simulation():
    # w_k = A_k w_0 + sum_j C_kj xi_j exactly; the average's second moment from the coefficients
    rng = np.random.default_rng(8)
    mu, sigma, w0, T = 1.3, 0.7, -2.0, 30
    steps = rng.uniform(0.05, 0.9, size=T)
    A, C = np.zeros(T + 1), np.zeros((T + 1, T))
    A[0] = 1.0
    for k, eta in enumerate(steps):
        A[k + 1] = (1 - eta * mu) * A[k]
        C[k + 1] = (1 - eta * mu) * C[k]
        C[k + 1, k] -= eta * sigma
    want = [0.5 * mu * w0**2]
    for k in range(1, T + 1):
        a, c = A[1: k + 1].mean(), C[1: k + 1].mean(0)
        want.append(0.5 * mu * (a**2 * w0**2 + (c**2).sum()))
    got = q.averaged_expected_loss(mu, sigma, w0, steps)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    stats = q.simulate(jax.random.key(9), mu, sigma, w0, steps, 20_000, average=True)
    assert np.all(np.abs(stats.mean - got)[1:] < 4 * stats.se[1:] + 1e-6)


def test_polyak_ruppert_reaches_the_optimal_constant():
    # k E L(w_bar_k) -> sigma^2 / (2 mu) for eta_k = c k^(-0.6), while the last iterate stays at ~ eta_k sigma^2 / 4
    mu, sigma, T = 1.0, 1.0, 200_000
    steps = 0.5 * np.arange(1, T + 1) ** -0.6
    avg = q.averaged_expected_loss(mu, sigma, 1.0, steps)
    assert T * avg[-1] == pytest.approx(sigma**2 / (2 * mu), rel=0.05)
    last = q.expected_loss(mu, sigma, 1.0, steps)
    assert last[-1] == pytest.approx(steps[-1] * sigma**2 / 4, rel=0.05)


def test_mean_estimation_floor_with_real_minibatches():
    rng = np.random.default_rng(0)
    y = rng.exponential(2.0, size=500).astype(np.float32)
    var_y = float(np.var(y.astype(np.float64)))
    for alpha, b in ((0.1, 1), (0.1, 8), (0.4, 8)):
        steps = np.full(int(30 / alpha), alpha)
        stats = q.mean_estimation_sgd(jax.random.key(2), y, steps, b, 8_000, w0=float(y.mean()))
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
        (lambda: q.noise_floor(-0.1, 1.0, 1.0), "eta"),
        (lambda: q.noise_floor(3.0, 1.0, 1.0), "eta"),
        (lambda: q.noise_floor(0.1, 0.0, 1.0), "mu"),
        (lambda: q.bcn_floor(0.1, smoothness=1.0, M=1.0, mu=2.0), "mu"),
        (lambda: q.bcn_max_step(1.0, gamma=1.0, gamma_g=0.5), "gamma_g"),
        (lambda: q.bcn_diminishing_bound(1, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0), "s"),
        (lambda: q.bcn_diminishing_bound(0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0), "k"),
        (lambda: q.bcn_nonconvex_bound(0, 0.1, 1.0, 1.0, 1.0), "K"),
        (lambda: q.averaged_expected_loss(1.0, 1.0, 1.0, [0.1, -0.1]), "step_sizes"),
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


def test_chapter2_checks_refuse_the_package_and_catch_wrong_answers():
    from sgdlab.coursework import ch02

    refused = ch02.check_noise_floor(lambda eta, mu, sigma: q.noise_floor(eta, mu, sigma))
    assert not refused and "package" in repr(refused)
    assert not ch02.check_noise_floor(lambda eta, mu, sigma: eta * sigma**2 / 4)   # the small-step limit only
    assert ch02.check_noise_floor(lambda eta, mu, sigma: eta * sigma**2 / (2 * (2 - eta * mu)))
    refused = ch02.check_expected_loss(lambda mu, sigma, w0, steps: q.expected_loss(mu, sigma, w0, steps))
    assert not refused and "package" in repr(refused)

    def biased(key, eta, mu, sigma, steps, n_chains):   # measures the floor of the wrong recursion
        w = np.zeros(n_chains)
        rng = np.random.default_rng(0)
        for _ in range(steps):
            w = (1 - eta * mu) * w - eta * sigma * rng.normal(size=n_chains) * 1.2
        loss = 0.5 * mu * w**2
        return loss.mean(), loss.std(ddof=1) / np.sqrt(n_chains)

    assert not ch02.check_measured_floor(biased)
