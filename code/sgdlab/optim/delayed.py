r"""Stale gradients: asynchronous SGD with a fixed delay, as an Optax wrapper.

In asynchronous data parallelism a worker reads the weights, computes a gradient and sends it
to the parameter server, which applies it after the other workers' updates: the gradient is
*stale*. With a fixed delay :math:`\tau` this is

.. math::  w_{t+1} = w_t + \mathrm{update}\bigl(g(w_{t-\tau})\bigr),

which :func:`delayed` implements exactly: a first-in, first-out buffer of the last :math:`\tau`
gradients, the oldest passed to the inner transformation. During the first :math:`\tau` steps no
gradient has arrived yet and the update is zero. On a quadratic with curvature :math:`\lambda`,
gradient descent with delay :math:`\tau` is stable if and only if
:math:`\eta\lambda < 2\sin\bigl(\pi/(2(2\tau+1))\bigr)` (the roots of
:math:`z^{\tau+1} - z^\tau + \eta\lambda = 0` inside the unit disc): about :math:`\pi/(2\tau)`
for large :math:`\tau`, so the rate must shrink like :math:`1/\tau` (see e.g. Mitliagkas et al.,
*Asynchrony begets momentum*, 2016). Optax has no such wrapper, hence this one.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .. import _checks


class DelayedState(NamedTuple):
    """The last ``delay`` gradients (leading axis: slot), the step count, the inner state."""

    buffer: Any
    count: jax.Array
    inner_state: Any


def delayed(inner: optax.GradientTransformation, delay: int) -> optax.GradientTransformation:
    """Apply every gradient ``delay`` steps late through ``inner`` (``delay=0`` is ``inner`` itself)."""
    if not isinstance(inner, optax.GradientTransformation):
        raise ValueError(f"inner must be an optax.GradientTransformation, got {type(inner).__name__}")
    delay = _checks.nonnegative_int("delay", delay)
    if delay == 0:
        return inner

    def init(params):
        buffer = jax.tree.map(lambda p: jnp.zeros((delay,) + jnp.shape(p), jnp.result_type(p)), params)
        return DelayedState(buffer, jnp.zeros((), jnp.int32), inner.init(params))

    def update(grads, state, params=None):
        slot = state.count % delay
        oldest = jax.tree.map(lambda b: b[slot], state.buffer)  # the gradient of step count - delay
        buffer = jax.tree.map(lambda b, g: b.at[slot].set(g), state.buffer, grads)
        updates, inner_state = inner.update(oldest, state.inner_state, params)
        arrived = state.count >= delay
        updates = jax.tree.map(lambda u: jnp.where(arrived, u, jnp.zeros_like(u)), updates)
        inner_state = jax.tree.map(lambda new, old: jnp.where(arrived, new, old), inner_state, state.inner_state)
        return updates, DelayedState(buffer, state.count + 1, inner_state)

    return optax.GradientTransformation(init, update)


def stability_limit(delay: int) -> float:
    r"""The largest stable :math:`\eta\lambda` of gradient descent with delay :math:`\tau` on a quadratic: :math:`2\sin(\pi/(2(2\tau+1)))`."""
    delay = _checks.nonnegative_int("delay", delay)
    return 2.0 * math.sin(math.pi / (2 * (2 * delay + 1)))
