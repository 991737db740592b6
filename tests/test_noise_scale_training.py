"""sgdlab.noise_scale, the parts Chapter 8 adds: McCandlish's optimal step against exhaustive
enumeration of minibatches, and the in-loop squared gradient norm against its expectation
|G|^2 + tr(Sigma)/B (Monte Carlo, inside a compiled training loop)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from sgdlab import data, models, noise, noise_scale, train


def least_squares(n=7, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.array([0.5, 1.0, 2.0])[:d]
    y = x @ rng.normal(size=d) + 0.3 * rng.normal(size=n)
    w = rng.normal(size=d)
    grads = x * (x @ w - y)[:, None]
    g = grads.mean(0)
    return x.T @ x / n, grads, g, (grads - g).T @ (grads - g) / n


@pytest.mark.parametrize("b", [1, 2, 3])
def test_optimal_step_matches_enumeration_of_every_minibatch(b):
    """E over all n^B ordered batches (with replacement) of the exact one-step gain of a quadratic."""
    h, grads, g, sigma = least_squares()
    batches = np.array(list(itertools.product(range(len(grads)), repeat=b)))
    gh = grads[batches].mean(1)
    a, c = gh @ g, np.einsum("ki,ij,kj->k", gh, h, gh)  # gain(eps) = eps a - eps^2 c / 2
    eps, gain = noise_scale.optimal_step(g, h, sigma, b)
    assert float(eps) == pytest.approx(a.mean() / c.mean(), rel=1e-5)
    assert float(gain) == pytest.approx(a.mean() ** 2 / (2 * c.mean()), rel=1e-5)
    # a step twice the optimum gains nothing on average
    assert 2 * float(eps) * a.mean() - 2 * float(eps) ** 2 * c.mean() == pytest.approx(0.0, abs=1e-5 * a.mean() ** 2 / c.mean())


def test_optimal_step_limits_and_arrays():
    h, _, g, sigma = least_squares()
    eps, gain = noise_scale.optimal_step(g, h, sigma, np.array([1.0, 10.0, np.inf]))
    assert eps.shape == (3,) and np.all(np.diff(np.asarray(eps)) > 0)
    assert float(eps[-1]) == pytest.approx(g @ g / (g @ h @ g), rel=1e-5)
    assert float(gain[-1]) == pytest.approx(0.5 * (g @ g) ** 2 / (g @ h @ g), rel=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        noise_scale.optimal_step(g, h, sigma, 0)
    with pytest.raises(ValueError, match="match"):
        noise_scale.optimal_step(g[:2], h, sigma, 1)


def test_minibatch_sq_norm_expectation_by_monte_carlo():
    mnist = data.mnist1d(n_train=300, n_test=50)
    model = models.MLP((40, 8, 10), rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p, rest)(x), y).mean()

    def sample(key, b):
        idx = jax.random.randint(key, (b,), 0, mnist.x_train.shape[0])
        return mnist.x_train[idx], mnist.y_train[idx]

    grads = np.asarray(noise.per_example_grads(model, mnist.x_train, mnist.y_train), np.float64)
    g2, tr = np.sum(grads.mean(0) ** 2), float(noise.gradient_noise_trace(grads))
    b, reps = 5, 400
    draws = jax.jit(jax.vmap(lambda k: noise_scale.minibatch_sq_norm(loss_fn, params, sample, k, b, draws=4)))(
        jax.random.split(jax.random.key(1), reps))
    draws = np.asarray(draws, np.float64)
    assert abs(draws.mean() - (g2 + tr / b)) < 4 * draws.std(ddof=1) / np.sqrt(reps)
    with pytest.raises(ValueError, match="draws"):
        noise_scale.minibatch_sq_norm(loss_fn, params, sample, jax.random.key(0), b, draws=0)


def test_two_batch_estimate_inside_fit_tracks_the_exact_noise_scale():
    """The metrics of Chapter 8 inside train.fit: averaged over evaluations at a fixed model
    (learning rate 0), the two-batch estimates match the exact |G|^2 and tr(Sigma)."""
    mnist = data.mnist1d(n_train=300, n_test=50)
    model = models.MLP((40, 8, 10), rngs=nnx.Rngs(0))
    small, big = 4, 64
    metrics = {f"sq_{b}": (lambda b: lambda p: noise_scale.minibatch_sq_norm(p.loss_fn, p.params, p.sample, p.key, b,
                                                                            draws=8))(b) for b in (small, big)}
    res = train.fit(model, optax.sgd(0.0), mnist, steps=40, batch_size=10, eval_every=1, metrics=metrics)
    s, bg = res.history[f"sq_{small}"].astype(np.float64), res.history[f"sq_{big}"].astype(np.float64)
    g2_hat, tr_hat = (np.asarray(v, np.float64) for v in noise_scale.two_batch_estimates(s, bg, small, big))
    grads = np.asarray(noise.per_example_grads(model, mnist.x_train, mnist.y_train), np.float64)
    g2, tr = np.sum(grads.mean(0) ** 2), float(noise.gradient_noise_trace(grads))
    for est, want in ((g2_hat, g2), (tr_hat, tr)):
        assert abs(est.mean() - want) < 4 * est.std(ddof=1) / np.sqrt(len(est))
