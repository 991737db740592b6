"""sgdlab.sde: the exact stationary covariance against a long simulation and a closed form; Mandt's
continuous form against the exact one as the step goes to zero."""

import jax
import numpy as np
import pytest

from sgdlab import sde


def problem(d=3, seed=0):
    """A Hessian and a noise covariance that do not commute."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = q @ np.diag(np.linspace(0.5, 4.0, d)) @ q.T
    m = rng.normal(size=(d, d))
    return a, m @ m.T / d + 0.1 * np.eye(d)


def test_discrete_covariance_solves_its_equation_and_the_commuting_closed_form():
    a, c = problem()
    eta, b = 0.3, 4
    s = sde.stationary_covariance(a, c, eta, b)
    m = np.eye(3) - eta * a
    np.testing.assert_allclose(s, m @ s @ m.T + eta**2 * c / b, atol=1e-12)
    lam = np.array([0.5, 1.5, 3.0])
    d = np.array([2.0, 1.0, 0.3])
    closed = eta / b * d / (lam * (2 - eta * lam))      # diagonal A and C
    np.testing.assert_allclose(sde.stationary_covariance(np.diag(lam), np.diag(d), eta, b), np.diag(closed), rtol=1e-10)


def test_exact_covariance_agrees_with_a_long_simulation():
    a, c = problem()
    eta, b = 0.4, 2                                     # eta * lambda_max = 1.6: far from continuous time
    exact = sde.stationary_covariance(a, c, eta, b)
    sim = sde.simulate_stationary_covariance(jax.random.key(0), a, c, eta, b, steps=2000, n_chains=1000)
    assert np.all(np.abs(sim.cov - exact) < 4 * sim.se + 1e-6)
    # and the continuous approximation is far outside the error bars at this step
    cont = sde.continuous_stationary_covariance(a, c, eta, b)
    assert np.max(np.abs(sim.cov - cont) / sim.se) > 10


def test_continuous_form_is_the_small_step_limit():
    a, c = problem(4, seed=1)
    errors = []
    for eta in (0.01, 0.001, 0.0001):
        exact = sde.stationary_covariance(a, c, eta, 8)
        cont = sde.continuous_stationary_covariance(a, c, eta, 8)
        np.testing.assert_allclose(a @ cont + cont @ a, eta / 8 * c, atol=1e-12)
        errors.append(np.linalg.norm(exact - cont) / np.linalg.norm(exact))
    errors = np.array(errors)
    assert errors[-1] < 1e-3
    np.testing.assert_allclose(errors[:-1] / errors[1:], 10.0, rtol=0.05)   # the error is O(eta)


def test_commuting_ratio_is_one_minus_half_eta_lambda():
    lam = np.array([1.0, 5.0])
    eta = 0.2
    ratio = np.diag(sde.continuous_stationary_covariance(np.diag(lam), np.eye(2), eta, 1)) / np.diag(
        sde.stationary_covariance(np.diag(lam), np.eye(2), eta, 1))
    np.testing.assert_allclose(ratio, 1 - eta * lam / 2, rtol=1e-10)


def test_arguments_are_validated():
    a, c = problem()
    with pytest.raises(ValueError, match="learning_rate"):
        sde.stationary_covariance(a, c, 1.0, 1)           # eta * lambda_max = 4 >= 2
    with pytest.raises(ValueError, match="positive definite"):
        sde.stationary_covariance(np.diag([1.0, 0.0, 1.0]), c, 0.1, 1)
    with pytest.raises(ValueError, match="noise_cov"):
        sde.continuous_stationary_covariance(a, c[:2, :2], 0.1, 1)
    with pytest.raises(ValueError, match="noise_cov"):
        sde.stationary_covariance(a, -np.eye(3), 0.1, 1)
    with pytest.raises(ValueError, match="hessian"):
        sde.stationary_covariance(np.triu(a), c, 0.1, 1)
    with pytest.raises(ValueError, match="batch_size"):
        sde.stationary_covariance(a, c, 0.1, 0)
    with pytest.raises(ValueError, match="n_chains"):
        sde.simulate_stationary_covariance(jax.random.key(0), a, c, 0.1, 1, steps=10, n_chains=1)


def least_squares_data(n=200, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.array([0.6, 1.0, 1.6])
    y = x @ rng.normal(size=d) + 0.5 * rng.normal(size=n)
    return x, y


def test_least_squares_covariance_agrees_with_real_minibatch_sgd():
    x, y = least_squares_data()
    h = x.T @ x / len(y)
    eta = 0.9 / np.linalg.eigvalsh(h).max()
    exact = sde.least_squares_stationary_covariance(x, y, eta, 2)
    sim = sde.simulate_least_squares_sgd(jax.random.key(0), x, y, eta, 2, steps=1500, n_chains=800)
    assert np.all(np.abs(sim.cov - exact) < 4 * sim.se + 1e-7)
    # the additive-noise model misses the multiplicative part of the noise at this step
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    g = x * (x @ w - y)[:, None]
    additive = sde.stationary_covariance(h, g.T @ g / len(y), eta, 2)
    assert np.trace(sim.cov) > np.trace(additive) + 10 * np.sqrt(np.sum(np.diag(sim.se) ** 2))


def test_least_squares_covariance_tends_to_the_additive_one_at_small_steps():
    x, y = least_squares_data()
    h = x.T @ x / len(y)
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    g = x * (x @ w - y)[:, None]
    eta = 1e-4
    exact = sde.least_squares_stationary_covariance(x, y, eta, 5)
    np.testing.assert_allclose(exact, sde.stationary_covariance(h, g.T @ g / len(y), eta, 5), rtol=1e-3)


def test_least_squares_covariance_rejects_an_unstable_step():
    x, y = least_squares_data()
    lam_max = np.linalg.eigvalsh(x.T @ x / len(y)).max()
    with pytest.raises(ValueError, match="spectral radius"):
        sde.least_squares_stationary_covariance(x, y, 1.9 / lam_max, 1)   # stable for GD, not for SGD
