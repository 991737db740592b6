r"""Per-example gradients and the statistics of minibatch gradient noise.

For a loss :math:`L(w) = \frac1N\sum_i \ell_i(w)` the minibatch gradient
:math:`\hat g_B = \frac1B\sum_{i\in B}\nabla\ell_i` is unbiased, and with per-example
gradient covariance :math:`\Sigma = \frac1N\sum_i (g_i - g)(g_i - g)^\top`

.. math::  \mathbb E\|\hat g_B - g\|^2 = \frac{\operatorname{tr}\Sigma}{B}
           \quad\text{(with replacement)},\qquad
           \frac{\operatorname{tr}\Sigma}{B}\,\frac{N-B}{N-1}\quad\text{(without)}.

(Chaudhari & Soatto 2018, Lemma 1; the finite-population correction is classical survey
sampling, e.g. Cochran 1977.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax.flatten_util import ravel_pytree

from . import _checks
from .train import LOSSES, per_example_loss


def per_example_grads(model: nnx.Module, x: jax.Array, y: jax.Array, *, loss: str = "cross_entropy") -> jax.Array:
    r"""Gradients :math:`\nabla_w \ell(f_w(x_i), y_i)` of every example, flattened: shape ``(n, P)``.

    Computed as ``jax.vmap(jax.grad(...))`` over the examples, so one call costs about one
    backward pass of the whole batch. ``P`` is the number of parameters; the column order is
    that of :func:`jax.flatten_util.ravel_pytree` on the model's ``nnx.Param`` state.
    """
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
    _checks.one_of("loss", loss, LOSSES)
    x = jnp.asarray(_checks.finite_array("x", x))
    y = jnp.asarray(_checks.finite_array("y", y))
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return _per_example_grads(graphdef, params, rest, x, y, loss)


@functools.partial(jax.jit, static_argnums=(0, 5))
def _per_example_grads(graphdef, params, rest, x, y, loss):
    def one(p, xi, yi):
        out = nnx.merge(graphdef, p, rest)(xi[None])
        return per_example_loss(out, yi[None], loss)[0]

    grads = jax.vmap(jax.grad(one), in_axes=(None, 0, 0))(params, x, y)
    return jax.vmap(lambda g: ravel_pytree(g)[0])(grads)


def gradient_noise_trace(grads: jax.Array) -> jax.Array:
    r"""Trace of the per-example gradient covariance, :math:`\operatorname{tr}\Sigma = \frac1N\sum_i\|g_i-\bar g\|^2`."""
    grads = jnp.asarray(_checks.finite_array("grads", grads, ndim=2))
    return jnp.mean(jnp.sum((grads - grads.mean(0)) ** 2, axis=1))


def minibatch_variance(grads: jax.Array, batch_size: int, *, replace: bool = True) -> jax.Array:
    r"""Exact :math:`\mathbb E\|\hat g_B - g\|^2` for minibatches of ``batch_size`` rows of ``grads``.

    ``tr(Σ)/B`` with replacement; times the finite-population factor :math:`(N-B)/(N-1)` without.
    """
    grads = jnp.asarray(_checks.finite_array("grads", grads, ndim=2))
    n = grads.shape[0]
    b = _checks.batch_size("batch_size", batch_size, n)
    if not replace and n < 2:
        raise ValueError("grads needs at least two rows to sample without replacement")
    factor = 1.0 if replace else (n - b) / (n - 1)
    return gradient_noise_trace(grads) / b * factor


def sample_minibatch_grads(
    key: jax.Array, grads: jax.Array, batch_size: int, n_draws: int, *, replace: bool = True
) -> jax.Array:
    """``n_draws`` independent minibatch-mean gradients from the rows of ``grads``: shape ``(n_draws, P)``.

    Each draw picks ``batch_size`` rows uniformly, with or without replacement within the draw.
    This is the Monte-Carlo counterpart of :func:`minibatch_variance`.
    """
    grads = jnp.asarray(_checks.finite_array("grads", grads, ndim=2))
    n = grads.shape[0]
    b = _checks.batch_size("batch_size", batch_size, n)
    n_draws = _checks.positive_int("n_draws", n_draws)
    return _sample(key, grads, b, n_draws, bool(replace))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _sample(key, grads, b, n_draws, replace):
    n = grads.shape[0]
    keys = jax.random.split(key, n_draws)
    if replace:
        idx = jax.vmap(lambda k: jax.random.randint(k, (b,), 0, n))(keys)
    else:
        idx = jax.vmap(lambda k: jnp.argsort(jax.random.bits(k, (n,)))[:b])(keys)
    return jax.vmap(lambda i: grads[i].mean(0))(idx)


def empirical_minibatch_variance(
    key: jax.Array, grads: jax.Array, batch_size: int, n_draws: int, *, replace: bool = True
) -> tuple[jax.Array, jax.Array]:
    r"""Monte-Carlo estimate of :math:`\mathbb E\|\hat g_B - g\|^2` and its standard error.

    Averages :math:`\|\hat g_B - g\|^2` over ``n_draws`` minibatches, with :math:`g` the mean of
    all rows; the standard error is the sample standard deviation over :math:`\sqrt{n_{draws}}`.
    """
    draws = sample_minibatch_grads(key, grads, batch_size, n_draws, replace=replace)
    sq = jnp.sum((draws - jnp.asarray(grads).mean(0)) ** 2, axis=1)
    return sq.mean(), sq.std(ddof=1) / jnp.sqrt(sq.shape[0])
