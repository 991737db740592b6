"""The noisy quadratic model against independent references: float64 recursions written from the
paper's 3x3 matrices, Monte Carlo of Optax's own optimizers, brute-force first crossings, a
Lyapunov solve, and the sample mean for the information-theoretic bound."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from sgdlab import nqm

H = np.array([1.0, 0.5, 0.2, 0.05])
C = np.array([1.0, 0.4, 0.3, 0.05])


def reference_risk(h, c, lr, bs, steps, gamma=0.0, beta=0.0, mu=0.0, s0=1.0):
    """Float64 second moments from the paper's recursions: SGD's closed form, heavy ball's T
    (eq. 21 of Zhang et al.) on (E theta^2, E v^2, E theta v), the EMA's T on (E theta^2, E u^2, E theta u)."""
    x = lr * h ** (1 - gamma)
    n = lr**2 * h ** (-2 * gamma) * c / bs
    t = np.arange(steps + 1)[:, None]
    if beta == 0 and mu == 0:
        floor = n / (x * (2 - x))
        return 0.5 * (h * (floor + (1 - x) ** (2 * t) * (s0 - floor))).sum(axis=1)
    if mu == 0:
        T = np.array([[(1 - x) ** 2, beta**2 + 0 * x, 2 * beta * (1 - x)],
                      [x**2, beta**2 + 0 * x, -2 * beta * x],
                      [-x * (1 - x), beta**2 + 0 * x, beta * (1 - 2 * x)]])
        p, read, w = np.stack([s0 + 0 * x, 0 * x, 0 * x]), 0, 1.0
    else:
        T = np.array([[(1 - x) ** 2, 0 * x, 0 * x],
                      [(1 - x) ** 2, mu**2 + 0 * x, 2 * mu * (1 - x)],
                      [(1 - x) ** 2, 0 * x, mu * (1 - x)]])
        p, read, w = np.stack([s0 + 0 * x, s0 / (1 - mu) ** 2 + 0 * x, s0 / (1 - mu) + 0 * x]), 1, (1 - mu) ** 2
    out = [0.5 * w * (h * p[read]).sum()]
    for _ in range(steps):
        p = np.einsum("ijd,jd->id", T, p) + n
        out.append(0.5 * w * (h * p[read]).sum())
    return np.array(out)


@pytest.mark.parametrize("kw", [dict(), dict(gamma=0.5), dict(beta=0.9), dict(beta=0.6, gamma=0.25),
                                dict(mu=0.9), dict(mu=0.5, gamma=0.75)])
def test_risk_matches_the_papers_recursions(kw):
    lr, bs = 0.7, 8.0
    got = nqm.risk(H, C, learning_rate=lr, batch_size=bs, steps=300, gamma=kw.get("gamma", 0.0),
                   momentum=kw.get("beta", 0.0), ema=kw.get("mu", 0.0), s0=2.0)
    want = reference_risk(H, C, lr, bs, 300, s0=2.0, **kw)
    np.testing.assert_allclose(got, want, rtol=2e-5)


def test_risk_broadcasts_and_keeps_flat_directions_exact():
    got = nqm.risk(H, C, learning_rate=[0.1, 0.5, 1.0], batch_size=4.0, steps=50)
    assert got.shape == (3, 51)
    for k, lr in enumerate([0.1, 0.5, 1.0]):
        np.testing.assert_allclose(got[k], reference_risk(H, C, lr, 4.0, 50), rtol=2e-5)
    # x = 1e-9: in float32 1 - x == 1, so a naive recursion would never move
    h = np.array([1e-7, 1e-5])
    got = nqm.risk(h, h, learning_rate=0.01, batch_size=1e6, steps=100_000)
    np.testing.assert_allclose(got[::1000], reference_risk(h, h, 0.01, 1e6, 100_000)[::1000], rtol=1e-4)


