r"""Curvature of a loss without forming its Hessian: Hessian-vector products, the top eigenvalue, the trace.

Every function takes ``loss_fn(params) -> scalar`` with ``params`` any pytree (a flat vector,
a dict of arrays, an NNX ``nnx.Param`` state) and touches the Hessian
:math:`H = \nabla^2 L(w)` only through products :math:`Hv`. They are pure JAX: call them inside
``jax.jit``, ``jax.vmap`` or a compiled training loop (as a metric) without a new compilation
per call. ``iters`` and ``samples`` are Python integers (loop lengths); everything else may be
traced.

* :func:`hvp`: :math:`Hv` by forward-over-reverse differentiation,
  ``jax.jvp(jax.grad(f), (w,), (v,))`` (Pearlmutter 1994). It costs about two gradients and
  never stores :math:`H`. (``optax.second_order`` held such helpers; it is deprecated.)
* :func:`top_eigenvalue`: power iteration on :math:`Hv` (the sharpness of Keskar et al. 2017
  near a minimum).
* :func:`hessian_trace`: Hutchinson's estimator :math:`\operatorname{tr}H = \mathbb E[z^\top Hz]`
  with Rademacher probes :math:`z` (Hutchinson 1990).

JAX has no power iteration or Hutchinson estimator of its own (``jax.scipy.sparse.linalg``
solves linear systems only), hence these few lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from . import _checks

__all__ = ["hvp", "top_eigenvalue", "hessian_trace"]

Params = Any


def _check_loss_fn(loss_fn: Any) -> None:
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a callable loss_fn(params) -> scalar, got {type(loss_fn).__name__}")


def _vdot(a: Params, b: Params) -> jax.Array:
    """:math:`\\langle a, b\\rangle` summed over every leaf of two pytrees of the same structure."""
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _scale(tree: Params, c: jax.Array) -> Params:
    return jax.tree.map(lambda x: (x * c).astype(x.dtype), tree)


def _random_like(key: jax.Array, params: Params, sampler: Callable) -> Params:
    """A pytree shaped like ``params`` whose leaves are independent draws of ``sampler(key, shape, dtype)``."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [sampler(k, jnp.shape(x), jnp.result_type(x)) for k, x in zip(keys, leaves)])


def hvp(loss_fn: Callable[[Params], jax.Array], params: Params, v: Params) -> Params:
    r"""Hessian-vector product :math:`\nabla^2L(w)\,v`, a pytree shaped like ``params``.

    Forward-over-reverse: the directional derivative of :math:`\nabla L` along :math:`v`,
    ``jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]``.
    """
    _check_loss_fn(loss_fn)
    return _hvp(loss_fn, params, v)


def _hvp(loss_fn, params, v):
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def top_eigenvalue(
    loss_fn: Callable[[Params], jax.Array], params: Params, key: jax.Array, *, iters: int = 100
) -> tuple[jax.Array, Params]:
    r"""Eigenvalue of :math:`\nabla^2L(w)` of largest magnitude, and its unit eigenvector, by power iteration.

    From a random unit vector :math:`v_0`, ``iters`` steps of :math:`v_{k+1} = Hv_k/\|Hv_k\|`
    (one ``lax.fori_loop``), then the Rayleigh quotient :math:`\lambda = v^\top Hv`. The error in
    :math:`\lambda` shrinks like :math:`(\lambda_2/\lambda_1)^{2k}`, so a close second eigenvalue
    needs more ``iters``. Power iteration finds the eigenvalue of largest *magnitude*: near a
    minimum that is the top (positive) one, the sharpness; at a saddle it may be a negative one.

    Returns ``(eigenvalue, eigenvector)`` as JAX values (a scalar and a pytree shaped like
    ``params``), so it runs inside ``jax.jit`` or a compiled training loop.
    """
    _check_loss_fn(loss_fn)
    iters = _checks.positive_int("iters", iters)

    def normalise(v):
        return _scale(v, 1.0 / jnp.sqrt(_vdot(v, v)))

    def body(_, v):
        return normalise(_hvp(loss_fn, params, v))

    v = jax.lax.fori_loop(0, iters, body, normalise(_random_like(key, params, jax.random.normal)))
    return _vdot(v, _hvp(loss_fn, params, v)), v


def hessian_trace(
    loss_fn: Callable[[Params], jax.Array], params: Params, key: jax.Array, *, samples: int = 100
) -> jax.Array:
    r"""Hutchinson's estimate of :math:`\operatorname{tr}\nabla^2L(w)` from ``samples`` Rademacher probes.

    .. math::  \widehat{\operatorname{tr}H} = \frac1m\sum_{k=1}^m z_k^\top Hz_k,\qquad
               z_k\in\{-1,+1\}^P \text{ independent, uniform},

    is unbiased, with variance :math:`\frac2m\sum_{i\ne j}H_{ij}^2` (Rademacher probes have the
    smallest variance among probes with independent entries; Hutchinson 1990). The probes run one
    after another in a ``lax.fori_loop``, so memory stays at one Hessian-vector product.
    """
    _check_loss_fn(loss_fn)
    samples = _checks.positive_int("samples", samples)

    def body(k, total):
        z = _random_like(jax.random.fold_in(key, k), params, jax.random.rademacher)
        return total + _vdot(z, _hvp(loss_fn, params, z))

    leaves = jax.tree.leaves(params)
    zero = jnp.zeros((), jnp.result_type(*leaves)) if leaves else jnp.zeros(())
    return jax.lax.fori_loop(0, samples, body, zero) / samples
