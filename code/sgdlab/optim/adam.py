r"""Adam, AdamW, RMSProp and McAllester's simplified Adam, written out for reading.

Optax already ships :func:`optax.adam`, :func:`optax.adamw` and :func:`optax.rmsprop`, and those
are what the book trains with. The three here are written from scratch, in Optax's own style (``init``/``update``
and a ``NamedTuple`` state), so that Chapter 5 can show every line of the algorithm; the tests
match them to Optax to 1e-6 on random gradient streams. :func:`mcallester_adam` has no Optax
counterpart: it replaces Adam's bias correction by McAllester's running average with rate
:math:`1/\min(t, N)`.

Conventions (all four): ``update`` returns the *update* to add to the parameters, already
multiplied by :math:`-\eta`, so ``optax.apply_updates(params, updates)`` takes the step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .. import _checks

__all__ = ["AdamState", "RMSPropState", "McAllesterAdamState", "adam", "adamw", "rmsprop", "mcallester_adam"]


def _rate(name: str, value: Any) -> Any:
    """Check a learning rate given as a Python number; let a JAX array (possibly traced) through."""
    if isinstance(value, jax.Array):
        return value
    return _checks.positive_float(name, value)


def _decay(name: str, value: Any, *, allow_zero: bool = False) -> Any:
    """Check a decay rate in [0, 1) (or (0, 1)) given as a number; let a JAX array through."""
    if isinstance(value, jax.Array):
        return value
    x = _checks.positive_float(name, value, allow_zero=allow_zero)
    if not x < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return x


class AdamState(NamedTuple):
    """Adam's state: the step count :math:`t` and the two running moments :math:`m, v`."""

    count: jax.Array
    mu: Any
    nu: Any


def adam(learning_rate: float | jax.Array, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    r"""Adam (Kingma & Ba, 2015), written out; behaves like ``optax.adam(learning_rate, b1, b2, eps)``.

    With gradient :math:`g_t` at step :math:`t = 1, 2, \dots` and :math:`m_0 = v_0 = 0`:

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1)\,g_t,\qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\,g_t^2,

        \hat m_t = \frac{m_t}{1-\beta_1^t},\qquad \hat v_t = \frac{v_t}{1-\beta_2^t},\qquad
        w_t = w_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},

    all coordinate-wise. The divisions by :math:`1-\beta^t` undo the bias of a running
    average started at zero (:mod:`sgdlab.averaging`). If :math:`g_t = g` is constant then
    :math:`\hat m_t = g` and :math:`\hat v_t = g^2`, so every coordinate moves by
    :math:`\eta\,|g|/(|g|+\epsilon)\approx\eta` at every step, whatever the size of :math:`g`.
    """
    learning_rate = _rate("learning_rate", learning_rate)
    b1 = _decay("b1", b1, allow_zero=True)
    b2 = _decay("b2", b2, allow_zero=True)
    eps = _checks.positive_float("eps", eps, allow_zero=True)

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros)

    def update(grads, state, params=None):
        del params
        t = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)
        c1 = 1 - b1 ** t.astype(jnp.float32)
        c2 = 1 - b2 ** t.astype(jnp.float32)
        updates = jax.tree.map(lambda m, v: -learning_rate * (m / c1) / (jnp.sqrt(v / c2) + eps), mu, nu)
        return updates, AdamState(count=t, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def adamw(
    learning_rate: float | jax.Array, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-4
) -> optax.GradientTransformation:
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with *decoupled* weight decay; behaves like ``optax.adamw``.

    .. math::
        w_t = w_{t-1} - \eta\,\Bigl(\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} + \lambda\, w_{t-1}\Bigr)

    with :math:`\hat m_t, \hat v_t` those of :func:`adam` on the loss gradient alone and
    :math:`\lambda` = ``weight_decay``. Adding :math:`\lambda w` to the gradient instead (an
    :math:`L^2` penalty) would send the decay through Adam's division by :math:`\sqrt{\hat v_t}`;
    here every weight shrinks by the factor :math:`1-\eta\lambda` per step, whatever its gradients.
    """
    base = adam(learning_rate, b1, b2, eps)
    if not isinstance(weight_decay, jax.Array):
        weight_decay = _checks.positive_float("weight_decay", weight_decay, allow_zero=True)

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("adamw needs params in update(grads, state, params) for its weight decay")
        updates, state = base.update(grads, state)
        return jax.tree.map(lambda u, w: u - learning_rate * weight_decay * w, updates, params), state

    return optax.GradientTransformation(base.init, update)


class RMSPropState(NamedTuple):
    """RMSProp's state: the running mean square :math:`v` of the gradient."""

    nu: Any