def monte_carlo(key, lr, bs, steps, chains, gamma=0.0, beta=0.0, mu=0.0):
    """Loss of optax.sgd (momentum=beta) on the NQM, preconditioned by H^-gamma, with B per-example
    noises averaged per step; with mu > 0, the loss of an EMA of the iterates kept by hand."""
    h, c = jnp.asarray(H, jnp.float32), jnp.asarray(C, jnp.float32)
    tx = optax.sgd(lr, momentum=beta if beta > 0 else None)

    def chain(k):
        k0, k1 = jax.random.split(k)
        w0 = jax.random.normal(k0, h.shape)

        def step(carry, kt):
            w, avg, state = carry
            eps = jnp.sqrt(c) * jax.random.normal(kt, (bs,) + h.shape).mean(axis=0)
            updates, state = tx.update(h ** (-gamma) * (h * w + eps), state, w)
            w = optax.apply_updates(w, updates)
            avg = mu * avg + (1 - mu) * w
            return (w, avg, state), 0.5 * jnp.sum(h * avg**2)

        _, losses = jax.lax.scan(step, (w0, w0, tx.init(w0)), jax.random.split(k1, steps))
        return jnp.concatenate([0.5 * jnp.sum(h * w0**2)[None], losses])

    losses = jax.jit(jax.vmap(chain))(jax.random.split(key, chains))
    return np.asarray(losses.mean(axis=0)), np.asarray(losses.std(axis=0) / np.sqrt(chains))


@pytest.mark.parametrize("seed, kw", list(enumerate([dict(), dict(gamma=0.5), dict(beta=0.8), dict(mu=0.9)])))
def test_risk_against_monte_carlo_of_optax(seed, kw):
    lr, bs, steps = 0.5, 4, 30
    mean, se = monte_carlo(jax.random.key(seed), lr, bs, steps, 8_000, **kw)
    exact = nqm.risk(H, C, learning_rate=lr, batch_size=bs, steps=steps, gamma=kw.get("gamma", 0.0),
                     momentum=kw.get("beta", 0.0), ema=kw.get("mu", 0.0))
    ts = [1, 3, 10, 30]
    assert np.all(np.abs(mean[ts] - exact[ts]) < 4 * se[ts]), (mean[ts], exact[ts], se[ts])


def first_crossing(curve, target):
    below = np.nonzero(curve <= target)[0]
    return float(below[0]) if below.size else np.inf


@pytest.mark.parametrize("kw", [dict(), dict(gamma=0.5), dict(beta=0.9), dict(mu=0.8), dict(beta=0.5, mu=0.5)])
def test_steps_to_target_against_brute_force(kw):
    h = 1.0 / np.arange(1, 31)
    target, steps = 0.08, 3000
    bss, lrs = np.array([2.0, 16.0, 256.0]), np.geomspace(0.05, 2.5, 9)
    got = nqm.steps_to_target(h, h, target, batch_sizes=bss, learning_rates=lrs, gamma=kw.get("gamma", 0.0),
                              momentum=kw.get("beta", 0.0), ema=kw.get("mu", 0.0))
    curves = nqm.risk(h, h, learning_rate=lrs[None, :], batch_size=bss[:, None], steps=steps,
                      gamma=kw.get("gamma", 0.0), momentum=kw.get("beta", 0.0), ema=kw.get("mu", 0.0))
    brute = np.array([[first_crossing(cv, target) for cv in row] for row in curves])
    x_max = lrs * h.max() ** (1 - kw.get("gamma", 0.0))
    unstable = x_max >= 2 * (1 + kw.get("beta", 0.0))
    brute[:, unstable] = np.inf
    assert np.isfinite(brute).sum() >= 10  # the cases are not vacuous
    assert np.all(got.steps_per_rate[np.isinf(brute)] > steps)  # beyond the brute-force horizon, or never
    if "beta" not in kw:  # the risk falls monotonically: the search finds the first crossing exactly
        np.testing.assert_array_equal(got.steps_per_rate[np.isfinite(brute)], brute[np.isfinite(brute)])
        best = np.argmin(brute, axis=1)
        np.testing.assert_array_equal(got.steps, brute[np.arange(3), best])
        np.testing.assert_allclose(got.learning_rate, lrs[best])
    else:  # heavy ball oscillates: a genuine crossing in the first octave that reaches the target
        t, ok = got.steps_per_rate, np.isfinite(brute)
        ti = t[ok].astype(int)
        assert np.all(curves[ok, ti] <= target) and np.all(curves[ok, ti - 1] > target)
        assert np.all(t[ok] >= brute[ok]) and np.all(np.floor(np.log2(t[ok] - 1)) == np.floor(np.log2(brute[ok] - 1)))
        assert np.mean(t[ok] == brute[ok]) >= 0.75


