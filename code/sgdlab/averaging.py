r"""Running averages of a stream and the ways to correct their start-up bias.

Given a stream :math:`x_1, x_2, \dots`, an exponential moving average (EMA) with
:math:`\beta = 1 - 1/N` started at zero,

.. math:: m_0 = 0,\qquad m_t = \beta\,m_{t-1} + (1-\beta)\,x_t
          = (1-\beta)\sum_{s=1}^{t}\beta^{t-s}x_s ,

puts total weight :math:`1-\beta^t` on the data, so for a stream of mean :math:`\mu` it is
biased toward zero: :math:`\mathbb E\,m_t = (1-\beta^t)\mu`. Three corrections:

* ``"adam"`` — divide by :math:`1-\beta^t` (Kingma & Ba, 2015);
* ``"mcallester"`` — use the rate :math:`1/\min(N, t)` instead of :math:`1/N`
  (McAllester, TTIC 31230 slides, 2018): the exact mean while :math:`t\le N`, an EMA after;
* ``"mean"`` — the rate :math:`1/t`: the exact running mean, which stops tracking a drifting stream.

:func:`running_averages` computes all four with one ``jax.lax.scan``; :func:`average_weights`
gives the closed-form weight each estimate puts on each :math:`x_s`, and
:func:`ema_moments` the mean and variance of each estimate for an i.i.d. stream.

Why by hand: ``optax.ema`` averages an optimizer's *updates* (with Adam's correction only), and
Optax has no McAllester correction; here any stream is averaged, all four ways side by side.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

KINDS = ("ema", "adam", "mcallester", "mean")


def _beta(beta: Any) -> float:
    b = _checks.positive_float("beta", beta, allow_zero=True)
    if not b < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta!r}")
    return b


def running_averages(xs: jax.Array, beta: float) -> dict[str, jax.Array]:
    r"""The four running averages of the stream ``xs`` (time along axis 0), each of ``xs``'s shape.

    With :math:`N = 1/(1-\beta)` and :math:`t = 1, 2, \dots`:

    * ``"ema"``: :math:`m_t = \beta m_{t-1} + (1-\beta)x_t`, :math:`m_0 = 0`;
    * ``"adam"``: :math:`m_t/(1-\beta^t)`;
    * ``"mcallester"``: :math:`\mu_t = (1-r_t)\mu_{t-1} + r_t x_t` with :math:`r_t = 1/\min(N,t)`;
    * ``"mean"``: :math:`\bar x_t = (1-1/t)\bar x_{t-1} + x_t/t`.

    Element ``[t-1]`` of each output is the estimate after seeing :math:`x_1..x_t`.
    """
    beta = _beta(beta)
    xs = jnp.asarray(_checks.finite_array("xs", xs), jnp.float32)
    n = 1.0 / (1.0 - beta)

    def step(carry, inputs):
        m, mc, mean = carry
        t, x = inputs
        m = beta * m + (1 - beta) * x
        r = 1.0 / jnp.minimum(n, t)
        mc = (1 - r) * mc + r * x
        mean = (1 - 1 / t) * mean + x / t
        return (m, mc, mean), (m, m / (1 - beta**t), mc, mean)

    zero = jnp.zeros(xs.shape[1:], xs.dtype)
    ts = jnp.arange(1, xs.shape[0] + 1, dtype=jnp.float32)
    _, out = jax.lax.scan(step, (zero, zero, zero), (ts, xs))
    return dict(zip(KINDS, out))


def average_weights(t: int, beta: float, kind: str = "ema") -> np.ndarray:
    r"""Closed-form weights :math:`w_1..w_t` with estimate :math:`= \sum_s w_s x_s` after :math:`t` steps.

    * ``"ema"``: :math:`w_s = (1-\beta)\beta^{t-s}` (they sum to :math:`1-\beta^t`);
    * ``"adam"``: :math:`w_s = (1-\beta)\beta^{t-s}/(1-\beta^t)` (sum 1);
    * ``"mean"``: :math:`w_s = 1/t`;
    * ``"mcallester"``: with :math:`N = 1/(1-\beta)` the recursion is the exact mean while
      :math:`t \le N` and an EMA with rate :math:`1/N` after, so
      :math:`w_s = r_s\prod_{u=s+1}^{t}(1-r_u)`, :math:`r_u = 1/\min(N,u)`.
    """
    t = _checks.positive_int("t", t)
    beta = _beta(beta)
    _checks.one_of("kind", kind, KINDS)
    s = np.arange(1, t + 1, dtype=float)
    if kind == "ema":
        return (1 - beta) * beta ** (t - s)
    if kind == "adam":
        return (1 - beta) * beta ** (t - s) / (1 - beta**t)
    if kind == "mean":
        return np.full(t, 1.0 / t)
    r = 1.0 / np.minimum(1.0 / (1.0 - beta), s)
    keep = np.append(np.cumprod((1 - r)[::-1])[::-1][1:], 1.0)  # prod_{u>s} (1 - r_u)
    return r * keep


def ema_moments(t: int, beta: float, mean: float, std: float, kind: str = "ema") -> tuple[float, float]:
    r"""Mean and variance of an estimate after :math:`t` i.i.d. draws of mean ``mean`` and s.d. ``std``.

    From the weights of :func:`average_weights`: :math:`\mathbb E = \mu\sum_s w_s`,
    :math:`\operatorname{Var} = \sigma^2\sum_s w_s^2`. In closed form, for the plain EMA
    :math:`\mathbb E\,m_t = (1-\beta^t)\mu` and for Adam's correction
    :math:`\operatorname{Var} = \sigma^2\,\frac{(1-\beta)(1+\beta^t)}{(1+\beta)(1-\beta^t)}
    \to \frac{\sigma^2}{2N-1}`: a long EMA is as noisy as the mean of :math:`2N-1` samples.
    """
    _checks.positive_float("std", std, allow_zero=True)
    if not np.isfinite(mean):
        raise ValueError(f"mean must be finite, got {mean!r}")
    w = average_weights(t, beta, kind)
    return float(mean * w.sum()), float(std**2 * (w**2).sum())