def rmsprop(
    learning_rate: float | jax.Array, decay: float = 0.9, eps: float = 1e-8, *, eps_in_sqrt: bool = True
) -> optax.GradientTransformation:
    r"""RMSProp (Tieleman & Hinton, 2012), written out; behaves like ``optax.rmsprop(learning_rate, decay, eps)``.

    .. math::
        v_t = \beta\, v_{t-1} + (1-\beta)\, g_t^2,\qquad
        w_t = w_{t-1} - \eta\,\frac{g_t}{\sqrt{v_t + \epsilon}}

    with :math:`v_0 = 0`, :math:`\beta` = ``decay`` and no bias correction. Where :math:`\epsilon` goes differs between
    libraries: Optax (and McAllester's slides) put it *inside* the square root, as above
    (the default here, ``eps_in_sqrt=True``); Keras and PyTorch put it outside,
    :math:`g_t/(\sqrt{v_t}+\epsilon)` (``eps_in_sqrt=False``, Optax's ``eps_in_sqrt=False``).
    With ``eps=1e-8`` the two differ only where :math:`v_t \lesssim 10^{-8}`, i.e. for gradients
    of size :math:`\lesssim 10^{-4}`, where inside-the-root caps the step at :math:`\eta|g|/\sqrt\epsilon`.
    """
    learning_rate = _rate("learning_rate", learning_rate)
    decay = _decay("decay", decay, allow_zero=True)
    eps = _checks.positive_float("eps", eps, allow_zero=True)

    def scale(v):
        return jax.lax.rsqrt(v + eps) if eps_in_sqrt else 1.0 / (jnp.sqrt(v) + eps)

    def init(params):
        return RMSPropState(nu=jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        nu = jax.tree.map(lambda v, g: decay * v + (1 - decay) * g * g, state.nu, grads)
        updates = jax.tree.map(lambda v, g: -learning_rate * g * scale(v), nu, grads)
        return updates, RMSPropState(nu=nu)

    return optax.GradientTransformation(init, update)


class McAllesterAdamState(NamedTuple):
    """State of :func:`mcallester_adam`: step count and the two running averages :math:`\\mu, s`."""

    count: jax.Array
    mu: Any
    s: Any


def mcallester_adam(
    learning_rate: float | jax.Array, n_g: float = 10.0, n_s: float = 1000.0, eps: float = 1e-8
) -> optax.GradientTransformation:
    r"""McAllester's simplified Adam (TTIC 31230 slides, 2018): running averages with rate :math:`1/\min(t, N)`.

    .. math::
        \mu_t = \Bigl(1-\tfrac{1}{\min(t,N_g)}\Bigr)\mu_{t-1} + \tfrac{1}{\min(t,N_g)}\,g_t,

        s_t = \Bigl(1-\tfrac{1}{\min(t,N_s)}\Bigr)s_{t-1} + \tfrac{1}{\min(t,N_s)}\,g_t^2,

        w_t = w_{t-1} - \frac{\eta}{\sqrt{s_t}+\epsilon}\,\mu_t .

    For :math:`t\le N` each average is the exact mean of everything seen so far; after that
    it is an exponential moving average with :math:`\beta = 1-1/N`. This plays the part of
    Adam's division by :math:`1-\beta^t`; Adam's :math:`(\beta_1,\beta_2)=(0.9,0.999)`
    correspond to :math:`(N_g,N_s)=(10,1000)`. No library ships it, hence this code.
    """
    learning_rate = _rate("learning_rate", learning_rate)
    n_g = _checks.positive_float("n_g", n_g)
    n_s = _checks.positive_float("n_s", n_s)
    if n_g < 1:
        raise ValueError(f"n_g must be at least 1, got {n_g!r}")
    if n_s < 1:
        raise ValueError(f"n_s must be at least 1, got {n_s!r}")
    eps = _checks.positive_float("eps", eps, allow_zero=True)

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return McAllesterAdamState(count=jnp.zeros([], jnp.int32), mu=zeros, s=zeros)

    def update(grads, state, params=None):
        del params
        t = (state.count + 1).astype(jnp.float32)
        rg, rs = 1.0 / jnp.minimum(t, n_g), 1.0 / jnp.minimum(t, n_s)
        mu = jax.tree.map(lambda m, g: (1 - rg) * m + rg * g, state.mu, grads)
        s = jax.tree.map(lambda v, g: (1 - rs) * v + rs * g * g, state.s, grads)
        updates = jax.tree.map(lambda m, v: -learning_rate * m / (jnp.sqrt(v) + eps), mu, s)
        return updates, McAllesterAdamState(count=state.count + 1, mu=mu, s=s)

    return optax.GradientTransformation(init, update)
