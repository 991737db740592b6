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
* :func:`fisher_matrix`: the Fisher information of a small softmax classifier, formed as a
  matrix (Amari 1998): what the Hessian approaches near a minimum (Chapter 7) and what
  natural-gradient descent preconditions with (Chapter 3).
* :func:`epsilon_sharpness`: Keskar et al.'s (2017) sharpness, the largest rise of the loss in a
  box around :math:`w` whose sides grow with :math:`|w_i|`, found by projected ascent.
* :func:`filter_normalized_direction`: a random direction scaled filter by filter to the
  weights (Li et al. 2018), for plotting the loss along a line through :math:`w`.

JAX has no power iteration or Hutchinson estimator of its own (``jax.scipy.sparse.linalg``
solves linear systems only), hence these few lines; nor do JAX or Optax have Keskar's
sharpness or Li et al.'s directions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from . import _checks

__all__ = ["hvp", "top_eigenvalue", "hessian_trace", "fisher_matrix", "epsilon_sharpness",
           "filter_normalized_direction"]

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


def epsilon_sharpness(
    loss_fn: Callable[[Params], jax.Array], params: Params, key: jax.Array, *, epsilon: float, steps: int = 20
) -> jax.Array:
    r"""Keskar et al.'s :math:`\epsilon`-sharpness: the largest rise of the loss in a box around :math:`w`, in percent.

    .. math::  \phi_\epsilon(w) = 100\,\frac{\max_{y\in C_\epsilon} L(w+y) - L(w)}{1 + L(w)},

               C_\epsilon = \{y : |y_i| \le \epsilon\,(|w_i| + 1)\ \text{for every } i\}

    (Keskar, Mudigere, Nocedal, Smelyanskiy & Tang 2017, Metric 2.1, in the full space). The
    side of the box grows with :math:`|w_i|`, so large weights may move more. Keskar et al.
    maximise with L-BFGS-B; here ``steps`` steps of projected sign-gradient ascent
    :math:`y \leftarrow \operatorname{clip}(y + \tfrac{2}{\text{steps}}\,r\odot\operatorname{sign}\nabla L(w+y), -r, r)`,
    :math:`r_i = \epsilon(|w_i|+1)`, the steepest ascent for a box (an :math:`\ell_\infty` ball once
    each side is scaled to one; the projected gradient method of Madry et al. 2018), from a
    uniform random point of the box (at a minimum the gradient is zero, so :math:`y = 0` would
    not move). The best point visited is kept: the value is a lower bound on the exact maximum,
    and reaches it when the maximum lies at a corner of the box, as for a convex loss.

    ``epsilon`` and ``steps`` are Python numbers; ``params`` may be traced (jit, vmap, a metric).
    """
    _check_loss_fn(loss_fn)
    epsilon = _checks.positive_float("epsilon", epsilon)   # Python numbers only: nothing traced is checked
    steps = _checks.positive_int("steps", steps)
    radius = jax.tree.map(lambda w: epsilon * (jnp.abs(w) + 1.0), params)
    uniform = lambda k, shape, dtype: jax.random.uniform(k, shape, dtype, -1.0, 1.0)  # noqa: E731
    unit = _random_like(key, params, uniform)
    shifted = lambda y: jax.tree.map(jnp.add, params, y)  # noqa: E731
    value_and_grad = jax.value_and_grad(lambda y: loss_fn(shifted(y)))
    base = loss_fn(params)  # y = 0 lies in the box, so the maximum is at least L(w)

    def body(_, carry):
        y, best = carry
        value, g = value_and_grad(y)
        step = lambda yi, gi, ri: jnp.clip(yi + (2.0 / steps) * ri * jnp.sign(gi), -ri, ri)  # noqa: E731
        y = jax.tree.map(step, y, g, radius)
        return y, jnp.maximum(best, value)

    y, best = jax.lax.fori_loop(0, steps, body, (jax.tree.map(jnp.multiply, unit, radius), base))
    best = jnp.maximum(best, loss_fn(shifted(y)))
    return 100.0 * (best - base) / (1.0 + base)


def filter_normalized_direction(key: jax.Array, params: Params) -> Params:
    r"""A Gaussian direction :math:`d` rescaled filter by filter to the weights (Li, Xu, Taylor, Studer & Goldstein 2018).

    A leaf with two or more axes is a weight array whose *last* axis indexes its filters (output
    units), as in Flax: ``nnx.Linear`` kernels are ``(in, out)``, ``nnx.Conv`` kernels
    ``(width, in, out)``. Each filter of the draw is scaled to the norm of the same filter of
    :math:`w`,

    .. math::  d_{\cdot j} \leftarrow \frac{d_{\cdot j}}{\|d_{\cdot j}\|}\,\|w_{\cdot j}\| ,

    and leaves with fewer axes (biases) get :math:`d = 0`: they are not perturbed, as with the
    ``biasbn`` option of Li et al.'s code. The loss :math:`t \mapsto L(w + t\,d)` along such a
    direction does not change when a ReLU network is rescaled layer by layer without changing its
    function (Dinh et al. 2017), which the raw sharpness does; that is why Li et al. use it.
    """
    if not jax.tree.leaves(params):
        raise ValueError("params has no leaves")

    def one(k, w):
        w = jnp.asarray(w)
        if w.ndim < 2:
            return jnp.zeros_like(w)
        d = jax.random.normal(k, w.shape, w.dtype)
        axes = tuple(range(w.ndim - 1))
        scale = jnp.sqrt(jnp.sum(w**2, axis=axes)) / jnp.sqrt(jnp.sum(d**2, axis=axes))
        return d * scale

    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [one(k, w) for k, w in zip(keys, leaves)])


def fisher_matrix(model_fn: Callable, w: jax.Array, x: jax.Array) -> jax.Array:
    r"""Fisher information of a softmax classifier at flat parameters ``w`` on inputs ``x``.

    .. math::  F(w) = \frac1n\sum_{i=1}^n J_i^\top\big(\operatorname{diag}p_i - p_ip_i^\top\big)J_i,

    with :math:`p_i` the predicted class probabilities and :math:`J_i` the Jacobian of the logits
    with respect to :math:`w`: the expected outer product of :math:`\nabla\log p(y\mid x_i)` with
    :math:`y` drawn from the model (Amari 1998). ``model_fn(w, x)`` returns the logits. Meant for
    small models: it forms all :math:`n` Jacobians.
    """
    w = jnp.asarray(w)
    x = jnp.asarray(x)
    logits = model_fn(w, x)                                                   # (n, classes)
    jac = jax.vmap(lambda xi: jax.jacrev(lambda v: model_fn(v, xi[None])[0])(w))(x)   # (n, classes, P)
    p = jax.nn.softmax(logits)
    # diag(p) - p p^T = sum_c p_c (e_c - p)(e_c - p)^T: F = A^T A with rows sqrt(p_ic / n) (J_i^T (e_c - p_i))
    centred = jac - jnp.einsum("nc,ncp->np", p, jac)[:, None, :]               # rows J_i^T (e_c - p_i)
    a = (jnp.sqrt(p / x.shape[0])[..., None] * centred).reshape(-1, w.shape[0])
    return a.T @ a
