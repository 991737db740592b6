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
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.flatten_util import ravel_pytree

from . import _checks
from .losses import LOSSES, per_example_loss


def per_example_grads(model: nnx.Module, x: jax.Array, y: jax.Array, *, loss: str = "cross_entropy") -> jax.Array:
    r"""Gradients :math:`\nabla_w \ell(f_w(x_i), y_i)` of every example, flattened: shape ``(n, P)``.

    Computed as ``jax.vmap(jax.grad(...))`` over the examples, so one call costs about one
    backward pass of the whole batch. ``P`` is the number of parameters; the column order is
    that of :func:`jax.flatten_util.ravel_pytree` on the model's ``nnx.Param`` state.
    """
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
    _checks.one_of("loss", loss, LOSSES)
    x, y = map(jnp.asarray, _checks.examples(x, y))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return _per_example_grads(graphdef, params, rest, x, y, loss)


@functools.partial(jax.jit, static_argnums=(0, 5))
def _per_example_grads(graphdef, params, rest, x, y, loss):
    def one(p, xi, yi):
        out = nnx.merge(graphdef, p, rest)(xi[None])
        return per_example_loss(out, yi[None], loss)[0]

    grads = jax.vmap(jax.grad(one), in_axes=(None, 0, 0))(params, x, y)
    return jax.vmap(lambda g: ravel_pytree(g)[0])(grads)


def per_example_gradients(loss_fn, params, x: jax.Array, y: jax.Array) -> jax.Array:
    r"""Per-example gradients of ``loss_fn(params, x, y)`` (a mean loss over a batch), flattened: ``(n, P)``.

    The pure counterpart of :func:`per_example_grads` for use inside a compiled program, e.g. a
    metric of :func:`sgdlab.train.fit` measuring the gradient noise during training:
    ``per_example_gradients(probe.loss_fn, probe.params, probe.data.x_train, probe.data.y_train)``.
    """
    def one(xi, yi):
        return ravel_pytree(jax.grad(loss_fn)(params, xi[None], yi[None]))[0]

    return jax.vmap(one)(x, y)


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


def _draw_indices(key, n, b, n_draws, replace):
    """``(n_draws, b)`` row indices: independent uniform draws, or the first ``b`` of a random permutation."""
    keys = jax.random.split(key, n_draws)
    if replace:
        return jax.vmap(lambda k: jax.random.randint(k, (b,), 0, n))(keys)
    return jax.vmap(lambda k: jax.random.permutation(k, n)[:b])(keys)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _sample(key, grads, b, n_draws, replace):
    idx = _draw_indices(key, grads.shape[0], b, n_draws, replace)
    return jax.vmap(lambda i: grads[i].mean(0))(idx)


def empirical_minibatch_variance(
    key: jax.Array,
    grads: jax.Array,
    batch_sizes: Sequence[int],
    n_draws: int,
    *,
    replace: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Monte-Carlo estimates of :math:`\mathbb E\|\hat g_B - g\|^2`, with standard errors, per batch size.

    For each ``B`` in ``batch_sizes`` it draws ``n_draws`` minibatches of ``B`` rows and
    averages :math:`\|\hat g_B - g\|^2`, where :math:`g` is the mean of all rows; the standard
    error is the sample standard deviation over :math:`\sqrt{n_{draws}}`. The squared norms come
    from the Gram matrix of the centred gradients, :math:`\|\hat g_B-g\|^2 = B^{-2}\sum_{i,j\in B}
    \langle g_i-g, g_j-g\rangle`, computed once, so a draw costs :math:`n^2` instead of :math:`BP` for
    ``P`` parameters, and all batch sizes share one compiled program. Returns two arrays of shape
    ``(len(batch_sizes),)``.
    """
    grads = jnp.asarray(_checks.finite_array("grads", grads, ndim=2))
    n = grads.shape[0]
    sizes = [_checks.batch_size("batch_sizes", b, n) for b in batch_sizes]
    if not sizes:
        raise ValueError("batch_sizes is empty")
    n_draws = _checks.positive_int("n_draws", n_draws)
    if n_draws < 2:
        raise ValueError("n_draws must be at least 2 to estimate a standard error")
    centred = grads - grads.mean(0)
    sq = _gram_draws(jax.random.split(key, len(sizes)), centred @ centred.T, jnp.asarray(sizes),
                     n_draws, max(sizes), bool(replace))
    return np.asarray(sq.mean(1)), np.asarray(sq.std(1, ddof=1) / np.sqrt(n_draws))


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _gram_draws(keys, gram, sizes, n_draws, b_max, replace):
    r"""Squared deviations ``(len(sizes), n_draws)`` for every batch size in one program.

    A draw is its vector of row counts :math:`c` (multinomial with replacement, the indicator of
    a uniform ``B``-subset without: the first ``B`` of ``b_max`` indices), so
    :math:`\|\hat g_B - g\|^2 = c^\top G c / B^2` with the Gram matrix :math:`G`; the batch size
    is a traced value, not a new program per size.
    """
    n = gram.shape[0]

    def one(key, b):
        idx = _draw_indices(key, n, b_max, n_draws, replace)   # the first b of each row are the draw
        used = (jnp.arange(b_max) < b).astype(gram.dtype)
        counts = jnp.zeros((n_draws, n), gram.dtype).at[jnp.arange(n_draws)[:, None], idx].add(used)
        return jnp.sum((counts @ gram) * counts, axis=1) / b.astype(gram.dtype) ** 2

    return jax.lax.map(lambda kb: one(*kb), (keys, sizes))
