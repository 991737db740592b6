"""sgdlab.curvature against the dense Hessian of jax.hessian on small problems."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from sgdlab import curvature


@functools.lru_cache(maxsize=1)
def small_problem():
    """A two-layer tanh network with cross-entropy on 30 examples; params are a dict pytree."""
    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], (30, 4)) * jnp.array([3.0, 1.0, 0.5, 0.2])
    y = jax.random.randint(k[1], (30,), 0, 3)
    params = {"w1": jax.random.normal(k[2], (4, 5)) * 0.5, "b1": jnp.zeros(5),
              "w2": jax.random.normal(k[3], (5, 3)) * 0.5}

    def loss_fn(p):
        logits = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(30), y])

    flat, unravel = ravel_pytree(params)
    dense = np.asarray(jax.hessian(lambda w: loss_fn(unravel(w)))(flat), np.float64)
    return loss_fn, params, unravel, 0.5 * (dense + dense.T)


def quadratic(eigenvalues, seed=0):
    """loss(w) = w^T A w / 2 with A = Q diag(eigenvalues) Q^T, params a flat vector."""
    d = len(eigenvalues)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    a = q @ np.diag(eigenvalues) @ q.T
    aj = jnp.asarray(a, jnp.float32)
    return (lambda w: 0.5 * w @ aj @ w), a


def test_hvp_matches_dense_hessian():
    loss_fn, params, unravel, dense = small_problem()
    v = jax.tree.map(lambda p: jax.random.normal(jax.random.key(3), p.shape), params)
    hv = curvature.hvp(loss_fn, params, v)
    assert jax.tree.structure(hv) == jax.tree.structure(params)
    np.testing.assert_allclose(ravel_pytree(hv)[0], dense @ np.asarray(ravel_pytree(v)[0]), rtol=1e-4, atol=1e-5)


def test_top_eigenvalue_matches_dense_and_runs_under_jit():
    loss_fn, params, unravel, dense = small_problem()
    lam, vec = np.linalg.eigh(dense)
    top = np.argmax(np.abs(lam))
    run = jax.jit(lambda p, k: curvature.top_eigenvalue(loss_fn, p, k, iters=300))
    value, v = run(params, jax.random.key(1))
    assert isinstance(value, jax.Array) and value.shape == ()
    assert float(value) == pytest.approx(lam[top], rel=1e-3)
    v = np.asarray(ravel_pytree(v)[0])
    assert np.linalg.norm(v) == pytest.approx(1.0, rel=1e-5)
    assert abs(v @ vec[:, top]) > 0.99


def test_top_eigenvalue_finds_largest_magnitude():
    loss_fn, a = quadratic([-6.0, 1.0, 2.0, 3.0, 4.0])   # a saddle whose steepest direction is negative
    value, v = curvature.top_eigenvalue(loss_fn, jnp.ones(5), jax.random.key(0), iters=200)
    assert float(value) == pytest.approx(-6.0, rel=1e-4)
    np.testing.assert_allclose(a @ np.asarray(v), -6.0 * np.asarray(v), atol=1e-3)


def test_hutchinson_is_exact_for_a_diagonal_hessian():
    d = jnp.array([0.5, 2.0, 7.0])
    trace = curvature.hessian_trace(lambda p: 0.5 * jnp.sum(d * p["w"] ** 2), {"w": jnp.zeros(3)},
                                    jax.random.key(0), samples=3)
    assert float(trace) == pytest.approx(9.5, rel=1e-6)   # z^T D z = tr D for every sign vector z


def test_hutchinson_within_standard_error_of_the_trace():
    loss_fn, params, unravel, dense = small_problem()
    samples = 400
    est = jax.jit(lambda p, k: curvature.hessian_trace(loss_fn, p, k, samples=samples))(params, jax.random.key(2))
    # Var(z^T H z) = 2 sum_{i != j} H_ij^2 for Rademacher z (closed form, independent of the estimator)
    se = np.sqrt(2 * (np.sum(dense**2) - np.sum(np.diag(dense) ** 2)) / samples)
    assert abs(float(est) - np.trace(dense)) < 4 * se


def test_probes_differ_across_keys():
    loss_fn, params, _, _ = small_problem()
    a = curvature.hessian_trace(loss_fn, params, jax.random.key(0), samples=2)
    b = curvature.hessian_trace(loss_fn, params, jax.random.key(1), samples=2)
    assert float(a) != float(b)


def test_arguments_are_validated():
    loss_fn, params, _, _ = small_problem()
    with pytest.raises(ValueError, match="iters"):
        curvature.top_eigenvalue(loss_fn, params, jax.random.key(0), iters=0)
    with pytest.raises(ValueError, match="samples"):
        curvature.hessian_trace(loss_fn, params, jax.random.key(0), samples=1.5)
    with pytest.raises(ValueError, match="loss_fn"):
        curvature.hvp("not a function", params, params)
