"""McAllester's per-parameter algorithm (sgdlab.optim.mcallester) against known answers.

References: closed forms for the warm-up phase (a constant-weight running average), a literal
NumPy transcription of the slides' equations, and a Monte-Carlo check with tolerances from the
standard error.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sgdlab import data, models, train
from sgdlab.optim import mcallester

# float64 inside a block: jax.enable_x64 in recent JAX, jax.experimental.enable_x64 before it
if hasattr(jax, "enable_x64"):
    enable_x64 = jax.enable_x64
else:  # older JAX
    from jax.experimental import enable_x64


def run_stream(tx, grads):
    """Feed a stream of gradients (leading axis = step) through ``tx``; return updates and final state."""
    params = jnp.zeros(grads.shape[1:], grads.dtype)

    def step(state, g):
        u, state = tx.update(g, state, params)
        return state, (u, state.eta, state.b_star)

    state, (updates, etas, b_stars) = jax.lax.scan(step, tx.init(params), grads)
    return np.asarray(updates), state, np.asarray(etas), np.asarray(b_stars)


def reference(grads, K, lambda_B, lambda_eta, eps, B, eta_max, min_window):
    """The slides' equations written out step by step in NumPy (float64)."""
    grads = np.asarray(grads, np.float64)
    g = np.zeros(grads.shape[1:])
    s = np.zeros_like(g)
    b_star = np.full_like(g, float(K))
    ups = []
    var = np.zeros_like(g)
    for t, grad in enumerate(grads, start=1):
        with np.errstate(divide="ignore"):
            w = np.minimum(1.0 / min_window, B / b_star)
        g = (1 - w) * g + w * grad
        s = (1 - w) * s + w * grad**2
        var = np.maximum(s - g**2, 0.0)
        if t <= K:
            b_star = np.full_like(g, float(K))
            eta = np.zeros_like(g)
        else:
            b_star = lambda_B * var / (g**2 + eps)
            with np.errstate(divide="ignore"):
                ratio = np.where(var > 0, g**2 / np.where(var > 0, var, 1), np.inf)
            eta = np.minimum(lambda_eta * ratio, eta_max)
        ups.append(-eta * grad)
    return np.array(ups), g, s, np.sqrt(var), b_star, eta


def test_zero_step_during_warmup_and_closed_form_averages():
    K, B, c = 20, 4, 0.7
    tx = mcallester(K, 16.0, 0.1, batch_size=B, min_window=1)
    grads = jnp.full((K, 3), c, jnp.float32)
    updates, state, etas, b_stars = run_stream(tx, grads)
    assert np.all(updates == 0) and np.all(etas == 0)
    assert np.all(b_stars == K)
    a = 1 - (1 - B / K) ** K
    np.testing.assert_allclose(np.asarray(state.g), c * a, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(state.s), c**2 * a, rtol=1e-5)
    assert int(state.count) == K


def test_first_step_after_warmup_closed_form():
    K, B, c, lam_b, lam_eta, eps = 10, 2, 1.5, 16.0, 0.05, 1e-8
    tx = mcallester(K, lam_b, lam_eta, eps, batch_size=B, min_window=1)
    updates, state, etas, b_stars = run_stream(tx, jnp.full((K + 1, 2), c, jnp.float32))
    a = 1 - (1 - B / K) ** (K + 1)  # B*(K) = K, so step K+1 still averages with weight B/K
    ratio = a / (1 - a)  # g~^2 / sigma~^2 = c^2 a^2 / (c^2 a (1 - a))
    eta = min(lam_eta * ratio, lam_eta * lam_b / B)
    np.testing.assert_allclose(etas[-1], eta, rtol=1e-4)
    np.testing.assert_allclose(updates[-1], -eta * c, rtol=1e-4)
    np.testing.assert_allclose(b_stars[-1], lam_b * c**2 * a * (1 - a) / (c**2 * a**2 + eps), rtol=1e-3)