def test_steps_to_target_edge_cases():
    h = 1.0 / np.arange(1, 11)

    def run(target, lrs, c=h, **kw):
        return nqm.steps_to_target(h, c, target, batch_sizes=[1.0], learning_rates=lrs, **kw)

    # start already below the target: 0 steps; a target below every floor: never
    assert np.all(run(10.0, [0.1, 0.2, 0.3]).steps_per_rate == 0)
    got = run(1e-6, [0.5, 1.0, 1.5])
    assert np.isinf(got.steps[0]) and np.isnan(got.learning_rate[0])
    # alpha * h_max >= 2 diverges even with no noise at all
    got = run(1e-3, [1.9, 2.0, 2.5], c=0 * h)
    assert np.isfinite(got.steps_per_rate[0, 0]) and np.all(np.isinf(got.steps_per_rate[0, 1:]))
    # heavy ball is stable up to alpha * h < 2 (1 + beta)
    got = run(1e-3, [2.5, 3.9, 4.1], c=0 * h, momentum=0.99)
    assert np.all(np.isfinite(got.steps_per_rate[0, :2])) and np.isinf(got.steps_per_rate[0, 2])
    # millions of steps in flat directions, against the closed form of one coordinate
    flat = np.full(10, 1e-6)
    got = nqm.steps_to_target(flat, 0 * flat, 0.5e-5 * 0.01, batch_sizes=[1.0], learning_rates=[0.5, 0.25, 0.125])
    want = np.ceil(np.log(0.01) / (2 * np.log1p(-np.array([0.5, 0.25, 0.125]) * 1e-6)))
    assert np.all(np.abs(got.steps_per_rate[0] - want) <= 1) and want.min() > 4e6


def lyapunov_floor(h, c, lr, bs, gamma, beta, mu):
    """Stationary loss per coordinate from scipy's discrete Lyapunov solver on the mean dynamics."""
    out = []
    for hi, ci in zip(h, c):
        x, n = lr * hi ** (1 - gamma), lr**2 * hi ** (-2 * gamma) * ci / bs
        if mu == 0:
            a, read, w = np.array([[1 - x, beta], [-x, beta]]), 0, 1.0
        else:
            a, read, w = np.array([[1 - x, 0.0], [1 - x, mu]]), 1, (1 - mu) ** 2
        cov = scipy.linalg.solve_discrete_lyapunov(a, n * np.ones((2, 2)))
        out.append(0.5 * hi * w * cov[read, read])
    return np.array(out)


