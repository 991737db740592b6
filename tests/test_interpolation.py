"""sgdlab.interpolation against exact averages, NumPy/SciPy and Monte Carlo with standard-error tolerances."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from sgdlab import interpolation as I


def system(seed=0, n_rows=40, n=8):
    """A consistent system whose rows have very different norms (so p_i is far from uniform)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n_rows, n)) * rng.uniform(0.2, 3.0, size=(n_rows, 1))
    x_star = rng.normal(size=n)
    return A, A @ x_star, x_star


def sphere_rows(seed=0, n=60, d=12):
    """Rows of equal norm: then S = beta H and Ma-Bassily-Belkin's bound is exact."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def chains(A, b, n_chains, steps, x0=None, seed=1):
    keys = jax.random.split(jax.random.key(seed), n_chains)
    return np.asarray(jax.vmap(lambda k: I.kaczmarz(A, b, k, steps=steps, x0=x0))(keys), np.float64)


def test_one_step_identity_exact_average_and_monte_carlo():
    A, b, x_star = system()
    rng = np.random.default_rng(3)
    x_k = x_star + rng.normal(size=x_star.size)
    e = x_k - x_star
    sq = np.sum(A**2, axis=1)
    p = sq / sq.sum()
    # the exact average over the row distribution of the projected error
    projected = e[None, :] - (A @ e / sq)[:, None] * A
    exact_average = p @ np.sum(projected**2, axis=1)
    formula = e @ (np.eye(e.size) - A.T @ A / sq.sum()) @ e
    assert exact_average == pytest.approx(formula, rel=1e-12)
    # Monte Carlo of the package's one step from x_k
    n_chains = 20_000
    xs = chains(A, b, n_chains, 1, x0=x_k)
    assert np.allclose(xs[:, 0], x_k, atol=1e-6)
    e1 = np.sum((xs[:, 1] - x_star) ** 2, axis=1)
    assert abs(e1.mean() - formula) < 4 * e1.std(ddof=1) / np.sqrt(n_chains)
    # and the rows are drawn with probability ||a_i||^2 / ||A||_F^2: identify each step's row
    step = xs[:, 1] - xs[:, 0]
    cos = np.abs(step @ A.T) / (np.linalg.norm(step, axis=1, keepdims=True) * np.sqrt(sq)[None, :])
    counts = np.bincount(np.argmax(cos, axis=1), minlength=A.shape[0])
    freq = counts / n_chains
    assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n_chains) + 1e-12)


def test_rate_bound_and_identity_along_many_chains():
    A, b, x_star = system(seed=1)
    rho = I.kaczmarz_rate(A)
    s = np.linalg.svd(A, compute_uv=False)
    assert rho == pytest.approx(1 - s.min() ** 2 / np.sum(A**2), rel=1e-10)
    n_chains, steps = 4000, 120
    xs = chains(A, b, n_chains, steps, seed=2)
    err = xs - x_star
    sq_err = np.sum(err**2, axis=-1)  # (chains, steps + 1)
    mean, se = sq_err.mean(0), sq_err.std(0, ddof=1) / np.sqrt(n_chains)
    bound = rho ** np.arange(steps + 1) * sq_err[0, 0]
    assert np.all(mean <= bound * (1 + 1e-6) + 4 * se)
    # E[ ||e_{k+1}||^2 - e_k^T (I - A^T A/||A||_F^2) e_k ] = 0 at every step k
    M = np.eye(A.shape[1]) - A.T @ A / np.sum(A**2)
    gap = sq_err[:, 1:] - np.einsum("cki,ij,ckj->ck", err[:, :-1], M, err[:, :-1])
    k = [0, 5, 20, 60]
    g = gap[:, k]
    assert np.all(np.abs(g.mean(0)) < 4 * g.std(0, ddof=1) / np.sqrt(n_chains))


def test_kaczmarz_jits_and_vmaps_without_recompiling():
    A, b, _ = system(seed=2)
    run = jax.jit(jax.vmap(lambda k: I.kaczmarz(A, b, k, steps=30)))
    first = run(jax.random.split(jax.random.key(0), 16))
    before = I._weighted_sgd._cache_size()
    second = run(jax.random.split(jax.random.key(1), 16))
    for seed in (5, 6, 7):  # eager calls with new keys reuse the compiled core too
        I.kaczmarz(A, b, jax.random.key(seed), steps=30)
    assert I._weighted_sgd._cache_size() <= before + 1  # the eager (unbatched) shape, once
    assert first.shape == (16, 31, A.shape[1]) and not np.allclose(first, second)
    # same key, same chain
    one = I.kaczmarz(A, b, jax.random.key(3), steps=30)
    assert np.allclose(one, I.kaczmarz(A, b, jax.random.key(3), steps=30))
    # traced A and b under jit
    traced = jax.jit(lambda a, bb, k: I.kaczmarz(a, bb, k, steps=30))(A, b, jax.random.key(3))
    assert np.allclose(traced, one, atol=1e-5)


def test_underdetermined_system_converges_to_minimum_norm_solution():
    rng = np.random.default_rng(4)
    A = rng.normal(size=(6, 15))
    b = rng.normal(size=6)
    xs = chains(A, b, 100, 400, seed=4)
    x_min = np.linalg.pinv(A) @ b
    assert np.allclose(xs[:, -1], x_min, atol=1e-3)
    s = np.linalg.svd(A, compute_uv=False)
    assert I.kaczmarz_rate(A) == pytest.approx(1 - s.min() ** 2 / np.sum(s**2))


def test_minibatch_risk_matches_monte_carlo():
    rng = np.random.default_rng(5)
    n, d = 50, 6
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, size=(n, 1))
    w_star = rng.normal(size=d)
    n_chains, steps = 4000, 60
    schedule = 1.0 / (1.0 + 0.05 * np.arange(steps))
    cases = [
        (X @ w_star, 1, 0.05, None),
        (X @ w_star, 4, 0.15, None),
        (X @ w_star + 0.5 * rng.normal(size=n), 4, 0.1, None),
        (X @ w_star + 0.5 * rng.normal(size=n), 4, 0.15, schedule),
    ]
    keys = jax.random.split(jax.random.key(6), n_chains)
    for y, m, lr, sched in cases:
        ws = jax.vmap(lambda k: I.minibatch_sgd(X, y, k, batch_size=m, learning_rate=lr, steps=steps,
                                               schedule=sched))(keys)
        w_hat = np.linalg.lstsq(X, y, rcond=None)[0]
        sq = np.sum((np.asarray(ws, np.float64) - w_hat) ** 2, axis=-1)
        exact = I.minibatch_risk(X, y, batch_size=m, learning_rate=lr, steps=steps, schedule=sched)
        assert exact.shape == (steps + 1,)
        for k in (1, 10, 30, 60):
            se = sq[:, k].std(ddof=1) / np.sqrt(n_chains)
            assert abs(sq[:, k].mean() - exact[k]) < 4 * se + 1e-6 * exact[0], (m, lr, k)
    # grids broadcast: (3, 1) x (1, 4) -> (3, 4, steps + 1), each entry the single run
    y = X @ w_star
    grid = I.minibatch_risk(X, y, batch_size=np.array([[1], [2], [5]]), learning_rate=np.array([[0.1, 0.2, 0.4, 0.8]]),
                            steps=20)
    assert grid.shape == (3, 4, 21)
    single = I.minibatch_risk(X, y, batch_size=2, learning_rate=0.4, steps=20)
    assert np.allclose(grid[1, 2], single, rtol=1e-5)


def test_expected_contraction_against_one_step_monte_carlo():
    X = sphere_rows(seed=7, n=40, d=6)
    X[::3] *= 1.7  # unequal norms: S is no longer beta H
    y = X @ np.ones(6)
    lr, m = 0.8, 3
    rho = float(I.expected_contraction(X, learning_rate=lr, batch_size=m))
    # the worst direction: top eigenvector of M
    n = X.shape[0]
    H = X.T @ X / n
    S = (X.T * np.sum(X**2, axis=1)) @ X / n
    M = np.eye(6) - 2 * lr * H + lr**2 * (S / m + (1 - 1 / m) * H @ H)
    lam, vec = np.linalg.eigh(M)
    assert rho == pytest.approx(lam[-1], rel=1e-5)
    e = vec[:, -1]
    n_chains = 20_000
    keys = jax.random.split(jax.random.key(8), n_chains)
    ws = jax.vmap(lambda k: I.minibatch_sgd(X, y, k, batch_size=m, learning_rate=lr, steps=1, w0=np.ones(6) + e))(keys)
    sq = np.sum((np.asarray(ws[:, 1], np.float64) - 1.0) ** 2, axis=1)
    assert abs(sq.mean() - rho) < 4 * sq.std(ddof=1) / np.sqrt(n_chains)


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 13, 30, 60])
def test_optimal_rate_is_the_brute_force_optimum(m):
    X = sphere_rows(seed=9)
    c = I.constants(X)
    eta_star = float(I.optimal_rate(m, *c))
    # brute force: the step minimising the exact worst one-step contraction
    best = minimize_scalar(lambda lr: float(I.expected_contraction(X, learning_rate=lr, batch_size=m)),
                           bounds=(0.2 * eta_star, 3 * eta_star), method="bounded", options={"xatol": 1e-5})
    assert best.x == pytest.approx(eta_star, rel=2e-2)
    # and at eta* the contraction is the bound max over {lambda_1, lambda_k} of 1 - 2 eta l + eta^2 l (beta + (m-1) l)/m
    g = [1 - 2 * eta_star * lam + eta_star**2 * lam * (c.beta + (m - 1) * lam) / m for lam in (c.lam_max, c.lam_min)]
    assert float(I.expected_contraction(X, learning_rate=eta_star, batch_size=m)) == pytest.approx(max(g), abs=2e-6)


def test_critical_batch_joins_the_two_regimes():
    beta, l1, lk = 1.0, 0.1, 0.02
    m_star = I.critical_batch(beta, l1, lk)
    assert m_star == pytest.approx(beta / (l1 - lk) + 1)
    lin = m_star / (beta + (m_star - 1) * lk)
    sat = 2 * m_star / (beta + (m_star - 1) * (l1 + lk))
    assert lin == pytest.approx(sat)
    eta = I.optimal_rate(np.array([1.0, m_star * 0.999, m_star * 1.001, 1e6]), beta, l1, lk)
    assert eta[0] == pytest.approx(1 / beta)
    assert eta[1] == pytest.approx(eta[2], rel=3e-3)  # continuous at m*
    assert eta[3] == pytest.approx(2 / (l1 + lk), rel=1e-4)  # saturates at gradient descent's best step
    assert I.critical_batch(1.0, 0.5, 0.5) == np.inf


def test_constants_against_numpy():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(30, 50))  # more features than rows: H has a null space
    c = I.constants(X)
    lam = np.linalg.eigvalsh(X.T @ X / 30)
    nonzero = lam[lam > 1e-9]
    assert len(nonzero) == 30
    assert c.beta == pytest.approx(np.max(np.sum(X**2, axis=1)))
    assert c.lam_max == pytest.approx(nonzero.max()) and c.lam_min == pytest.approx(nonzero.min())


def test_gradient_covariance_split_against_monte_carlo():
    rng = np.random.default_rng(11)
    d = 4
    L = rng.normal(size=(d, d))
    cov = L @ L.T / d + 0.2 * np.eye(d)
    w_star, w = rng.normal(size=d), rng.normal(size=d)
    sigma_n = 0.7
    parts = I.gradient_covariance(cov, w, w_star, noise_std=sigma_n)
    n = 400_000
    x = rng.normal(size=(n, d)) @ np.linalg.cholesky(cov).T
    eps = rng.normal(size=n)
    label = -sigma_n * eps[:, None] * x  # the part of g due to the label noise
    batch = x * (x @ (w - w_star))[:, None]  # E[g | x]
    for sample, expected in ((label, parts.label), (batch, parts.batch), (label + batch, parts.total)):
        centred = sample - sample.mean(0)
        prods = centred[:, :, None] * centred[:, None, :]
        emp, se = prods.mean(0), prods.std(0, ddof=1) / np.sqrt(n)
        assert np.all(np.abs(emp - expected) < 4 * se + 1e-12)
    clean = I.gradient_covariance(cov, w_star, w_star, noise_std=0.0)
    assert np.all(clean.total == 0)


@pytest.mark.parametrize("call, match", [
    (lambda: I.kaczmarz(np.ones(3), np.ones(3), jax.random.key(0), steps=5), "A must have 2"),
    (lambda: I.kaczmarz(np.ones((3, 2)), np.ones(4), jax.random.key(0), steps=5), "b must have shape"),
    (lambda: I.kaczmarz(np.ones((3, 2)), np.ones(3), jax.random.key(0), steps=0), "steps"),
    (lambda: I.kaczmarz(np.zeros((3, 2)), np.ones(3), jax.random.key(0), steps=5), "nonzero row"),
    (lambda: I.kaczmarz(np.ones((3, 2)), np.ones(3), jax.random.split(jax.random.key(0), 2), steps=5), "single PRNG"),
    (lambda: I.kaczmarz(np.ones((3, 2)), np.ones(3), 0, steps=5), "key must be"),
    (lambda: I.kaczmarz(np.full((3, 2), np.nan), np.ones(3), jax.random.key(0), steps=5), "NaN"),
    (lambda: I.kaczmarz(np.ones((3, 2)), np.ones(3), jax.random.key(0), steps=5, x0=np.ones(3)), "x0 must have"),
    (lambda: I.kaczmarz_rate(np.zeros((3, 2))), "zero"),
    (lambda: I.minibatch_sgd(np.ones((3, 2)), np.ones(3), jax.random.key(0), batch_size=4, learning_rate=0.1,
                             steps=3), "batch_size"),
    (lambda: I.minibatch_sgd(np.ones((3, 2)), np.ones(3), jax.random.key(0), batch_size=1, learning_rate=-0.1,
                             steps=3), "learning_rate"),
    (lambda: I.minibatch_sgd(np.ones((3, 2)), np.ones(3), jax.random.key(0), batch_size=1, learning_rate=0.1,
                             steps=3, schedule=np.ones(2)), "schedule"),
    (lambda: I.minibatch_risk(np.ones((3, 2)), np.ones(3), batch_size=1.5, learning_rate=0.1, steps=3), "integers"),
    (lambda: I.minibatch_risk(np.ones((3, 2)), np.ones(3), batch_size=1, learning_rate=[0.1, 0.0], steps=3),
     "learning_rate"),
    (lambda: I.expected_contraction(np.ones((3, 2)), learning_rate=0.1, batch_size=0), "batch_size"),
    (lambda: I.optimal_rate(4, 1.0, 0.1, 0.2), "lam_min"),
    (lambda: I.optimal_rate(4, 0.05, 0.1, 0.01), "beta"),
    (lambda: I.optimal_rate(0, 1.0, 0.1, 0.01), "batch_size"),
    (lambda: I.critical_batch(1.0, -0.1, 0.01), "lam_max"),
    (lambda: I.gradient_covariance(np.ones((2, 3)), np.ones(2), np.ones(2), noise_std=0.1), "cov_x"),
    (lambda: I.gradient_covariance(-np.eye(2), np.ones(2), np.ones(2), noise_std=0.1), "semi-definite"),
    (lambda: I.gradient_covariance(np.eye(2), np.ones(3), np.ones(2), noise_std=0.1), "w must have"),
    (lambda: I.gradient_covariance(np.eye(2), np.ones(2), np.ones(2), noise_std=-1.0), "noise_std"),
])
def test_validation(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_traced_values_do_not_break_validation():
    # the wrapper must not call np.asarray on a traced key or system
    A, b, _ = system(seed=12)
    out = jax.vmap(lambda bb, k: I.kaczmarz(A, bb, k, steps=3))(jnp.stack([jnp.asarray(b)] * 2),
                                                               jax.random.split(jax.random.key(0), 2))
    assert out.shape == (2, 4, A.shape[1])