def test_noiseless_gradient_gets_the_capped_rate():
    # a constant gradient has no noise: sigma~ -> 0, B* -> 0, the rate is the cap lambda_eta*lambda_B/B
    K, B = 5, 8
    tx = mcallester(K, 16.0, 0.02, batch_size=B)
    updates, state, etas, _ = run_stream(tx, jnp.full((40, 4), -2.0, jnp.float32))
    np.testing.assert_allclose(etas[-1], 0.02 * 16.0 / B, rtol=1e-6)
    np.testing.assert_allclose(updates[-1], 2.0 * 0.02 * 16.0 / B, rtol=1e-6)
    tx_cap = mcallester(K, 16.0, 0.02, batch_size=B, eta_max=0.01)
    _, _, etas_cap, _ = run_stream(tx_cap, jnp.full((40, 4), -2.0, jnp.float32))
    np.testing.assert_allclose(etas_cap[-1], 0.01, rtol=1e-6)


@pytest.mark.parametrize("B,lambda_B,eta_max,min_window", [(1, 16.0, None, 1.0), (4, 64.0, None, 1.0),
                                                        (32, 16.0, 0.3, 1.0), (4, 64.0, None, 10.0)])
def test_matches_literal_transcription(B, lambda_B, eta_max, min_window):
    rng = np.random.default_rng(B)
    T, P, K, lam_eta, eps = 80, 50, 10, 0.2, 1e-6
    # per-coordinate signal and noise of different sizes, so B*(t)[i] varies across coordinates
    mean = rng.normal(size=P) * rng.uniform(0.05, 2, size=P)
    grads = mean + rng.normal(size=(T, P)) * rng.uniform(0.1, 3, size=P)
    tx = mcallester(K, lambda_B, lam_eta, eps, batch_size=B, eta_max=eta_max, min_window=min_window)
    # in float64: where B* < B the weight is 1 and s~ - g~^2 is an exact zero, which float32
    # rounding would turn into a tiny positive number (and sqrt into a visible sigma~)
    with enable_x64(True):
        updates, state, etas, b_stars = run_stream(tx, jnp.asarray(grads, jnp.float64))
        state = jax.tree.map(np.asarray, state)
    cap = lam_eta * lambda_B / B if eta_max is None else eta_max
    ref_updates, g, s, sigma, b_star, eta = reference(grads, K, lambda_B, lam_eta, eps, B, cap, min_window)
    assert updates.dtype == np.float64
    np.testing.assert_allclose(updates, ref_updates, rtol=1e-10, atol=1e-12)
    # sigma~ is compared squared: where it is zero, sqrt would magnify a 1e-18 rounding to 1e-9
    for got, want in [(state.g, g), (state.s, s), (state.sigma**2, sigma**2), (state.b_star, b_star), (state.eta, eta)]:
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    if B > 1:
        assert np.any(b_star < B)  # the weight cap min(1, B/B*) is exercised


def test_warmup_statistics_monte_carlo():
    # during warm-up the averages have the fixed weight w = B/K: for i.i.d. N(m, v) gradients
    # E g~_t = m (1 - (1-w)^t), Var g~_t = v w (1 - (1-w)^{2t}) / (2 - w), E s~_t = (m^2 + v)(1 - (1-w)^t)
    K, B, T, P, m, v = 50, 5, 30, 40000, 0.3, 2.0
    grads = m + math.sqrt(v) * jax.random.normal(jax.random.key(0), (T, P))
    _, state, _, _ = run_stream(mcallester(K, 16.0, 0.1, batch_size=B, min_window=1), grads)
    w = B / K
    g, s = np.asarray(state.g, np.float64), np.asarray(state.s, np.float64)
    mean_g, var_g = m * (1 - (1 - w) ** T), v * w * (1 - (1 - w) ** (2 * T)) / (2 - w)
    assert abs(g.mean() - mean_g) < 4 * math.sqrt(var_g / P)
    # sample variance of a normal: standard error var * sqrt(2 / (P - 1))
    assert abs(g.var(ddof=1) - var_g) < 4 * var_g * math.sqrt(2 / (P - 1))
    mean_s = (m**2 + v) * (1 - (1 - w) ** T)
    assert abs(s.mean() - mean_s) < 4 * s.std(ddof=1) / math.sqrt(P)


