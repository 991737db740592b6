r"""McAllester's per-parameter learning rates from a running estimate of signal and noise.

D. McAllester, *TTIC 31230 Fundamentals of Deep Learning*, lecture on SGD (2018), "A Complete
Algorithm". Each scalar parameter :math:`i` keeps running averages of its minibatch gradient
:math:`\hat g^t[i]` and of its square, with a window of :math:`B^\star(t)[i]/B` steps that the
algorithm itself chooses:

.. math::
    \omega^t[i] &= \min\big(1/n_{\min},\; B/B^\star(t-1)[i]\big)\\
    \tilde g^t[i] &= (1-\omega^t[i])\,\tilde g^{t-1}[i] + \omega^t[i]\,\hat g^t[i]\\
    \tilde s^t[i] &= (1-\omega^t[i])\,\tilde s^{t-1}[i] + \omega^t[i]\,\hat g^t[i]^2\\
    \tilde\sigma^t[i] &= \sqrt{\tilde s^t[i] - \tilde g^t[i]^2}\\
    B^\star(t)[i] &= \begin{cases} K & t \le K\\
        \lambda_B\,\tilde\sigma^t[i]^2/(\tilde g^t[i]^2 + \epsilon) & \text{otherwise}\end{cases}\\
    \eta^t[i] &= \begin{cases} 0 & t \le K\\
        \lambda_\eta\,\tilde g^t[i]^2/\tilde\sigma^t[i]^2 & \text{otherwise}\end{cases}\\
    w^{t+1}[i] &= w^t[i] - \eta^t[i]\,\hat g^t[i].

It is the one-dimensional analysis (:mod:`sgdlab.scaling`: :math:`B^\star = 16\hat\sigma^2/\hat g^2`,
:math:`\eta_B = B\hat g^2/(32\hat\sigma^2\Lambda)`, :math:`\Lambda` the curvature bound) applied to every coordinate separately. Optax has
nothing like it, so it is written here by hand.

Two details the slides leave open are fixed as follows (both discussed in Chapter 6):

* the averaging weight :math:`B/B^\star` is capped at :math:`1/n_{\min}` (``min_window``): the
  average always spans at least :math:`n_{\min}` steps. With the cap at 1 (``min_window=1``),
  a coordinate whose :math:`B^\star` falls below :math:`B` gets weight 1, so
  :math:`\tilde s = \hat g^2 = \tilde g^2`, :math:`\tilde\sigma = 0`, :math:`B^\star = 0` and the
  weight stays 1 for ever: the variance estimate collapses and cannot recover;
* the rate is capped at ``eta_max``, by default :math:`\lambda_\eta\lambda_B/B`, the rate the
  slides' own formulas give at :math:`B = B^\star` (that is :math:`\eta^\star`, since
  :math:`\eta_B = (B/B^\star)\eta^\star` is derived for :math:`B \le B^\star`). Without it a
  coordinate with :math:`\tilde\sigma = 0` would get an infinite rate. Pass ``eta_max=math.inf``
  for the slides' uncapped rate.

Because :math:`\tilde s - \tilde g^2` estimates the variance of a *minibatch mean*,
:math:`\sigma^2/B`, the one-dimensional derivation corresponds to :math:`\lambda_\eta = 1/(32\Lambda)`
and :math:`\lambda_B = 16B`. Note that :math:`\eta^t[i]` is computed from averages that already
contain :math:`\hat g^t[i]` and then multiplies that same gradient, as in the slides; the rate is
therefore not independent of the minibatch it is applied to (Chapter 6 discusses the bias).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .. import _checks


class McAllesterState(NamedTuple):
    """State of :func:`mcallester`: the step count and, per parameter, the running statistics.

    ``g`` is :math:`\\tilde g`, ``s`` is :math:`\\tilde s`, ``sigma`` is :math:`\\tilde\\sigma`,
    ``b_star`` is :math:`B^\\star(t)` and ``eta`` is the rate :math:`\\eta^t` of the last step.
    """

    count: jax.Array
    g: optax.Updates
    s: optax.Updates
    sigma: optax.Updates
    b_star: optax.Updates
    eta: optax.Updates


def _is_traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def _meta(name: str, value: Any, *, allow_zero: bool = False) -> Any:
    """Validate a concrete meta-parameter; a traced one (inside ``jit``/``vmap``) passes through."""
    if _is_traced(value):
        return value
    return _checks.positive_float(name, value, allow_zero=allow_zero)


def mcallester(
    K: int,
    lambda_B: float,
    lambda_eta: float | jax.Array,
    eps: float = 1e-8,
    *,
    batch_size: int,
    eta_max: float | None = None,
    min_window: float = 10.0,
) -> optax.GradientTransformation:
    r"""McAllester's complete per-parameter algorithm as an Optax ``GradientTransformation``.

    :param K: number of initial steps that only gather statistics (zero update); during them
        :math:`B^\star = K`, so the averages have weight :math:`B/K`.
    :param lambda_B: :math:`\lambda_B` in :math:`B^\star = \lambda_B\tilde\sigma^2/(\tilde g^2+\epsilon)`.
    :param lambda_eta: :math:`\lambda_\eta` in :math:`\eta = \lambda_\eta\tilde g^2/\tilde\sigma^2`
        (may be a traced scalar, so :func:`sgdlab.train.sweep` can sweep it).
    :param eps: :math:`\epsilon`, keeps :math:`B^\star` finite where :math:`\tilde g = 0`.
    :param batch_size: the minibatch size :math:`B` the gradients are averaged over.
    :param eta_max: cap on every per-parameter rate; default :math:`\lambda_\eta\lambda_B/B`.
    :param min_window: the running averages span at least this many steps (weight at most
        ``1/min_window``); 1 is the slides' literal algorithm, whose variance estimate can collapse.
        The default 10 keeps the relative standard error of :math:`\tilde\sigma^2`, about
        :math:`\sqrt{2/(2n_{\min}-1)}` for Gaussian gradients, near 30 %.
    :returns: an ``optax.GradientTransformation`` whose state is a :class:`McAllesterState`.

    The update is :math:`-\eta^t[i]\,\hat g^t[i]` (already a descent step: apply it with
    ``optax.apply_updates``). See the module docstring for the equations and the source.
    """
    K = _checks.positive_int("K", K)
    lambda_B = _meta("lambda_B", lambda_B)
    lambda_eta = _meta("lambda_eta", lambda_eta)
    eps = _meta("eps", eps)
    batch_size = _checks.positive_int("batch_size", batch_size)
    min_window = _checks.positive_float("min_window", min_window)
    if min_window < 1:
        raise ValueError(f"min_window must be at least 1 (a weight of at most 1), got {min_window!r}")
    if eta_max is None:
        eta_max = lambda_eta * lambda_B / batch_size
    elif not (isinstance(eta_max, (int, float)) and eta_max == math.inf):
        eta_max = _meta("eta_max", eta_max)

    def init_fn(params: optax.Params) -> McAllesterState:
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        return McAllesterState(
            count=jnp.zeros([], jnp.int32),
            g=zeros(),
            s=zeros(),
            sigma=zeros(),
            b_star=jax.tree.map(lambda p: jnp.full_like(p, K), params),
            eta=zeros(),
        )

    def update_fn(updates: optax.Updates, state: McAllesterState, params: optax.Params | None = None):
        del params
        t = state.count + 1
        warming = t <= K

        def one(grad, g_old, s_old, b_old):
            w = jnp.minimum(1.0 / min_window, batch_size / b_old)
            g = (1 - w) * g_old + w * grad
            s = (1 - w) * s_old + w * grad**2
            var = jnp.maximum(s - g**2, 0.0)
            b_star = jnp.where(warming, jnp.asarray(K, grad.dtype), lambda_B * var / (g**2 + eps))
            positive = var > 0
            ratio = jnp.where(positive, g**2 / jnp.where(positive, var, 1.0), jnp.inf)
            eta = jnp.where(warming, 0.0, jnp.minimum(lambda_eta * ratio, eta_max)).astype(grad.dtype)
            return g, s, jnp.sqrt(var), b_star, eta, -eta * grad

        out = jax.tree.map(one, updates, state.g, state.s, state.b_star)
        treedef = jax.tree.structure(updates)
        leaves = treedef.flatten_up_to(out)
        pick = lambda k: treedef.unflatten([leaf[k] for leaf in leaves])  # noqa: E731
        new_state = McAllesterState(t, pick(0), pick(1), pick(2), pick(3), pick(4))
        return pick(5), new_state

    return optax.GradientTransformation(init_fn, update_fn)
