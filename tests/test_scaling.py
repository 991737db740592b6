"""Closed forms of sgdlab.scaling against numerical optimisation, Optax and Monte Carlo."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import optimize

from sgdlab import scaling


def test_linear_scaling_and_momentum_horizon():
    assert scaling.linear_scaled_rate(0.01, 64) == pytest.approx(0.64)
    assert scaling.momentum_horizon(100.0, 4) == pytest.approx(25.0)
    with pytest.raises(ValueError, match="batch_size"):
        scaling.momentum_horizon(10.0, 20)


def test_two_small_steps_equal_one_double_step_up_to_eta_squared():
    # loss_i(b) = L/2 (b - y_i)^2: two steps at rate eta minus one step at 2*eta on the mean
    # of the two gradients is exactly eta^2 L^2 (b - y_1) = eta^2 * H * grad_1
    L, b, y1, y2 = 1.7, 0.4, -1.2, 2.5
    for eta in [0.1, 0.01, 0.001]:
        b1 = b - eta * L * (b - y1)
        two = b1 - eta * L * (b1 - y2)
        one = b - 2 * eta * 0.5 * (L * (b - y1) + L * (b - y2))
        assert two - one == pytest.approx(eta**2 * L * L * (b - y1), rel=1e-9)


def test_optax_momentum_is_mcallesters_average():
    # mu_t = (1 - 1/N) mu_{t-1} + g_t / N,  w <- w - eta' mu_t   ==   optax.sgd(eta'/N, momentum=1 - 1/N)
    eta_prime_1, n1, B = 0.05, 40.0, 4
    lr, beta = scaling.optax_momentum(eta_prime_1, n1, B)
    n_b = n1 / B
    assert beta == pytest.approx(1 - B / n1) and lr == pytest.approx(B**2 * eta_prime_1 / n1)
    grads = jax.random.normal(jax.random.key(0), (50, 3))
    tx = optax.sgd(lr, momentum=beta)

    def step(carry, g):
        w_opt, s, w_ref, mu = carry
        u, s = tx.update(g, s, w_opt)
        mu = (1 - 1 / n_b) * mu + g / n_b
        return (w_opt + u, s, w_ref - B * eta_prime_1 * mu, mu), None

    w0 = jnp.zeros(3)
    (w_opt, _, w_ref, _), _ = jax.lax.scan(step, (w0, tx.init(w0), w0, w0), grads)
    np.testing.assert_allclose(w_opt, w_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n,B", [(10.0, 1), (5.0, 4), (2.5, 16)])
def test_ema_stationary_variance_monte_carlo(n, B):
    # running average of minibatch means of B standard normals, many independent chains
    chains, steps, sigma2 = 20000, 400, 3.0
    keys = jax.random.split(jax.random.key(1), steps)

    def step(m, k):
        x = jnp.sqrt(sigma2 / B) * jax.random.normal(k, (chains,))
        return (1 - 1 / n) * m + x / n, None

    m, _ = jax.lax.scan(step, jnp.zeros(chains), keys)
    m = np.asarray(m, np.float64)
    want = scaling.ema_stationary_variance(sigma2 / B, n)
    # standard error of a normal sample variance: var * sqrt(2 / (n - 1))
    assert abs(m.var(ddof=1) - want) < 4 * want * math.sqrt(2 / (chains - 1))


def test_mcallester_optimum_matches_numerical_maximisation():
    g, sigma, L = 0.3, 2.0, 4.0

    def per_example(z):
        log_b, eta = z
        return -scaling.guaranteed_decrease(abs(eta), math.exp(log_b), g, sigma, L) / math.exp(log_b)

    res = optimize.minimize(per_example, x0=[math.log(100.0), 0.05], method="Nelder-Mead",
                            options=dict(xatol=1e-10, fatol=1e-16, maxiter=20000))
    b_num, eta_num = math.exp(res.x[0]), abs(res.x[1])
    assert b_num == pytest.approx(scaling.mcallester_batch_size(g, sigma), rel=1e-3)
    assert eta_num == pytest.approx(1 / (2 * L), rel=1e-3)
    b_star = scaling.mcallester_batch_size(g, sigma)
    assert b_star == pytest.approx(16 * sigma**2 / g**2)
    assert scaling.mcallester_rate(b_star, g, sigma, L) == pytest.approx(1 / (2 * L))
    assert scaling.mcallester_rate(b_star / 8, g, sigma, L) == pytest.approx(1 / (16 * L))
    assert scaling.bound_optimal_rate(b_star, g, sigma, L) == pytest.approx(1 / (2 * L))


@pytest.mark.parametrize("B", [1.0, 30.0, 500.0])
def test_bound_optimal_rate_matches_scalar_maximisation(B):
    g, sigma, L = -0.5, 1.0, 2.0
    res = optimize.minimize_scalar(lambda e: -scaling.guaranteed_decrease(e, B, g, sigma, L),
                                   bounds=(0.0, 10 / L), method="bounded", options=dict(xatol=1e-12))
    want = scaling.bound_optimal_rate(B, g, sigma, L)
    assert res.x == pytest.approx(want, abs=1e-6)


def test_expected_decrease_quadratic_monte_carlo():
    # f(b) = L/2 b^2 at b0 = g/L; per-example gradients L b - y with y ~ N(0, sigma^2)
    L, g, sigma, B, eta, draws = 2.0, 0.5, 3.0, 8, 0.2, 200000
    b0 = g / L
    ys = sigma * jax.random.normal(jax.random.key(2), (draws, B))
    g_hat = L * b0 - ys.mean(1)
    dec = np.asarray(0.5 * L * b0**2 - 0.5 * L * (b0 - eta * g_hat) ** 2, np.float64)
    want = scaling.expected_decrease_quadratic(eta, B, g, sigma, L)
    assert abs(dec.mean() - want) < 4 * dec.std(ddof=1) / math.sqrt(draws)


def test_second_moment_of_mean_monte_carlo():
    g, sigma, B, draws = 0.4, 2.0, 16, 200000
    x = g + sigma * jax.random.normal(jax.random.key(3), (draws, B))
    sq = np.asarray(x.mean(1) ** 2, np.float64)
    want = scaling.second_moment_of_mean(g, sigma, B)
    assert abs(sq.mean() - want) < 4 * sq.std(ddof=1) / math.sqrt(draws)


@pytest.mark.parametrize("eta,steps", [(0.05, 40), (0.5, 1), (0.5, 10), (1.0, 7)])
def test_quadratic_sgd_error_monte_carlo(eta, steps):
    # SGD on f(b) = L/2 b^2 with per-example gradients L b - y, y ~ N(0, sigma^2), batches of B
    L, e0, sigma, B, chains = 1.0, 1.0, 3.0, 4, 100000

    def step(e, k):
        xi = sigma * jax.random.normal(k, (chains, B)).mean(1)
        return e - eta * (L * e - xi), None

    e, _ = jax.lax.scan(step, jnp.full(chains, e0), jax.random.split(jax.random.key(4), steps))
    sq = np.asarray(e, np.float64) ** 2
    want = scaling.quadratic_sgd_error(e0, eta, B, sigma, L, steps)
    assert abs(sq.mean() - want) < 4 * sq.std(ddof=1) / math.sqrt(chains)


@pytest.mark.parametrize("g,sigma,L", [(0.1, 1.0, 1.0), (0.3, 2.0, 4.0), (-1.0, 0.5, 2.0)])
def test_best_guaranteed_progress_per_example(g, sigma, L):
    # at (B*, eta*) the guarantee per example is g^4 / (128 L sigma^2), and no (B, eta) does better
    b_star = scaling.mcallester_batch_size(g, sigma)
    best = scaling.guaranteed_decrease(1 / (2 * L), b_star, g, sigma, L) / b_star
    assert best == pytest.approx(g**4 / (128 * L * sigma**2), rel=1e-12)
    for B in b_star * np.array([0.25, 0.5, 0.9, 1.1, 2.0, 4.0]):
        eta = scaling.bound_optimal_rate(B, g, sigma, L)
        assert scaling.guaranteed_decrease(eta, B, g, sigma, L) / B < best


def test_goyal_and_cosine_warmup_schedules_match_their_formulas():
    # the schedules Chapter 6 builds from Optax, against the closed forms it states
    eta0, k, warm, total = 0.1, 8, 20, 120
    goyal = optax.join_schedules([optax.linear_schedule(eta0, k * eta0, warm), optax.constant_schedule(k * eta0)],
                                 boundaries=[warm])
    cosine = optax.warmup_cosine_decay_schedule(eta0, k * eta0, warm, total, 0.0)
    for t in range(total):
        ramp = eta0 + (k - 1) * eta0 * min(t, warm) / warm
        assert float(goyal(t)) == pytest.approx(ramp, rel=1e-6)
        want = ramp if t < warm else 0.5 * k * eta0 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))
        assert float(cosine(t)) == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_guarantee_holds_with_student_t_probability():
    # 1-D quadratic with curvature L = 1: the one-step guarantee at (B*, eta*) holds exactly when
    # (g_hat - g) / (sigma_hat / sqrt(B)) <= 2 (g_hat > 0), probability P(t_{B-1} <= 2)
    from scipy import stats

    g, sigma, draws = 0.25, 1.0, 100000
    B = int(round(scaling.mcallester_batch_size(g, sigma)))
    eta = 0.5
    y = np.random.default_rng(0).standard_normal((draws, B)) * sigma
    per_example = g - y
    g_b, s_b = per_example.mean(1), per_example.std(1, ddof=1)
    decrease = 0.5 * (g**2 - (g - eta * g_b) ** 2)
    guarantee = eta * np.abs(g_b) * (np.abs(g_b) - 2 * s_b / math.sqrt(B)) - 0.5 * eta**2 * g_b**2
    held = np.mean(decrease >= guarantee - 1e-12)
    p = stats.t.cdf(2, B - 1)
    assert abs(held - p) < 4 * math.sqrt(p * (1 - p) / draws)


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: scaling.linear_scaled_rate(-1.0, 4), "eta_1"),
        (lambda: scaling.linear_scaled_rate(0.1, 0), "batch_size"),
        (lambda: scaling.mcallester_batch_size(0.0, 1.0), "g"),
        (lambda: scaling.mcallester_rate(4, 0.1, 0.0, 1.0), "sigma"),
        (lambda: scaling.guaranteed_decrease(0.1, 4, 0.1, 1.0, 0.0), "curvature"),
        (lambda: scaling.ema_stationary_variance(1.0, 0.5), "n"),
        (lambda: scaling.optax_momentum(float("nan"), 10.0, 1), "eta_prime_1"),
        (lambda: scaling.second_moment_of_mean(1.0, 1.0, 0), "batch_size"),
        (lambda: scaling.quadratic_sgd_error(1.0, 0.1, 4, 1.0, 1.0, -1), "steps"),
    ],
)
def test_validation_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_coursework_checks_of_chapter_6():
    from sgdlab.coursework import ch06

    def momentum_pair(eta_prime_1, n_1, batch_size):
        n_b = n_1 / batch_size
        return batch_size * eta_prime_1 / n_b, 1 - 1 / n_b

    assert ch06.check_momentum_for_batch(momentum_pair)
    assert not ch06.check_momentum_for_batch(lambda e, n, b: (b * e / n, 1 - b / n))  # rate scaled only linearly
    refused = ch06.check_momentum_for_batch(lambda e, n, b: scaling.optax_momentum(e, n, b))
    assert not refused and "package's own" in repr(refused)

    def b_and_eta(g, sigma, curvature, batch_size):
        b_star = 16 * sigma**2 / g**2
        return b_star, min(batch_size / b_star, 1.0) / (2 * curvature)

    assert ch06.check_mcallester_b_and_eta(b_and_eta)
    assert not ch06.check_mcallester_b_and_eta(lambda g, s, c, b: (4 * s**2 / g**2, 1 / (2 * c)))
    assert not ch06.check_mcallester_b_and_eta(lambda g, s, c, b: (scaling.mcallester_batch_size(g, s), 1.0))

    def floor(eta, batch_size, sigma, curvature, steps, key):
        def step(e, k):
            return (1 - curvature * eta) * e + eta * sigma / jnp.sqrt(batch_size) * jax.random.normal(k, e.shape), None
        return jax.lax.scan(step, jnp.zeros(4000), jax.random.split(key, steps))[0]

    def batch_ignored(eta, batch_size, sigma, curvature, steps, key):
        return floor(eta, 1, sigma, curvature, steps, key)

    assert ch06.check_noise_floor(floor)
    assert not ch06.check_noise_floor(batch_ignored)