def test_trains_a_model_in_fit_and_sweeps_lambda_eta():
    ds, _ = data.linear_regression(jax.random.key(7), 256, 5, n_test=64, noise_std=0.1)
    from flax import nnx

    model = models.MLP((5, 1), rngs=nnx.Rngs(0))
    result = train.fit(model, mcallester(10, 16.0, 0.05, batch_size=16), ds, steps=300, batch_size=16,
                       loss="mse", eval_every=100, progress=False)
    loss = result.history["train_loss"]
    assert not result.diverged and loss[-1] < 0.2 * loss[0]
    sweep = train.sweep(lambda rngs: models.MLP((5, 1), rngs=rngs),
                        lambda lam: mcallester(10, 16.0, lam, batch_size=16), ds, steps=50,
                        batch_sizes=[16], grid={"lam": [0.01, 0.05]}, loss="mse", progress=False)
    assert sweep.history.final("train_loss").shape == (1, 2, 1)
    composed = optax.chain(optax.clip(10.0), mcallester(3, 16.0, 0.1, batch_size=1))
    composed.update(jnp.ones(2), composed.init(jnp.zeros(2)))


def test_literal_algorithm_collapses_and_min_window_prevents_it():
    # strong signal: B* = lambda_B sigma~^2 / g~^2 falls below B, the weight becomes 1 and then
    # s~ = g~^2 exactly: sigma~ = 0 and B* = 0 for ever (the rate sits at its cap)
    K, B, T = 5, 8, 200
    grads = 3.0 + 0.3 * jax.random.normal(jax.random.key(1), (T, 100))
    with enable_x64(True):
        _, literal, etas, _ = run_stream(mcallester(K, 16.0, 0.01, batch_size=B, min_window=1),
                                         jnp.asarray(grads, jnp.float64))
        _, windowed, _, _ = run_stream(mcallester(K, 16.0, 0.01, batch_size=B, min_window=10),
                                       jnp.asarray(grads, jnp.float64))
    assert np.all(np.asarray(literal.sigma) == 0) and np.all(np.asarray(literal.b_star) == 0)
    np.testing.assert_allclose(etas[-1], 0.01 * 16.0 / B)
    # with the weight held at w = 1/10 the estimate is a fixed-weight running variance, positive,
    # with stationary mean E[s~ - g~^2] = v (1 - w/(2-w)) for i.i.d. gradients of variance v
    sigma2 = np.asarray(windowed.sigma, np.float64) ** 2
    w, v = 0.1, 0.09
    assert np.all(sigma2 > 0)
    assert abs(sigma2.mean() - v * 2 * (1 - w) / (2 - w)) < 4 * sigma2.std(ddof=1) / np.sqrt(sigma2.size)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(K=0, lambda_B=16.0, lambda_eta=0.1, batch_size=1), "K"),
        (dict(K=2.5, lambda_B=16.0, lambda_eta=0.1, batch_size=1), "K"),
        (dict(K=5, lambda_B=-1.0, lambda_eta=0.1, batch_size=1), "lambda_B"),
        (dict(K=5, lambda_B=16.0, lambda_eta=0.0, batch_size=1), "lambda_eta"),
        (dict(K=5, lambda_B=16.0, lambda_eta=float("nan"), batch_size=1), "lambda_eta"),
        (dict(K=5, lambda_B=16.0, lambda_eta=0.1, eps=-1e-8, batch_size=1), "eps"),
        (dict(K=5, lambda_B=16.0, lambda_eta=0.1, batch_size=0), "batch_size"),
        (dict(K=5, lambda_B=16.0, lambda_eta=0.1, batch_size=4, eta_max=-1.0), "eta_max"),
        (dict(K=5, lambda_B=16.0, lambda_eta=0.1, batch_size=4, min_window=0.5), "min_window"),
    ],
)
def test_validation_names_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        mcallester(**kwargs)
