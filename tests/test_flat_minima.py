"""The numerical facts Chapter 9 (flat minima, SAM and SWA) relies on, each against an independent reference:
the two-minima construction and SGD's preference between its minima, Dinh et al.'s rescaling against a
dense Hessian, SAM in the engine (rho = 0 is SGD, a zero gradient is safe, SWA inside SAM), and Smith et
al.'s modified loss against an ODE solver."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.integrate
import scipy.stats
from flax import nnx
from jax.flatten_util import ravel_pytree

from sgdlab import data, engine, losses, models, swa, train

# ------------------------------------------------------------------ the two minima of the cartoon
# the chapter's construction: L = q (w^2 - 1)^2 / (1 + w^2), q = 1 + a tanh(2w); per-example
# gradients L' + xi c sqrt(q) with xi = +-1; a minibatch of B has xi_bar = 2 K / B - 1, K ~ Bin(B, 1/2)

A, C = 0.8, 3.3


def q_np(w):
    return 1.0 + A * np.tanh(2.0 * w)


def loss_np(w):
    return q_np(w) * (w**2 - 1.0) ** 2 / (1.0 + w**2)


def loss_jax(w):
    return (1.0 + A * jnp.tanh(2.0 * w)) * (w**2 - 1.0) ** 2 / (1.0 + w**2)


grad_jax = jax.grad(lambda w: jnp.sum(loss_jax(w)))


def xi_bar(key, shape, batch):
    bits = jax.random.bits(key, shape, jnp.uint32)
    return 2.0 * jax.lax.population_count(bits & ((jnp.uint32(1) << batch) - 1)) / batch - 1.0


def minibatch_gradient(w, t, key, noise_amp, batch):
    return grad_jax(w) + noise_amp * xi_bar(jax.random.fold_in(key, t), w.shape, batch) * jnp.sqrt(
        1.0 + A * jnp.tanh(2.0 * w))


def test_two_minima_have_equal_loss_and_the_stated_curvatures():
    h = 1e-4
    for w in (-1.0, 1.0):
        assert loss_np(w) == pytest.approx(0.0, abs=1e-12)
        assert (loss_np(w + h) - loss_np(w - h)) / (2 * h) == pytest.approx(0.0, abs=1e-6)
        second = (loss_np(w + h) - 2 * loss_np(w) + loss_np(w - h)) / h**2     # finite differences, float64
        assert second == pytest.approx(4 * q_np(w), rel=1e-5)
    assert (4 * q_np(1.0)) / (4 * q_np(-1.0)) > 7                              # the sharp one is 7x as curved


def test_popcount_draws_are_binomial():
    for batch in (1, 3, 16):
        x = np.asarray(xi_bar(jax.random.key(batch), (200_000,), jnp.uint32(batch)))
        heads = np.round((x + 1.0) * batch / 2).astype(int)
        counts = np.bincount(heads, minlength=batch + 1)
        expected = scipy.stats.binom.pmf(np.arange(batch + 1), batch, 0.5) * len(x)
        stat, p = scipy.stats.chisquare(counts[expected > 5], expected[expected > 5] * counts[expected > 5].sum()
                                        / expected[expected > 5].sum())
        assert p > 1e-4, (batch, stat)
        assert x.var() == pytest.approx(1.0 / batch, rel=0.02)        # Var xi_bar = 1/B


def test_sgd_ends_in_the_flat_minimum_more_often_than_gradient_descent():
    chains, steps, ridge = 2000, 2000, 0.181
    w0 = jnp.asarray(ridge + np.random.default_rng(0).uniform(-1.5, 1.5, chains), jnp.float32)
    rows = jnp.stack([w0, w0])
    w_end, _, _ = train.optimize(optax.sgd(0.05), rows, minibatch_gradient, steps=steps,
                                 args=(jax.random.key(0), jnp.array([[0.0], [C]], jnp.float32),
                                       jnp.array([[1], [1]], jnp.uint32)))
    frac = np.mean(np.asarray(w_end) < ridge, axis=1)
    se = np.sqrt(frac * (1 - frac) / chains)
    assert abs(frac[0] - np.mean(np.asarray(w0) < ridge)) <= 2 / chains   # GD stays in its starting basin
    assert frac[1] - 4 * se[1] > frac[0] + 4 * se[0]                   # SGD with B = 1 prefers the flat one
    assert np.all(np.isfinite(np.asarray(w_end)))


# ------------------------------------------------------------------ Dinh et al.'s rescaling

def dinh_rescale(params, alpha):
    def scale(path, w):
        keys = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
        layer, name = keys[1], keys[2]
        return w * (alpha if layer == 0 else (1 / alpha if (layer == 1 and name == "kernel") else 1.0))
    return jax.tree_util.tree_map_with_path(scale, params)


def test_rescaling_keeps_the_function_and_conjugates_the_dense_hessian():
    model = models.MLP((4, 6, 5, 3), rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params = jax.tree.map(lambda p: p + 0.1, params)            # nonzero biases, so b1 matters
    x = jax.random.normal(jax.random.key(1), (40, 4))
    y = jax.random.randint(jax.random.key(2), (40,), 0, 3)
    alpha = 5.0
    scaled = dinh_rescale(params, alpha)
    out, out_a = (nnx.merge(graphdef, p, rest)(x) for p in (params, scaled))
    np.testing.assert_allclose(np.asarray(out_a), np.asarray(out), rtol=1e-4, atol=1e-5)

    flat, unravel = ravel_pytree(params)
    flat_a, _ = ravel_pytree(scaled)

    def loss(v):
        return losses.cross_entropy(nnx.merge(graphdef, unravel(v), rest)(x), y).mean()

    hessian = jax.jit(jax.hessian(loss))
    h, h_a = (np.asarray(hessian(v), np.float64) for v in (flat, flat_a))
    d = np.asarray(ravel_pytree(dinh_rescale(jax.tree.map(jnp.ones_like, params), alpha))[0], np.float64)
    np.testing.assert_allclose(h_a, h / np.outer(d, d), rtol=2e-3, atol=1e-5 * np.abs(h).max())
    top, top_a = np.linalg.eigvalsh(h)[-1], np.linalg.eigvalsh(h_a)[-1]
    w2 = np.flatnonzero(np.isclose(d, 1 / alpha))               # the entries of the second layer's kernel
    bound = alpha**2 * np.linalg.eigvalsh(h[np.ix_(w2, w2)])[-1]
    assert top_a >= bound * (1 - 1e-6) and bound > 3 * top      # lambda_max >= alpha^2 lambda_max(H_22)


# ------------------------------------------------------------------ SAM in the engine

def sam(learning_rate, rho, inner=None):
    outer = optax.sgd(learning_rate) if inner is None else inner(optax.sgd(learning_rate))
    ascent = optax.chain(optax.normalize_by_update_norm(eps=1e-12), optax.sgd(rho))
    return optax.contrib.sam(outer, ascent, opaque_mode=True)


@pytest.fixture(scope="module")
def small():
    return data.mnist1d(n_train=256, n_test=64)


def test_sweep_over_rho_includes_sgd_at_rho_zero(small):
    make = lambda rngs: models.MLP((40, 16, 10), rngs=rngs)  # noqa: E731
    kw = dict(steps=20, batch_sizes=16, seeds=(0, 1), eval_every=20, keep_params=True, progress=False)
    s = train.sweep(make, lambda learning_rate, rho: sam(learning_rate, rho), small,
                    grid={"learning_rate": [0.2], "rho": [0.0, 0.1]}, **kw)
    g = train.sweep(make, optax.sgd, small, grid={"learning_rate": [0.2]}, **kw)
    for x, y in zip(jax.tree.leaves(s.params[0]), jax.tree.leaves(g.params[0])):
        x, y = np.asarray(x), np.asarray(y)
        np.testing.assert_allclose(x[:2], y, rtol=1e-4, atol=1e-6)   # rho = 0: SGD, to rounding
    assert max(np.abs(np.asarray(x)[2:] - y).max() for x, y in
               zip(jax.tree.leaves(s.params[0]), jax.tree.leaves(g.params[0]))) > 1e-3


def test_zero_gradient_is_safe_with_the_book_normalisation_and_nan_with_optax_normalize():
    w = {"w": jnp.ones(3)}
    zero_grad = lambda p, _: jax.tree.map(lambda x: x - 1.0, p)  # noqa: E731  L = |w - 1|^2 / 2 at w = 1
    tx = sam(0.1, 0.05)
    updates, _ = tx.update(zero_grad(w, 0), tx.init(w), w, grad_fn=zero_grad)
    np.testing.assert_array_equal(np.asarray(updates["w"]), 0.0)            # an SGD step on a zero gradient
    plain = optax.contrib.sam(optax.sgd(0.1), optax.chain(optax.contrib.normalize(), optax.sgd(0.05)),
                              opaque_mode=True)
    updates, _ = plain.update(zero_grad(w, 0), plain.init(w), w, grad_fn=zero_grad)
    assert np.all(np.isnan(np.asarray(updates["w"])))                      # the pitfall the chapter avoids


def test_swa_inside_sam_averages_the_sam_iterates(small):
    model = models.MLP((40, 8, 10), rngs=nnx.Rngs(2))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = sam(0.3, 0.05, inner=lambda t: swa.swa(t, start=3, every=2))
    step = jax.jit(lambda state, batch: engine.train_step(state, batch, graphdef=graphdef, tx=tx,
                                                          extra_args=engine.extra_arg_names(tx)))
    state = engine.TrainState(params, rest, tx.init(params), jnp.zeros((), jnp.int32))
    kept = []
    for t in range(1, 10):
        rows = np.arange(16 * t, 16 * t + 16) % small.n_train
        state, _ = step(state, (small.x_train[rows], small.y_train[rows]))
        if t >= 3 and (t - 3) % 2 == 0:
            kept.append(state.params)
    want = jax.tree.map(lambda *ws: np.mean(np.stack(ws), axis=0), *kept)   # the iterates 3, 5, 7, 9 by hand
    got = swa.swa_params(state.params, state.opt_state.opt_state)   # SAM's state holds the outer one's
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(x), y, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ Smith et al.'s modified loss

def test_mean_epoch_of_sgd_follows_the_modified_flow_to_third_order():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 3)) * np.array([1.0, 0.5, 0.25])
    y = x @ np.array([1.0, -1.0, 2.0]) + 0.5 * rng.normal(size=12)
    w0 = np.array([1.5, -0.5, 1.0])
    m = 3
    xs, ys = np.split(x, m), np.split(y, m)

    def grad_k(k, w):
        return xs[k].T @ (xs[k] @ w - ys[k]) / len(ys[k])

    def hess_k(k):
        return xs[k].T @ xs[k] / len(ys[k])

    def mean_epoch(eta):                              # every order of the m minibatches, exactly
        ends = []
        for order in itertools.permutations(range(m)):
            w = w0.copy()
            for k in order:
                w = w - eta * grad_k(k, w)
            ends.append(w)
        return np.mean(ends, axis=0)

    def flow(eta, modified):                          # an ODE solver, independent of the closed form
        def rhs(_, w):
            g = sum(grad_k(k, w) for k in range(m)) / m
            if modified:                               # grad of (eta / 4m) sum_k |grad L_k|^2
                g = g + eta / (2 * m) * sum(hess_k(k) @ grad_k(k, w) for k in range(m))
            return -g
        sol = scipy.integrate.solve_ivp(rhs, (0.0, m * eta), w0, rtol=1e-12, atol=1e-14, method="DOP853")
        return sol.y[:, -1]

    etas = np.geomspace(3e-3, 3e-2, 5)
    err_plain = [np.linalg.norm(mean_epoch(e) - flow(e, False)) for e in etas]
    err_mod = [np.linalg.norm(mean_epoch(e) - flow(e, True)) for e in etas]
    slope_plain = np.polyfit(np.log(etas), np.log(err_plain), 1)[0]
    slope_mod = np.polyfit(np.log(etas), np.log(err_mod), 1)[0]
    assert slope_plain == pytest.approx(2.0, abs=0.1)
    assert slope_mod == pytest.approx(3.0, abs=0.15)
    assert err_mod[0] < 0.05 * err_plain[0]
