"""sgdlab.noise: per-example gradients against autodiff of single examples; the variance formulas
against exhaustive enumeration and Monte Carlo."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from sgdlab import data, models, noise


def test_per_example_grads_match_one_at_a_time():
    model = models.MLP((5, 7, 3), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (6, 5))
    y = jnp.array([0, 1, 2, 0, 1, 2])
    G = noise.per_example_grads(model, x, y)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    for i in range(6):
        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p, rest)(x[i:i + 1]), y[i:i + 1])[0]
        np.testing.assert_allclose(G[i], ravel_pytree(jax.grad(loss)(params))[0], rtol=1e-5, atol=1e-6)
    # their mean is the gradient of the mean loss
    def mean_loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p, rest)(x), y).mean()
    np.testing.assert_allclose(G.mean(0), ravel_pytree(jax.grad(mean_loss)(params))[0], rtol=1e-5, atol=1e-6)


def exhaustive_variance(G, b, replace):
    """E||g_B - g||^2 by enumerating every equally likely minibatch."""
    n = G.shape[0]
    g = G.mean(0)
    batches = itertools.product(range(n), repeat=b) if replace else itertools.permutations(range(n), b)
    vals = [np.sum((G[list(s)].mean(0) - g) ** 2) for s in batches]
    return np.mean(vals)


@pytest.mark.parametrize("replace", [True, False])
@pytest.mark.parametrize("b", [1, 2, 3, 5])
def test_minibatch_variance_equals_enumeration(b, replace):
    G = np.random.default_rng(0).normal(size=(5, 3)) + 2.0
    assert float(noise.minibatch_variance(G, b, replace=replace)) == pytest.approx(
        exhaustive_variance(G, b, replace), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("replace", [True, False])
def test_monte_carlo_agrees_within_standard_error(replace):
    G = jax.random.normal(jax.random.key(0), (300, 40)) * jnp.linspace(0.2, 2, 40) + 1.0
    sizes = [1, 16, 150, 299]
    mean, se = noise.empirical_minibatch_variance(jax.random.key(1), G, sizes, 3000, replace=replace)
    exact = np.array([float(noise.minibatch_variance(G, b, replace=replace)) for b in sizes])
    # 4 standard errors: a false alarm has probability ~6e-5 per batch size
    assert np.all(np.abs(mean - exact) < 4 * se + 1e-6)


def test_sampled_minibatch_means_are_unbiased():
    G = jax.random.normal(jax.random.key(2), (100, 8)) + 3.0
    draws = noise.sample_minibatch_grads(jax.random.key(3), G, 10, 5000)
    err = draws.mean(0) - G.mean(0)
    se = draws.std(0, ddof=1) / np.sqrt(5000)
    assert np.all(np.abs(err) < 4.5 * se)


def test_sampling_without_replacement_never_repeats_a_row():
    G = jnp.arange(10.0)[:, None] * jnp.array([[1.0, 0.0]]) + jnp.array([[0.0, 1.0]])
    draws = noise.sample_minibatch_grads(jax.random.key(0), G, 10, 20, replace=False)
    np.testing.assert_allclose(draws, np.broadcast_to(G.mean(0), draws.shape), rtol=1e-6)


@pytest.mark.parametrize("call, name", [
    (lambda G: noise.minibatch_variance(G, 0), "batch_size"),
    (lambda G: noise.minibatch_variance(G[0], 1), "grads"),
    (lambda G: noise.minibatch_variance(G.at[0, 0].set(jnp.inf), 1), "grads"),
    (lambda G: noise.sample_minibatch_grads(jax.random.key(0), G, 2, 0), "n_draws"),
    (lambda G: noise.empirical_minibatch_variance(jax.random.key(0), G, [], 10), "batch_sizes"),
    (lambda G: noise.empirical_minibatch_variance(jax.random.key(0), G, [2], 1), "n_draws"),
])
def test_noise_rejects_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call(jnp.ones((4, 3)))


def test_per_example_grads_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="rows"):
        noise.per_example_grads(models.MLP((2, 2), rngs=nnx.Rngs(0)), jnp.ones((3, 2)), jnp.zeros(2, jnp.int32))


def test_per_example_gradients_inside_a_compiled_program_match_per_example_grads():
    from flax import nnx

    from sgdlab import losses

    d, _ = data.teacher_student(jax.random.key(3), 32, (6, 8, 3), n_test=8)
    model = models.MLP((6, 8, 3), rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(p, x, y):
        return losses.cross_entropy(nnx.merge(graphdef, p, rest)(x), y).mean()

    inside = jax.jit(lambda p: noise.gradient_noise_trace(noise.per_example_gradients(loss_fn, p, d.x_train, d.y_train)))
    host = noise.gradient_noise_trace(noise.per_example_grads(model, d.x_train, d.y_train))
    np.testing.assert_allclose(inside(params), host, rtol=1e-5)
