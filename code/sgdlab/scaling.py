r"""How hyper-parameters scale with the batch size, and McAllester's one-dimensional optimum.

Linear scaling (Goyal et al. 2017; McAllester 2018): two SGD steps at batch size 1 and rate
:math:`\eta_1` are, to first order in :math:`\eta_1`, one step at batch size 2 and rate
:math:`2\eta_1`, hence

.. math:: \eta_B = B\,\eta_1, \qquad N_B = N_1/B, \qquad N_s \text{ constant},

where :math:`N` is the horizon (in steps) of a momentum average and :math:`N_s` that
of a second-moment average counted in examples.

McAllester's single-step guarantee in one dimension, for a loss with curvature at most
:math:`\Lambda`, a minibatch gradient :math:`\hat g` and per-example standard deviation :math:`\hat\sigma`
(taking :math:`g \ge \hat g - 2\hat\sigma/\sqrt B` for :math:`\hat g > 0`), is

.. math:: L(w) - L(w - \eta\hat g)
          \;\ge\; \eta\hat g\Big(\hat g - \frac{2\hat\sigma}{\sqrt B}\Big) - \frac\Lambda2\eta^2\hat g^2 .

Maximising the guaranteed decrease per example (divided by :math:`B`) over :math:`B \ge 4\hat\sigma^2/\hat g^2` gives
:math:`B^\star = 16\hat\sigma^2/\hat g^2` and :math:`\eta^\star = 1/(2\Lambda)`; linear scaling
then gives :math:`\eta_B = (B/B^\star)\eta^\star = B\hat g^2/(32\hat\sigma^2 \Lambda)`.
Source: D. McAllester, *TTIC 31230 Fundamentals of Deep Learning*, SGD slides (2018).

These are closed forms of a few lines; no library has them, so they are written here, each
checked against simulation in ``tests/test_scaling.py`` and in Chapter 6.
"""

from __future__ import annotations

import math

from . import _checks


