"""sgdlab.momentum against eigenvalues, a plain recursion, a Lyapunov solve and Monte Carlo."""

import jax
import numpy as np
import pytest

from sgdlab import momentum
from sgdlab.coursework import ch04


def test_goh_parameters_kappa_100():
    alpha, beta = momentum.goh_parameters(100.0, 1.0)
    assert alpha == pytest.approx((2 / 11) ** 2)
    assert beta == pytest.approx((9 / 11) ** 2)
    assert momentum.optimal_rates(100.0) == pytest.approx((99 / 101, 9 / 11))


def test_roots_have_modulus_sqrt_beta_on_the_whole_spectrum():
    alpha, beta = momentum.goh_parameters(100.0, 1.0)
    lam = np.linspace(1.0, 100.0, 301)
    roots = momentum.heavy_ball_roots(alpha, beta, lam)
    np.testing.assert_allclose(np.abs(roots), np.sqrt(beta), rtol=1e-6)
    assert not np.allclose(np.abs(roots), 2 * np.sqrt(beta))


@pytest.mark.parametrize("alpha,beta", [(0.01, 0.0), (0.02, 0.5), (0.05, 0.9), (0.033, 0.67), (0.3, 0.2)])
def test_rate_is_the_spectral_radius(alpha, beta):
    lam = np.geomspace(1.0, 100.0, 9)
    mats = [np.array([[beta, l], [-alpha * beta, 1 - alpha * l]]) for l in lam]
    radius = max(np.abs(np.linalg.eigvals(a)).max() for a in mats)
    assert momentum.heavy_ball_rate(alpha, beta, lam) == pytest.approx(radius, rel=1e-7)
    if beta == 0:
        assert momentum.gd_rate(alpha, lam) == pytest.approx(radius)


def test_trajectory_is_optax_heavy_ball():
    lam = np.array([3.0, 1.0, 0.2])
    w0 = np.array([1.0, -2.0, 0.5])
    alpha, beta, steps = 0.1, 0.8, 50
    w, z, ref = w0.copy(), np.zeros(3), [w0.copy()]
    for _ in range(steps):  # reference recursion z <- beta z + grad, w <- w - alpha z
        z = beta * z + lam * w
        w = w - alpha * z
        ref.append(w.copy())
    np.testing.assert_allclose(momentum.heavy_ball_trajectory(alpha, beta, lam, w0, steps), np.array(ref), rtol=1e-4, atol=1e-6)


def test_measured_rates_match_formulas_within_two_percent_kappa_100():
    lam = np.geomspace(100.0, 1.0, 20)
    w0 = np.ones(20)
    rho_gd, rho_hb = momentum.optimal_rates(100.0)
    alpha, beta = momentum.goh_parameters(100.0, 1.0)
    hb = momentum.heavy_ball_trajectory(alpha, beta, lam, w0, 400)
    gd = momentum.heavy_ball_trajectory(2 / 101, 0.0, lam, w0, 1000)
    assert momentum.measured_rate(hb, 150, 350) == pytest.approx(rho_hb, rel=0.02)
    assert momentum.measured_rate(gd, 100, 1000) == pytest.approx(rho_gd, rel=0.02)


def test_validation():
    with pytest.raises(ValueError, match="lam_min"):
        momentum.goh_parameters(1.0, 2.0)
    with pytest.raises(ValueError, match="beta"):
        momentum.heavy_ball_trajectory(0.1, 1.0, [1.0], [1.0], 10)
    with pytest.raises(ValueError, match="alpha"):
        momentum.heavy_ball_trajectory(-0.1, 0.5, [1.0], [1.0], 10)
    with pytest.raises(ValueError, match="lambdas"):
        momentum.heavy_ball_trajectory(0.1, 0.5, [1.0, -1.0], [1.0, 1.0], 10)
    with pytest.raises(ValueError, match="w0"):
        momentum.heavy_ball_trajectory(0.1, 0.5, [1.0, 2.0], [1.0], 10)
    with pytest.raises(ValueError, match="steps"):
        momentum.heavy_ball_trajectory(0.1, 0.5, [1.0], [1.0], 0)
    with pytest.raises(ValueError, match="kappa"):
        momentum.optimal_rates(0.5)
    with pytest.raises(ValueError, match="start"):
        momentum.measured_rate(np.ones((10, 2)), 9, 10)


def test_coursework_check_goh():
    def stub(lam_max, lam_min):
        raise NotImplementedError

    def written_out(lam_max, lam_min):
        r = np.sqrt(lam_max / lam_min)
        return (2 / (np.sqrt(lam_max) + np.sqrt(lam_min))) ** 2, ((r - 1) / (r + 1)) ** 2

    def swapped(lam_max, lam_min):
        alpha, beta = written_out(lam_max, lam_min)
        return beta, alpha

    def package(lam_max, lam_min):
        return momentum.goh_parameters(lam_max, lam_min)

    assert ch04.check_goh_parameters(written_out)
    assert not ch04.check_goh_parameters(swapped)
    assert not ch04.check_goh_parameters(stub)
    refused = ch04.check_goh_parameters(package)
    assert not refused and "package" in repr(refused)


