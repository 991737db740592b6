"""sgdlab.curvature against the dense Hessian of jax.hessian on small problems."""

import functools
import itertools

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


# ------------------------------------------------------------------ Keskar's sharpness, Li's directions

def test_epsilon_sharpness_is_exact_for_a_convex_quadratic_at_its_minimum():
    # the maximum of a convex function over a box is at a corner: sum_i h_i r_i^2 / 2 with r_i = eps (|w_i| + 1)
    h = jnp.array([0.5, 2.0, 7.0, 0.1])
    w_star = jnp.array([0.0, 1.0, -3.0, 0.5])
    loss_fn = lambda w: 0.5 * jnp.sum(h * (w - w_star) ** 2)  # noqa: E731
    eps = 1e-2
    r = eps * (np.abs(np.asarray(w_star)) + 1.0)
    exact = 100 * 0.5 * float(np.sum(np.asarray(h) * r**2)) / (1 + 0.0)
    got = curvature.epsilon_sharpness(loss_fn, w_star, jax.random.key(0), epsilon=eps, steps=10)
    assert float(got) == pytest.approx(exact, rel=1e-4)


def test_epsilon_sharpness_matches_brute_force_over_the_corners():
    # a dense convex quadratic away from its minimum: the maximum is at one of the 2^6 corners
    rng = np.random.default_rng(1)
    m = rng.normal(size=(6, 6))
    a = m @ m.T / 6 + 0.1 * np.eye(6)
    aj = jnp.asarray(a, jnp.float32)
    w = rng.normal(size=6).astype(np.float32)
    loss_fn = lambda v: 0.5 * v @ aj @ v + 1.0  # noqa: E731
    eps = 0.05
    r = eps * (np.abs(w) + 1.0)
    corners = np.array(list(itertools.product([-1.0, 1.0], repeat=6))) * r
    values = 0.5 * np.einsum("ki,ij,kj->k", w + corners, a, w + corners) + 1.0
    base = 0.5 * w @ a @ w + 1.0
    exact = 100 * (values.max() - base) / (1 + base)
    got = jax.jit(lambda p, k: curvature.epsilon_sharpness(loss_fn, p, k, epsilon=eps, steps=40))(
        jnp.asarray(w), jax.random.key(3))
    assert float(got) <= exact * (1 + 1e-4)          # a lower bound: every visited point is in the box
    assert float(got) == pytest.approx(exact, rel=1e-3)


def test_epsilon_sharpness_of_a_concave_loss_is_zero_at_its_maximum():
    loss_fn = lambda p: -jnp.sum(p["w"] ** 2)  # noqa: E731
    got = curvature.epsilon_sharpness(loss_fn, {"w": jnp.zeros(3)}, jax.random.key(0), epsilon=0.1)
    assert float(got) == pytest.approx(0.0, abs=1e-7)  # no point of the box rises above L(w)


def test_epsilon_sharpness_validates():
    with pytest.raises(ValueError, match="epsilon"):
        curvature.epsilon_sharpness(lambda w: w @ w, jnp.ones(2), jax.random.key(0), epsilon=0.0)
    with pytest.raises(ValueError, match="steps"):
        curvature.epsilon_sharpness(lambda w: w @ w, jnp.ones(2), jax.random.key(0), epsilon=0.1, steps=0)
    with pytest.raises(ValueError, match="loss_fn"):
        curvature.epsilon_sharpness(None, jnp.ones(2), jax.random.key(0), epsilon=0.1)


def test_filter_normalized_direction_scales_each_filter_and_skips_biases():
    rng = np.random.default_rng(0)
    params = {"kernel": jnp.asarray(rng.normal(size=(5, 3)) * np.array([0.1, 1.0, 10.0]), jnp.float32),
              "conv": jnp.asarray(rng.normal(size=(3, 2, 4)), jnp.float32), "bias": jnp.ones(3)}
    d = curvature.filter_normalized_direction(jax.random.key(0), params)
    assert jax.tree.structure(d) == jax.tree.structure(params)
    for name, axes in [("kernel", 0), ("conv", (0, 1))]:
        np.testing.assert_allclose(np.linalg.norm(np.asarray(d[name]).reshape(-1, params[name].shape[-1]), axis=0),
                                   np.linalg.norm(np.asarray(params[name]).reshape(-1, params[name].shape[-1]), axis=0),
                                   rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(d["bias"]), 0.0)
    other = curvature.filter_normalized_direction(jax.random.key(1), params)
    assert not np.allclose(np.asarray(d["kernel"]), np.asarray(other["kernel"]))


def test_loss_along_filter_normalized_direction_is_invariant_to_layer_rescaling():
    # relu(alpha W1 x + alpha b1) W2 / alpha = relu(W1 x + b1) W2: the same network, and the same line
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(20, 4)), jnp.float32)
    w = {"w1": jnp.asarray(rng.normal(size=(4, 6)), jnp.float32), "b1": jnp.asarray(rng.normal(size=6), jnp.float32),
         "w2": jnp.asarray(rng.normal(size=(6, 2)), jnp.float32)}

    def loss_fn(p):
        return jnp.mean((jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"]) ** 2)

    alpha = 5.0
    w_a = {"w1": alpha * w["w1"], "b1": alpha * w["b1"], "w2": w["w2"] / alpha}
    key = jax.random.key(7)
    d, d_a = (curvature.filter_normalized_direction(key, p) for p in (w, w_a))
    for t in (0.3, 1.0):
        moved = loss_fn(jax.tree.map(lambda p, q: p + t * q, w, d))
        moved_a = loss_fn(jax.tree.map(lambda p, q: p + t * q, w_a, d_a))
        assert float(moved_a) == pytest.approx(float(moved), rel=1e-5)
    # while the raw sharpness is not invariant
    lam = float(curvature.top_eigenvalue(loss_fn, w, key, iters=200)[0])
    lam_a = float(curvature.top_eigenvalue(loss_fn, w_a, key, iters=200)[0])
    assert lam_a > 5 * lam


def test_filter_normalized_direction_validates():
    with pytest.raises(ValueError, match="params"):
        curvature.filter_normalized_direction(jax.random.key(0), {})


def test_fisher_of_linear_softmax_matches_outer_products():
    x = jax.random.normal(jax.random.key(6), (20, 40))
    w = jax.random.normal(jax.random.key(7), (40 * 3 + 3,)) * 0.1

    def model_fn(w, x):
        return x @ w[:120].reshape(40, 3) + w[120:]

    fisher = np.asarray(curvature.fisher_matrix(model_fn, w, x), np.float64)
    # expectation over y ~ p(y|x) of grad log p grad log p^T, enumerated over the 3 classes
    ref = np.zeros_like(fisher)
    for xi in np.asarray(x):
        p = np.asarray(jax.nn.softmax(model_fn(w, xi[None])[0]))
        for k in range(3):
            gk = np.asarray(jax.grad(lambda v: jax.nn.log_softmax(model_fn(v, xi[None])[0])[k])(w))
            ref += p[k] * np.outer(gk, gk)
    ref /= x.shape[0]
    np.testing.assert_allclose(fisher, ref, rtol=1e-3, atol=1e-6)