def _finite(name: str, value: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return x


def _nonzero(name: str, value: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x == 0:
        raise ValueError(f"{name} must be a finite non-zero number, got {value!r}")
    return x


def linear_scaled_rate(eta_1: float, batch_size: int) -> float:
    r"""Linear scaling rule :math:`\eta_B = B\eta_1` (Goyal et al. 2017)."""
    eta_1 = _checks.positive_float("eta_1", eta_1)
    batch_size = _checks.positive_int("batch_size", batch_size)
    return batch_size * eta_1


def momentum_horizon(n_mu_1: float, batch_size: int) -> float:
    r"""Momentum horizon for batch size ``B``: :math:`N_B = N_1/B` steps (``n_mu_1`` is :math:`N_1`).

    An exponential moving average with horizon :math:`N` steps averages about :math:`NB`
    gradients of single examples; keeping that number fixed gives the rule (McAllester 2018).
    Raises ``ValueError`` when the result is below one step (the batch alone already holds
    more examples than the average should).
    """
    n_mu_1 = _checks.positive_float("n_mu_1", n_mu_1)
    batch_size = _checks.positive_int("batch_size", batch_size)
    n = n_mu_1 / batch_size
    if n < 1:
        raise ValueError(f"batch_size={batch_size} exceeds n_mu_1={n_mu_1}: the time constant would be below one step")
    return n


def optax_momentum(eta_prime_1: float, n_mu_1: float, batch_size: int) -> tuple[float, float]:
    r"""``(learning_rate, momentum)`` for ``optax.sgd`` at batch size ``B`` under both scaling rules.

    McAllester writes momentum as an average :math:`m_t = (1-\tfrac1N)m_{t-1} + \tfrac1N\hat g_t`
    and a step :math:`w \leftarrow w - \eta' m_t`. Optax's heavy ball
    :math:`v_t = \beta v_{t-1} + \hat g_t`, :math:`w \leftarrow w - \eta v_t` is the same
    update with :math:`\beta = 1 - 1/N` and :math:`\eta = \eta'/N`. Scaling
    :math:`\eta'_B = B\eta'_1` and :math:`N_B = N_1/B` gives

    .. math:: \beta_B = 1 - B/N_1, \qquad \eta_B = B^2\,\eta'_1/N_1 = B^2\eta_1 .
    """
    eta_prime_1 = _checks.positive_float("eta_prime_1", eta_prime_1)
    n_b = momentum_horizon(n_mu_1, batch_size)
    return batch_size * eta_prime_1 / n_b, 1.0 - 1.0 / n_b


def ema_stationary_variance(variance: float, n: float) -> float:
    r"""Variance of the running average :math:`m_t = (1-\tfrac1N)m_{t-1} + \tfrac1N x_t` of i.i.d. inputs, as :math:`t\to\infty`.

    With :math:`\operatorname{Var}x_t = v`: :math:`\sum_k N^{-2}(1-\tfrac1N)^{2k}\,v = v/(2N-1)`.
    For minibatch means of :math:`B` examples, :math:`v = \sigma^2/B`, so the average behaves like
    a mean of :math:`(2N-1)B` examples: fixing :math:`NB` fixes the noise.
    """
    variance = _checks.positive_float("variance", variance, allow_zero=True)
    n = _checks.positive_float("n", n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n!r}")
    return variance / (2 * n - 1)


def guaranteed_decrease(eta: float, batch_size: float, g: float, sigma: float, curvature: float) -> float:
    r"""McAllester's lower bound on the decrease of a 1-D loss after one step :math:`w \leftarrow w-\eta\hat g`.

    .. math:: \eta|\hat g|\Big(|\hat g| - \frac{2\hat\sigma}{\sqrt B}\Big) - \frac\Lambda2 \eta^2\hat g^2 ,

    valid when :math:`|g| \ge |\hat g| - 2\hat\sigma/\sqrt B` (a two-standard-error bound) and the
    loss has second derivative at most :math:`\Lambda` = ``curvature``. ``batch_size`` may be real.
    """
    eta = _checks.positive_float("eta", eta, allow_zero=True)
    batch_size = _checks.positive_float("batch_size", batch_size)
    g = abs(_nonzero("g", g))
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    curvature = _checks.positive_float("curvature", curvature)
    return eta * g * (g - 2 * sigma / math.sqrt(batch_size)) - 0.5 * curvature * eta**2 * g**2


def bound_optimal_rate(batch_size: float, g: float, sigma: float, curvature: float) -> float:
    r"""The rate maximising :func:`guaranteed_decrease` at a fixed batch size:
    :math:`\eta^\star(B) = \frac1\Lambda\big(1 - \frac{2\hat\sigma}{|\hat g|\sqrt B}\big)`, or 0 when that is negative."""
    batch_size = _checks.positive_float("batch_size", batch_size)
    g = abs(_nonzero("g", g))
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    curvature = _checks.positive_float("curvature", curvature)
    return max(0.0, (1 - 2 * sigma / (g * math.sqrt(batch_size))) / curvature)


def mcallester_batch_size(g: float, sigma: float) -> float:
    r"""McAllester's batch size :math:`B^\star = 16\hat\sigma^2/\hat g^2`, maximising the guaranteed decrease per example."""
    g = _nonzero("g", g)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    return 16 * sigma**2 / g**2


def mcallester_rate(batch_size: float, g: float, sigma: float, curvature: float) -> float:
    r"""McAllester's rate for batch size ``B``: :math:`\eta_B = \frac{B}{B^\star}\eta^\star = \frac{B\hat g^2}{32\hat\sigma^2 \Lambda}`.

    At :math:`B = B^\star` it is :math:`\eta^\star = 1/(2\Lambda)`; it is meant for :math:`B \le B^\star`.
    """
    batch_size = _checks.positive_float("batch_size", batch_size)
    g = _nonzero("g", g)
    sigma = _checks.positive_float("sigma", sigma)
    curvature = _checks.positive_float("curvature", curvature)
    return batch_size * g**2 / (32 * sigma**2 * curvature)


def expected_decrease_quadratic(eta: float, batch_size: float, g: float, sigma: float, curvature: float) -> float:
    r"""Exact expected decrease of the quadratic :math:`\tfrac\Lambda2(w-w^\star)^2` after one SGD step.

    With :math:`\hat g = g + \xi`, :math:`\mathbb E\xi = 0`, :math:`\mathbb E\xi^2 = \sigma^2/B`:
    :math:`\mathbb E[\Delta] = \eta g^2 - \tfrac\Lambda2\eta^2\big(g^2 + \sigma^2/B\big)`.
    """
    eta = _checks.positive_float("eta", eta, allow_zero=True)
    batch_size = _checks.positive_float("batch_size", batch_size)
    g = _nonzero("g", g)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    curvature = _checks.positive_float("curvature", curvature)
    return eta * g**2 - 0.5 * curvature * eta**2 * (g**2 + sigma**2 / batch_size)


def second_moment_of_mean(g: float, sigma: float, batch_size: float) -> float:
    r""":math:`\mathbb E\,\hat g_B^2 = g^2 + \sigma^2/B` for the mean of ``B`` i.i.d. per-example gradients.

    This is why an average of squared *minibatch* gradients (RMSProp's :math:`s`) depends on the
    batch size, and why McAllester counts its time constant :math:`N_s` in examples.
    """
    g = _finite("g", g)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    batch_size = _checks.positive_float("batch_size", batch_size)
    return g**2 + sigma**2 / batch_size


def quadratic_sgd_error(e0: float, eta: float, batch_size: float, sigma: float, curvature: float, steps: int) -> float:
    r"""Exact :math:`\mathbb E e_k^2` after ``steps`` SGD steps on :math:`\tfrac\Lambda2 e^2` with per-example gradient noise :math:`\sigma^2`.

    The error obeys :math:`e_{t+1} = a\,e_t - \eta\xi_t` with :math:`a = 1 - \Lambda\eta` (:math:`\Lambda` = ``curvature``) and
    :math:`\operatorname{Var}\xi_t = \sigma^2/B`, so

    .. math:: \mathbb E e_k^2 = a^{2k}e_0^2 + \frac{\eta^2\sigma^2}{B}\,\frac{1-a^{2k}}{1-a^2}
              \quad (a^2 \ne 1;\ \text{the sum is } k\,\eta^2\sigma^2/B \text{ when } a^2 = 1).
    """
    e0 = _finite("e0", e0)
    eta = _checks.positive_float("eta", eta, allow_zero=True)
    batch_size = _checks.positive_float("batch_size", batch_size)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    curvature = _checks.positive_float("curvature", curvature)
    steps = _checks.nonnegative_int("steps", steps)
    a2 = (1 - curvature * eta) ** 2
    noise = eta**2 * sigma**2 / batch_size
    geometric = steps if a2 == 1 else (1 - a2**steps) / (1 - a2)
    return a2**steps * e0**2 + noise * geometric