@pytest.mark.parametrize("gamma, beta, mu", [(0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (0.0, 0.9, 0.0),
                                             (0.25, 0.5, 0.0), (0.0, 0.0, 0.9), (0.75, 0.0, 0.5)])
def test_noise_floor_closed_forms(gamma, beta, mu):
    floor = nqm.noise_floor(H, C, learning_rate=0.6, batch_size=8, gamma=gamma, momentum=beta, ema=mu)
    np.testing.assert_allclose(floor, lyapunov_floor(H, C, 0.6, 8, gamma, beta, mu), rtol=1e-10)
    if beta == 0 and mu == 0:  # the lecture's formula, with the 1/B restored
        x = 0.6 * H ** (1 - gamma)
        np.testing.assert_allclose(floor, 0.6 * C * H**-gamma / (2 * 8 * (2 - x)), rtol=1e-12)
    # the risk settles on it
    late = nqm.risk(H, C, learning_rate=0.6, batch_size=8, steps=4000, gamma=gamma, momentum=beta, ema=mu)[-1]
    assert late == pytest.approx(floor.sum(), rel=1e-4)
    if mu > 0:  # the EMA lowers the floor
        assert np.all(floor < nqm.noise_floor(H, C, learning_rate=0.6, batch_size=8, gamma=gamma))


@pytest.mark.parametrize("kw", [dict(), dict(gamma=0.5), dict(beta=0.9), dict(mu=0.8)])
def test_no_sgd_beats_the_bayes_risk(kw):
    """Gaussian noise, prior N(0, s0): after n = t B examples no estimator has risk below
    1/2 sum h / (1/s0 + n h^2 / c), so at the step where the risk reaches the target, neither does SGD."""
    h = 1.0 / np.arange(1, 31)  # the shapes of the brute-force test, so its programs are reused
    bss, lrs = np.array([2.0, 16.0, 256.0]), np.geomspace(0.05, 2.5, 9)
    got = nqm.steps_to_target(h, h, 0.08, batch_sizes=bss, learning_rates=lrs, gamma=kw.get("gamma", 0.0),
                              momentum=kw.get("beta", 0.0), ema=kw.get("mu", 0.0))
    n = got.steps_per_rate * bss[:, None]
    ok = np.isfinite(n)
    bayes = 0.5 * (h / (1 + n[ok][:, None] * h)).sum(axis=1)
    assert ok.sum() >= 10 and np.all(bayes <= 0.08)


def test_information_bound():
    h = 1.0 / np.arange(1, 9)
    n = 50
    assert nqm.information_bound(h, h, n) == pytest.approx(h.size / (2 * n))
    # the sample mean of n examples x ~ N(0, H^-1 C H^-1) has exactly that risk
    c = np.linspace(0.1, 1.0, h.size)
    x = jax.random.normal(jax.random.key(0), (20_000, n, h.size)) * np.sqrt(c) / h
    losses = 0.5 * (h * np.asarray(x.mean(axis=1)) ** 2).sum(axis=1)
    bound = nqm.information_bound(h, c, n)
    assert abs(losses.mean() - bound) < 4 * losses.std() / np.sqrt(losses.size)
    np.testing.assert_allclose(nqm.information_bound(h, c, [n, 2 * n]), [bound, bound / 2])


def test_stationary_variance_solves_the_lyapunov_equation():
    for alpha, beta, lam in [(0.1, 0.0, 1.0), (0.05, 0.9, 2.0), (1.5, 0.5, 1.0)]:
        a = np.array([[beta, lam], [-alpha * beta, 1 - alpha * lam]])
        b = np.array([[1.0], [-alpha]])
        cov = scipy.linalg.solve_discrete_lyapunov(a, 2.0 * b @ b.T)
        assert nqm.stationary_variance(alpha, beta, lam, 2.0) == pytest.approx(cov[1, 1], rel=1e-9)


def test_noisy_quadratic_loss_monte_carlo():
    chains = 4000
    for k, (a, b) in enumerate([(0.1, 0.0), (0.01, 0.9), (0.5, 0.5)]):
        curve = nqm.noisy_quadratic_loss(jax.random.key(k), a, b, [1.0], 1.0, [0.0], steps=1500, n_chains=chains)
        want = 0.5 * nqm.stationary_variance(a, b, 1.0, 1.0)
        assert abs(curve[-1] - want) < 5 * want * np.sqrt(2 / chains)
    # new alpha and beta reuse the compiled program
    before = nqm._chains_loss._cache_size()
    nqm.noisy_quadratic_loss(jax.random.key(9), 0.2, 0.3, [1.0], 1.0, [0.0], steps=1500, n_chains=chains)
    assert nqm._chains_loss._cache_size() == before


def test_validation():
    with pytest.raises(ValueError, match="h"):
        nqm.risk([1.0, -1.0], [1.0, 1.0], learning_rate=0.1, batch_size=1, steps=3)
    with pytest.raises(ValueError, match="c must"):
        nqm.risk([1.0], [1.0, 1.0], learning_rate=0.1, batch_size=1, steps=3)
    with pytest.raises(ValueError, match="learning_rate"):
        nqm.risk([1.0], [1.0], learning_rate=0.0, batch_size=1, steps=3)
    with pytest.raises(ValueError, match="broadcast"):
        nqm.risk([1.0], [1.0], learning_rate=[0.1, 0.2], batch_size=[1, 2, 3], steps=3)
    with pytest.raises(ValueError, match="momentum"):
        nqm.risk([1.0], [1.0], learning_rate=0.1, batch_size=1, steps=3, momentum=1.0)
    with pytest.raises(ValueError, match="gamma"):
        nqm.steps_to_target([1.0], [1.0], 0.1, batch_sizes=[1], learning_rates=[0.1], gamma=1.5)
    with pytest.raises(ValueError, match="target"):
        nqm.steps_to_target([1.0], [1.0], 0.0, batch_sizes=[1], learning_rates=[0.1])
    with pytest.raises(ValueError, match="batch_sizes"):
        nqm.steps_to_target([1.0], [1.0], 0.1, batch_sizes=[0], learning_rates=[0.1])
    with pytest.raises(ValueError, match="both"):
        nqm.noise_floor([1.0], [1.0], learning_rate=0.1, batch_size=1, momentum=0.5, ema=0.5)
    with pytest.raises(ValueError, match="unstable"):
        nqm.noise_floor([1.0], [1.0], learning_rate=2.0, batch_size=1)
    with pytest.raises(ValueError, match="beta"):
        nqm.stationary_variance(0.1, 1.0, 1.0, 1.0)


def test_stationary_variance_needs_a_stable_step():
    with pytest.raises(ValueError, match="alpha\\*lam"):
        nqm.stationary_variance(3.0, 0.0, 1.0, 1.0)
