"""sgdlab.martingales against closed forms, with Monte-Carlo tolerances from standard errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from sgdlab import curvature, data, losses, models, noise
from sgdlab import martingales as mg
from sgdlab import quadratic as q


def _var_se(x):
    """Sample variance of x and its standard error (from the spread of squared deviations)."""
    d2 = (x - x.mean()) ** 2
    return d2.mean(), d2.std(ddof=1) / np.sqrt(x.size)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_sign_series_variance(p):
    paths = mg.sign_series(jax.random.key(0), 20_000, 200, p)
    exact = mg.sign_series_variance(200, p)
    for n in (10, 200):
        var, se = _var_se(paths[:, n].astype(np.float64))
        assert abs(var - exact[n]) < 4 * se
        assert abs(paths[:, n].mean()) < 4 * np.sqrt(exact[n] / paths.shape[0])
    if p == 1.0:
        assert exact[-1] < np.pi**2 / 6


def test_product_martingale_mean_and_collapse():
    paths = mg.product_martingale(jax.random.key(1), 50_000, 60, spread=0.5)
    x = paths[:, 8].astype(np.float64)
    assert abs(x.mean() - 1.0) < 4 * x.std(ddof=1) / np.sqrt(x.size)
    # P(X_n < eps) from the binomial law of the number of up-moves
    n, eps = 60, 1e-3
    k = np.arange(n + 1)
    small = k * np.log(1.5) + (n - k) * np.log(0.5) < np.log(eps)
    prob = stats.binom.pmf(k, n, 0.5)[small].sum()
    frac = np.mean(paths[:, n] < eps)
    assert abs(frac - prob) < 4 * np.sqrt(prob * (1 - prob) / paths.shape[0])


def test_multiplicative_noise_supermartingale_mean():
    mu, s, eta, x0 = 1.0, 1.0, 0.5, 1.0
    paths = mg.multiplicative_noise_paths(jax.random.key(2), mu, s, x0, eta, 10, 40_000)
    rho = (1 - eta * mu) ** 2 + eta**2 * mu**2 * s**2
    for n in (1, 5, 10):
        x = paths[:, n].astype(np.float64)
        assert abs(x.mean() - 0.5 * mu * x0**2 * rho**n) < 4 * x.std(ddof=1) / np.sqrt(x.size)


def test_robbins_siegmund_sum_of_b():
    # E sum_{n<T} b_n = X_0 - E X_T + sum c_n exactly for SGD on mu x^2/2 (a_n = 0)
    mu, sigma, x0, T = 1.0, 1.0, 2.0, 300
    alphas = q.harmonic_steps(0.8, T)
    paths = mg.quadratic_sgd_paths(jax.random.key(3), mu, sigma, x0, alphas, 20_000).astype(np.float64)
    X = 0.5 * mu * paths**2
    b_sum = ((1 - (1 - alphas * mu) ** 2) * X[:, :-1]).sum(axis=1)
    c_sum = (0.5 * mu * alphas**2 * sigma**2).sum()
    exact = 0.5 * mu * x0**2 - q.expected_loss(mu, sigma, x0, alphas)[-1] + c_sum
    assert abs(b_sum.mean() - exact) < 4 * b_sum.std(ddof=1) / np.sqrt(b_sum.size)
    ex = q.expected_loss(mu, sigma, x0, alphas)
    assert abs(X[:, -1].mean() - ex[-1]) < 4 * X[:, -1].std(ddof=1) / np.sqrt(X.shape[0])


def test_clipped_fixed_point_and_sgd_limit():
    rng = np.random.default_rng(0)
    y = rng.exponential(2.0, size=400).astype(np.float32)
    tau = 1.0
    root = mg.clipped_fixed_point(y, tau)
    assert abs(np.mean(np.clip(root - y.astype(np.float64), -tau, tau))) < 1e-9
    assert root < y.mean() - 0.2          # the Huber point of skewed data lies below the mean
    # started at the true optimum (the mean), biased SGD walks away to the root of h; the step
    # 4 / (t + 10) keeps 2 c h'(root) > 1, so the 1/t rate of Chapter 2 applies
    steps = 4.0 / (np.arange(3000) + 10.0)
    st = q.mean_estimation_sgd(jax.random.key(4), y, steps, 4, 4000, w0=float(y.mean()), clip=tau)
    final = st.final.astype(np.float64)
    assert abs(final.mean() - root) < 4 * final.std(ddof=1) / np.sqrt(final.size) + 1e-3


def test_clipped_one_step_expectation():
    # E[X'] - X = -alpha (beta - ybar) h + alpha^2 (h^2 + v_c / B) / 2 for the clipped estimator
    rng = np.random.default_rng(1)
    y = rng.exponential(2.0, size=300)
    tau, alpha, b = 1.0, 0.3, 4
    beta = 0.5 * (mg.clipped_fixed_point(y, tau) + y.mean())
    c = np.clip(beta - y, -tau, tau)
    h, v = c.mean(), c.var()
    x_now = 0.5 * (beta - y.mean()) ** 2
    formula = x_now - alpha * (beta - y.mean()) * h + 0.5 * alpha**2 * (h**2 + v / b)
    st = q.mean_estimation_sgd(jax.random.key(5), y.astype(np.float32), [alpha], b, 200_000, w0=beta, clip=tau)
    assert abs(st.mean[1] - formula) < 4 * st.se[1] + 1e-6
    assert formula > x_now               # the biased step increases the loss in expectation


@pytest.fixture(scope="module")
def small_problem():
    mnist = data.mnist1d(n_train=300, n_test=50)
    model = models.MLP((40, 16, 10), rngs=nnx.Rngs(0))
    return mnist, model


def test_descent_estimate_against_second_moment_and_taylor(small_problem):
    mnist, model = small_problem
    loss_fn, w, _ = losses.flat_loss(model, mnist.x_train, mnist.y_train)
    G = noise.per_example_grads(model, mnist.x_train, mnist.y_train)
    est = mg.descent_estimate(jax.random.key(6), loss_fn, w, G, [1e-3, 0.01, 0.1], 8, 2000)
    g = np.asarray(G.mean(0), np.float64)
    assert est.descent == pytest.approx(g @ g, rel=1e-4)
    exact_second = g @ g + float(noise.minibatch_variance(G, 8))
    assert est.second_moment == pytest.approx(exact_second, rel=1e-4)
    # Monte-Carlo second moment: its draws have a finite variance, a generous 5 % here
    assert est.second_moment_mc == pytest.approx(exact_second, rel=0.05)
    # tiny step: first-order Taylor expansion is exact up to O(eta^2)
    assert abs(est.expected_next[0] - est.first_order[0]) < 4 * est.se[0] + est.lam * 1e-6 * est.second_moment
    assert np.all(est.expected_next <= est.bound + 4 * est.se)


def test_quadratic_paths_follow_the_recursion_of_quadratic_simulate():
    # the same chain as sgdlab.quadratic.simulate: its mean loss agrees with the exact recursion
    mu, sigma, x0 = 2.0, 0.5, 1.0
    etas = q.harmonic_steps(0.3, 50)
    paths = mg.quadratic_sgd_paths(jax.random.key(11), mu, sigma, x0, etas, 20_000).astype(np.float64)
    assert paths.shape == (20_000, 51) and np.all(paths[:, 0] == x0)
    f = 0.5 * mu * paths**2
    exact = q.expected_loss(mu, sigma, x0, etas)
    se = f.std(axis=0, ddof=1) / np.sqrt(f.shape[0])
    assert np.all(np.abs(f.mean(0) - exact)[1:] < 4 * se[1:])
    # without noise every path is the deterministic product of (1 - eta mu)
    quiet = mg.quadratic_sgd_paths(jax.random.key(0), mu, 0.0, x0, etas, 3)
    np.testing.assert_allclose(quiet[0], x0 * np.concatenate([[1.0], np.cumprod(1 - etas * mu)]), rtol=1e-5)


def test_descent_estimate_takes_the_top_eigenvalue_from_curvature():
    # L(w) = mean_i (w - x_i)^T A (w - x_i) / 2 has Hessian A: the default lam is its top eigenvalue
    a = jnp.diag(jnp.array([3.0, 1.0, 0.5]))
    x = jax.random.normal(jax.random.key(12), (64, 3))
    loss_fn = jax.jit(lambda w: 0.5 * jnp.mean(jnp.einsum("ni,ij,nj->n", w - x, a, w - x)))
    G = (jnp.ones(3) - x) @ a
    est = mg.descent_estimate(jax.random.key(13), loss_fn, jnp.ones(3), G, [0.1], 4, 200)
    assert est.lam == pytest.approx(3.0, rel=1e-4)
    # on a quadratic the descent lemma is exact: E L(w - eta g_hat) = L - eta |g|^2 + eta^2 E g_hat^T A g_hat / 2
    assert est.expected_next[0] <= est.bound[0] + 4 * est.se[0]


def test_natural_gradient_descends(small_problem):
    mnist, _ = small_problem
    x = mnist.x_train[:, ::4]

    def model_fn(w, x):
        return x @ w[:100].reshape(10, 10) + w[100:]

    w0 = jnp.zeros(110)
    _, ngd = mg.preconditioned_sgd(jax.random.key(8), model_fn, w0, x, mnist.y_train, lr=0.1,
                                   steps=60, batch_size=32, fisher_batch=64, damping=0.1)
    _, sgd = mg.preconditioned_sgd(jax.random.key(8), model_fn, w0, x, mnist.y_train, lr=0.5,
                                   steps=60, batch_size=32, natural=False)
    assert np.all(np.isfinite(ngd)) and np.all(np.isfinite(sgd))
    assert ngd[-1] < ngd[0] - 0.2 and sgd[-1] < sgd[0] - 0.2


def test_preconditioned_step_is_the_damped_fisher_solve(small_problem):
    # one step, by hand: the minibatch and the independent Fisher minibatch come from fold_in(key, 0)
    mnist, _ = small_problem
    x, y = jnp.asarray(mnist.x_train[:, ::4]), jnp.asarray(mnist.y_train)

    def model_fn(w, x):
        return x @ w[:100].reshape(10, 10) + w[100:]

    w0 = jax.random.normal(jax.random.key(14), (110,)) * 0.05
    key = jax.random.key(15)
    w1, curve = mg.preconditioned_sgd(key, model_fn, w0, x, y, lr=0.2, steps=1, batch_size=16,
                                      fisher_batch=32, damping=0.5)
    k_batch, k_fisher = jax.random.split(jax.random.fold_in(key, 0))
    idx = jax.random.randint(k_batch, (16,), 0, x.shape[0])
    jdx = jax.random.randint(k_fisher, (32,), 0, x.shape[0])

    def loss(w, xb, yb):
        return jnp.mean(-jax.nn.log_softmax(model_fn(w, xb))[jnp.arange(xb.shape[0]), yb])

    g_hat = np.asarray(jax.grad(loss)(w0, x[idx], y[idx]), np.float64)
    fisher = np.asarray(curvature.fisher_matrix(model_fn, w0, x[jdx]), np.float64)
    want = np.asarray(w0, np.float64) - 0.2 * np.linalg.solve(fisher + 0.5 * np.eye(110), g_hat)
    np.testing.assert_allclose(w1, want, rtol=1e-4, atol=1e-6)
    assert curve[0] == pytest.approx(float(loss(w0, x, y)), rel=1e-5)
    assert curve[1] == pytest.approx(float(loss(jnp.asarray(w1), x, y)), rel=1e-5)


def test_preconditioned_step_descends_in_expectation(small_problem):
    # small step: E[L(w - eta P g_hat)] - L = -eta g^T P g + O(eta^2), P = (F + 0.1 I)^-1
    mnist, _ = small_problem
    x, y = mnist.x_train[:, ::4], mnist.y_train

    def model_fn(w, x):
        return x @ w[:100].reshape(10, 10) + w[100:]

    w = jax.random.normal(jax.random.key(9), (110,)) * 0.05
    loss_fn = jax.jit(lambda w: jnp.mean(-jax.nn.log_softmax(model_fn(w, x))[jnp.arange(x.shape[0]), y]))
    G = jax.vmap(jax.grad(lambda w, xi, yi: -jax.nn.log_softmax(model_fn(w, xi[None])[0])[yi]),
                 in_axes=(None, 0, 0))(w, x, y)
    P = jnp.linalg.inv(curvature.fisher_matrix(model_fn, w, x) + 0.1 * jnp.eye(110))
    est = mg.descent_estimate(jax.random.key(10), loss_fn, w, G, [1e-3], 16, 500, preconditioner=P)
    g = np.asarray(G.mean(0), np.float64)
    assert est.descent == pytest.approx(float(g @ np.asarray(P, np.float64) @ g), rel=1e-3)
    assert est.descent > 0
    change = est.expected_next[0] - est.loss
    assert abs(change - (-1e-3 * est.descent)) < 4 * est.se[0] + 0.5 * est.lam * 1e-6 * est.second_moment
    assert change < 0


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: mg.sign_series(jax.random.key(0), 0, 10, 1.0), "n_paths"),
        (lambda: mg.sign_series(jax.random.key(0), 10, 10, -1.0), "p"),
        (lambda: mg.product_martingale(jax.random.key(0), 10, 10, spread=1.5), "spread"),
        (lambda: mg.multiplicative_noise_paths(jax.random.key(0), 1.0, 1.0, 1.0, -0.1, 10, 10), "eta"),
        (lambda: mg.quadratic_sgd_paths(jax.random.key(0), 1.0, 1.0, 1.0, [-0.1], 10), "step_sizes"),
        (lambda: mg.clipped_fixed_point([1.0, 2.0], 0.0), "clip"),
        (lambda: mg.descent_estimate(jax.random.key(0), lambda w: w @ w, jnp.ones(2), jnp.ones((4, 2)),
                                     [0.1], 8, 10), "batch_size"),
        (lambda: mg.descent_estimate(jax.random.key(0), lambda w: w @ w, jnp.ones(3), jnp.ones((4, 2)),
                                     [0.1], 2, 10), "w"),
        (lambda: mg.descent_estimate(jax.random.key(0), lambda w: w @ w, jnp.ones(2), jnp.ones((4, 2)),
                                     [0.1], 2, 10, preconditioner=jnp.eye(3)), "preconditioner"),
        (lambda: mg.preconditioned_sgd(jax.random.key(0), lambda w, x: x, jnp.zeros(2), np.ones((4, 2)),
                                       np.zeros(4, np.int32), lr=0.0, steps=1, batch_size=2), "lr"),
    ],
)
def test_bad_arguments_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_coursework_checks_of_chapter_3():
    from sgdlab.coursework import ch03

    def rs_terms(x, eta, mu, sigma):
        f = 0.5 * mu * x**2
        return (1 - (1 - eta * mu) ** 2) * f, 0.5 * mu * eta**2 * sigma**2

    assert ch03.check_rs_terms(rs_terms)
    assert not ch03.check_rs_terms(lambda x, eta, mu, sigma: (eta * mu * 0.5 * mu * x**2, 0.0))

    def measure(key, mu, s, eta, n_paths):
        xi = np.asarray(jax.random.normal(key, (n_paths,)), np.float64)
        return float(np.mean((1 - eta * mu * (1 + s * xi)) ** 2))

    def formula(key, mu, s, eta, n_paths):
        return (1 - eta * mu) ** 2 + eta**2 * mu**2 * s**2

    def wrong(key, mu, s, eta, n_paths):          # forgets the noise term: biased by eta^2 mu^2 s^2
        return (1 - eta * mu) ** 2

    def package(key, mu, s, eta, n_paths):
        return float(mg.multiplicative_noise_paths(key, mu, s, 1.0, eta, 1, n_paths)[:, 1].mean() / (0.5 * mu))

    assert ch03.check_measure_rho(measure)
    assert not ch03.check_measure_rho(formula)
    assert not ch03.check_measure_rho(wrong)
    refused = ch03.check_measure_rho(package)
    assert not refused and "package" in repr(refused)