def test_nesterov_trajectory_is_the_recursion_and_its_rate_the_spectral_radius():
    lam = np.array([3.0, 1.0, 0.2])
    w0 = np.array([1.0, -2.0, 0.5])
    alpha, beta, steps = 0.1, 0.8, 50
    w, z, ref = w0.copy(), np.zeros(3), [w0.copy()]
    for _ in range(steps):  # z <- beta z + grad, w <- w - alpha (grad + beta z)
        g = lam * w
        z = beta * z + g
        w = w - alpha * (g + beta * z)
        ref.append(w.copy())
    got = momentum.heavy_ball_trajectory(alpha, beta, lam, w0, steps, nesterov=True)
    np.testing.assert_allclose(got, np.array(ref), rtol=1e-4, atol=1e-6)
    mats = [np.array([[beta, l], [-alpha * beta**2, 1 - alpha * l * (1 + beta)]]) for l in lam]
    radius = max(np.abs(np.linalg.eigvals(a)).max() for a in mats)
    assert momentum.nesterov_rate(alpha, beta, lam) == pytest.approx(radius, rel=1e-7)


def test_nesterov_parameters_minimise_the_rate_kappa_100():
    lam = np.geomspace(1.0, 100.0, 401)
    alpha, beta = momentum.nesterov_parameters(100.0, 1.0)
    best = momentum.nesterov_rate(alpha, beta, lam)
    assert best == pytest.approx(1 - 2 / np.sqrt(301), rel=1e-6)
    # no nearby (alpha, beta) does better: the tuning is a local minimum of the exact rate
    for da in (0.97, 1.03):
        for db in (-0.01, 0.01):
            assert momentum.nesterov_rate(alpha * da, beta + db, lam) > best - 1e-9
    # and the measured rate of Optax's Nesterov matches within 2 %
    w = momentum.heavy_ball_trajectory(alpha, beta, np.geomspace(100.0, 1.0, 20), np.ones(20), 400, nesterov=True)
    assert momentum.measured_rate(w, 150, 350) == pytest.approx(best, rel=0.02)


def test_quadratic_trajectory_matches_heavy_ball_and_rotation():
    import optax

    lam = np.array([0.04, 1.0])
    w0 = np.array([-3.0, 1.0])
    a = momentum.quadratic_trajectory(optax.sgd(0.5, momentum=0.7), np.diag(lam), w0, 40)
    b = momentum.heavy_ball_trajectory(0.5, 0.7, lam, w0, 40)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # gradient descent commutes with rotations: the path in a rotated valley is the rotated path
    h = momentum.rotated_valley(lam, 30.0)
    t = np.deg2rad(30.0)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    np.testing.assert_allclose(np.linalg.eigvalsh(h), lam, rtol=1e-12)
    rotated = momentum.quadratic_trajectory(optax.sgd(0.5), h, r @ w0, 40)
    np.testing.assert_allclose(rotated, momentum.heavy_ball_trajectory(0.5, 0.0, lam, w0, 40) @ r.T, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="hessian"):
        momentum.quadratic_trajectory(optax.sgd(0.1), np.array([[1.0, 2.0], [0.0, 1.0]]), w0, 5)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.81, 0.95])
def test_stability_iff_alpha_lambda_below_two_one_plus_beta(beta):
    limit = 2 * (1 + beta)
    for x in (0.5 * limit, 0.99 * limit, 1.01 * limit, 1.5 * limit):
        assert (momentum.heavy_ball_rate(x, beta, [1.0]) < 1) == (x < limit)
    band = ((1 - np.sqrt(beta)) ** 2, (1 + np.sqrt(beta)) ** 2)
    if beta > 0:
        inside = momentum.heavy_ball_roots(np.mean(band), beta, [1.0])
        assert np.all(np.abs(inside.imag) > 0)


def test_terminal_velocity_is_eta_prime_g():
    import jax.numpy as jnp
    import optax

    eta, n, g = 0.01, 20, 3.0
    tx = optax.sgd(eta, momentum=1 - 1 / n)

    def step(state, _):
        update, state = tx.update(jnp.float32(g), state)
        return state, -update

    _, sizes = jax.lax.scan(step, tx.init(jnp.zeros(())), None, length=200)
    t = np.arange(1, 201)
    np.testing.assert_allclose(np.asarray(sizes), n * eta * g * (1 - (1 - 1 / n) ** t), rtol=1e-4)


def test_coursework_check_nesterov_rate():
    def measure(lambdas, alpha, beta, start, stop, nesterov=True):
        lambdas = np.asarray(lambdas, float)
        path = momentum.heavy_ball_trajectory(alpha, beta, lambdas, np.ones_like(lambdas), stop, nesterov=nesterov)
        t = np.arange(start, stop)
        return float(np.exp(np.polyfit(t, np.log(np.linalg.norm(np.asarray(path[t], np.float64), axis=1)), 1)[0]))

    def heavy_ball_instead(lambdas, alpha, beta, start, stop):
        return measure(lambdas, alpha, beta, start, stop, nesterov=False)

    def theory(lambdas, alpha, beta, start, stop):
        return momentum.nesterov_rate(alpha, beta, lambdas)

    assert ch04.check_nesterov_rate(measure)
    assert not ch04.check_nesterov_rate(heavy_ball_instead)
    refused = ch04.check_nesterov_rate(theory)
    assert not refused and "package" in repr(refused)
