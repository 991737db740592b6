r"""SGD on one-dimensional quadratics: closed forms and a many-chain simulator.

The model of Chapter 2 is :math:`f(x) = \tfrac{\mu}{2}x^2` with a stochastic gradient
:math:`\hat g = \mu x + \sigma\xi`, :math:`\mathbb E\xi = 0`, :math:`\mathbb E\xi^2 = 1`.
SGD :math:`x_{k+1} = x_k - \alpha_k\hat g_k` is then a linear recursion, and its second moment
:math:`v_k = \mathbb E x_k^2` obeys the exact recursion

.. math::  v_{k+1} = (1-\alpha_k\mu)^2 v_k + \alpha_k^2\sigma^2 ,

from which the closed forms below follow:

* constant step :math:`\alpha`: the noise floor
  :math:`\lim_k \mathbb E f(x_k) = \dfrac{\alpha\sigma^2}{2(2-\alpha\mu)}` (for :math:`0<\alpha\mu<2`),
  and the Bottou–Curtis–Nocedal bound :math:`\alpha L M/(2c\mu)` (Bottou et al. 2018, Thm 4.6);
* step :math:`\alpha_t = c/t`: if :math:`2c\mu>1`, :math:`t\,\mathbb E f(x_t)\to\mu c^2\sigma^2/(2(2c\mu-1))`;
  if :math:`2c\mu<1`, :math:`\mathbb E f(x_t)\propto t^{-2c\mu}` (Robbins & Monro 1951 for
  convergence; cf. Bottou et al. 2018, Thm 4.7, whose :math:`O(1/t)` bound asks for the
  stronger :math:`c\mu>1`);
* gradient flow :math:`\dot x = -\mu x`: :math:`f(x(t)) = f(x_0)e^{-2\mu t}`.

:func:`simulate` runs many independent chains at once (``lax.scan`` over steps, ``vmap``
over chains) and returns per-step means with their Monte-Carlo standard errors, so every
closed form can be checked against a simulation. :func:`mean_estimation_sgd` is McAllester's
one-dimensional example with real minibatches drawn from a finite data set.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

__all__ = [
    "ChainStats",
    "noise_floor",
    "bcn_floor",
    "expected_loss",
    "harmonic_steps",
    "harmonic_limit",
    "harmonic_exponent",
    "simulate",
    "mean_estimation_sgd",
    "gradient_flow",
]


class ChainStats(NamedTuple):
    r"""Summary of many independent SGD chains.

    ``mean[k]`` and ``se[k]`` are the average of :math:`f(x_k)` over chains and its standard
    error after ``k`` steps (``k = 0..T``). ``tail_mean`` and ``tail_se`` are the mean over chains
    of the per-chain time average of :math:`t\,f(x_t)` over the steps ``k >= tail_from``
    (with :math:`t = k+1`), a low-variance estimate of the constant in
    :math:`\mathbb E f(x_t)\approx K/t`; NaN when no tail was requested. ``final`` holds the
    chains' final positions.
    """

    mean: np.ndarray
    se: np.ndarray
    tail_mean: float
    tail_se: float
    final: np.ndarray


def _curvature(mu):
    return _checks.positive_float("mu", mu)


def noise_floor(alpha: float, mu: float, sigma: float) -> float:
    r"""Stationary expected loss of constant-step SGD on :math:`f=\tfrac{\mu}{2}x^2`.

    With gradient noise of variance :math:`\sigma^2` the stationary variance of
    :math:`x_{k+1} = (1-\alpha\mu)x_k - \alpha\sigma\xi_k` is
    :math:`\alpha\sigma^2/(\mu(2-\alpha\mu))`, so

    .. math::  \lim_{k\to\infty}\mathbb E f(x_k) = \frac{\alpha\sigma^2}{2(2-\alpha\mu)},
               \qquad 0 < \alpha\mu < 2 .

    For small steps this is :math:`\alpha\sigma^2/4`: linear in the step and, with
    :math:`\sigma^2=\sigma_1^2/B`, inversely proportional to the batch size.
    """
    alpha = _checks.positive_float("alpha", alpha)
    mu = _curvature(mu)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    if not alpha * mu < 2:
        raise ValueError(f"alpha must satisfy alpha*mu < 2 for a stationary state, got alpha={alpha}, mu={mu}")
    return alpha * sigma**2 / (2 * (2 - alpha * mu))


def bcn_floor(alpha: float, L: float, M: float, c: float, mu: float = 1.0) -> float:
    r"""The noise floor of Bottou, Curtis & Nocedal (2018), Theorem 4.6: :math:`\alpha L M/(2c\mu)`.

    The letters are the paper's: :math:`c` the strong-convexity constant, :math:`L` the
    Lipschitz constant of the gradient, :math:`\mu` the constant with
    :math:`\nabla F^\top\mathbb E\hat g\ge\mu\|\nabla F\|^2` (1 for an unbiased gradient) and
    :math:`M` the bound :math:`\operatorname{Var}\hat g\le M + M_V\|\nabla F\|^2`. The theorem
    holds for :math:`0<\alpha\le\mu/(L M_G)` with :math:`M_G = M_V+\mu^2`.
    """
    alpha = _checks.positive_float("alpha", alpha)
    L = _checks.positive_float("L", L)
    M = _checks.positive_float("M", M, allow_zero=True)
    c = _checks.positive_float("c", c)
    mu = _checks.positive_float("mu", mu)
    if c > L:
        raise ValueError(f"c (strong convexity) cannot exceed L (smoothness), got c={c}, L={L}")
    return alpha * L * M / (2 * c * mu)


def _step_array(step_sizes) -> jax.Array:
    arr = _checks.finite_array("step_sizes", step_sizes, ndim=1)
    if np.any(arr < 0):
        raise ValueError("step_sizes must be non-negative")
    return jnp.asarray(arr, dtype=jnp.float32)


def harmonic_steps(c: float, steps: int) -> np.ndarray:
    r"""The Robbins–Monro schedule :math:`\alpha_t = c/t` for :math:`t = 1,\dots,` ``steps``."""
    c = _checks.positive_float("c", c)
    steps = _checks.positive_int("steps", steps)
    return c / np.arange(1, steps + 1, dtype=np.float64)


def expected_loss(mu: float, sigma: float, x0: float, step_sizes) -> np.ndarray:
    r"""Exact :math:`\mathbb E f(x_k)` for ``k = 0..T`` from the second-moment recursion.

    .. math::  v_{k+1} = (1-\alpha_k\mu)^2 v_k + \alpha_k^2\sigma^2,\qquad
               \mathbb E f(x_k) = \tfrac{\mu}{2}v_k,\qquad v_0 = x_0^2 .

    Exact for any noise distribution with mean 0 and variance :math:`\sigma^2`; the recursion
    is one compiled ``lax.scan`` (for stable steps every step contracts, so float32 rounding stays at its
    :math:`10^{-6}` level).
    """
    mu = _curvature(mu)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    x0 = float(_checks.finite_array("x0", x0, ndim=0))
    a = np.asarray(_checks.finite_array("step_sizes", step_sizes, ndim=1), dtype=np.float64)
    if np.any(a < 0):
        raise ValueError("step_sizes must be non-negative")
    return np.asarray(_second_moment(jnp.float32(mu), jnp.float32(sigma), jnp.float32(x0),
                                     jnp.asarray(a, jnp.float32)), np.float64)


@jax.jit
def _second_moment(mu, sigma, x0, alphas):
    def step(v, alpha):
        v = (1 - alpha * mu) ** 2 * v + alpha**2 * sigma**2
        return v, v

    _, v = jax.lax.scan(step, x0**2, alphas)
    return 0.5 * mu * jnp.concatenate([jnp.asarray([x0**2]), v])


def harmonic_limit(mu: float, c: float, sigma: float) -> float:
    r"""Limit of :math:`t\,\mathbb E f(x_t)` for :math:`\alpha_t = c/t` when :math:`2c\mu>1`.

    Putting :math:`v_t\approx K/t` into the second-moment recursion and matching the
    :math:`1/t^2` terms gives :math:`K = c^2\sigma^2/(2c\mu-1)`, so

    .. math::  t\,\mathbb E f(x_t) \to \frac{\mu c^2\sigma^2}{2(2c\mu-1)} .
    """
    mu = _curvature(mu)
    c = _checks.positive_float("c", c)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    if not 2 * c * mu > 1:
        raise ValueError(f"c must satisfy 2*c*mu > 1 for the 1/t rate, got 2*c*mu = {2 * c * mu}")
    return mu * c**2 * sigma**2 / (2 * (2 * c * mu - 1))


def harmonic_exponent(mu: float, c: float) -> float:
    r"""Exponent :math:`p` in :math:`\mathbb E f(x_t)\propto t^{-p}` for :math:`\alpha_t=c/t`: :math:`p=\min(2c\mu, 1)`.

    When :math:`2c\mu<1` the deterministic part decays like
    :math:`\prod_{s<t}(1-c\mu/s)^2\approx t^{-2c\mu}`, slower than the :math:`1/t` of the noise.
    (At :math:`2c\mu=1` there is an extra :math:`\log t`.)
    """
    mu = _curvature(mu)
    c = _checks.positive_float("c", c)
    return min(2 * c * mu, 1.0)


@functools.partial(jax.jit, static_argnames=("n_chains", "tail_from"))
def _simulate(key, mu, sigma, x0, alphas, n_chains, tail_from):
    def one_chain_step(x, alpha, xi):
        return x - alpha * (mu * x + sigma * xi)

    step_all = jax.vmap(one_chain_step, in_axes=(0, None, 0))

    def step(carry, inp):
        x, acc = carry
        k, alpha = inp
        xi = jax.random.normal(jax.random.fold_in(key, k), (n_chains,))
        x = step_all(x, alpha, xi)
        f = 0.5 * mu * x**2
        acc = acc + jnp.where(k + 1 >= tail_from, (k + 2.0) * f, 0.0)
        return (x, acc), (f.mean(), f.var())

    x = jnp.full((n_chains,), x0, jnp.float32)
    f0 = 0.5 * mu * x0**2
    (x, acc), (means, variances) = jax.lax.scan(step, (x, jnp.zeros(n_chains)), (jnp.arange(alphas.shape[0]), alphas))
    means = jnp.concatenate([jnp.asarray([f0], jnp.float32), means])
    variances = jnp.concatenate([jnp.zeros(1), variances])
    return means, variances, acc, x


def simulate(
    key: jax.Array,
    mu: float,
    sigma: float,
    x0: float,
    step_sizes,
    n_chains: int,
    *,
    tail_from: int | None = None,
) -> ChainStats:
    r"""Run ``n_chains`` independent SGD chains on :math:`f=\tfrac\mu2 x^2` with Gaussian gradient noise.

    Each step is :math:`x_{k+1} = x_k - \alpha_k(\mu x_k + \sigma\xi_k)`, :math:`\xi_k\sim N(0,1)`,
    for all chains at once: one ``lax.scan`` over the steps of a ``vmap`` over chains, compiled
    once. Only the per-step mean and variance of :math:`f` over chains leave the device, so
    :math:`10^4` chains times :math:`10^4` steps need no more memory than one state.

    With ``tail_from`` the per-chain average of :math:`t f(x_t)`, :math:`t=k+1`, over steps
    ``k >= tail_from`` is also returned (``tail_mean``, ``tail_se``).
    """
    mu = _curvature(mu)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    x0 = float(_checks.finite_array("x0", x0, ndim=0))
    alphas = _step_array(step_sizes)
    n_chains = _checks.positive_int("n_chains", n_chains)
    T = int(alphas.shape[0])
    if tail_from is None:
        tail = T + 1
    else:
        tail = _checks.nonnegative_int("tail_from", tail_from)
        if tail > T:
            raise ValueError(f"tail_from={tail} is beyond the last step ({T})")
    means, variances, acc, x = _simulate(key, jnp.float32(mu), jnp.float32(sigma), jnp.float32(x0), alphas,
                                         n_chains, tail)
    means, variances = np.asarray(means, np.float64), np.asarray(variances, np.float64)
    se = np.sqrt(variances / max(n_chains - 1, 1))
    if tail <= T:
        per_chain = np.asarray(acc, np.float64) / (T + 1 - tail)
        tail_mean, tail_se = float(per_chain.mean()), float(per_chain.std(ddof=1) / np.sqrt(n_chains))
    else:
        tail_mean = tail_se = float("nan")
    return ChainStats(means, se, tail_mean, tail_se, np.asarray(x))


@functools.partial(jax.jit, static_argnames=("batch_size", "n_chains"))
def _mean_estimation(key, y, beta0, alphas, clip, batch_size, n_chains):
    n = y.shape[0]
    ybar = y.mean()

    def one_chain(beta, k_chain, alpha):
        idx = jax.random.randint(k_chain, (batch_size,), 0, n)
        g_hat = jnp.clip(beta - y[idx], -clip, clip).mean()   # clip = inf: the plain minibatch gradient
        return beta - alpha * g_hat

    def step(beta, inp):
        k, alpha = inp
        keys = jax.random.split(jax.random.fold_in(key, k), n_chains)
        beta = jax.vmap(one_chain, in_axes=(0, 0, None))(beta, keys, alpha)
        excess = 0.5 * (beta - ybar) ** 2
        return beta, (excess.mean(), excess.var())

    beta = jnp.full((n_chains,), beta0, jnp.float32)
    beta, (means, variances) = jax.lax.scan(step, beta, (jnp.arange(alphas.shape[0]), alphas))
    e0 = 0.5 * (beta0 - ybar) ** 2
    return jnp.concatenate([jnp.asarray([e0]), means]), jnp.concatenate([jnp.zeros(1), variances]), beta


def mean_estimation_sgd(
    key: jax.Array, y, step_sizes, batch_size: int, n_chains: int, *, beta0: float = 0.0,
    clip: float | None = None,
) -> ChainStats:
    r"""McAllester's one-dimensional example, run with real minibatches.

    The loss is :math:`\ell(\beta, y) = \tfrac12(\beta-y)^2`, so the full gradient is
    :math:`\beta-\bar y` and the minibatch gradient :math:`\hat g = \beta - \bar y_B`: even at the
    optimum :math:`\beta^\star=\bar y` it is not zero (McAllester 2018). Every chain draws its own
    minibatch of ``batch_size`` examples (with replacement) from ``y`` at every step. Returned
    statistics are those of the excess loss :math:`\tfrac12(\beta_k-\bar y)^2`; the gradient noise
    has variance :math:`\sigma_y^2/B` (population variance of ``y``), so
    :func:`noise_floor` with :math:`\mu=1`, :math:`\sigma^2=\sigma_y^2/B` predicts its floor.

    With ``clip`` each per-example gradient :math:`\beta-y_i` is clipped to :math:`[-\tau,\tau]`
    before averaging: a *biased* estimate of :math:`\beta-\bar y` (Chapter 3).
    """
    y = jnp.asarray(_checks.finite_array("y", y, ndim=1), jnp.float32)
    batch_size = _checks.batch_size("batch_size", batch_size, int(y.shape[0]))
    n_chains = _checks.positive_int("n_chains", n_chains)
    alphas = _step_array(step_sizes)
    beta0 = float(_checks.finite_array("beta0", beta0, ndim=0))
    clip = float("inf") if clip is None else _checks.positive_float("clip", clip)
    means, variances, beta = _mean_estimation(key, y, jnp.float32(beta0), alphas, jnp.float32(clip), batch_size,
                                              n_chains)
    se = np.sqrt(np.asarray(variances, np.float64) / max(n_chains - 1, 1))
    return ChainStats(np.asarray(means, np.float64), se, float("nan"), float("nan"), np.asarray(beta))


def gradient_flow(mu: float, x0: float, t) -> np.ndarray:
    r"""Loss along the gradient flow :math:`\dot x = -\mu x` of :math:`f=\tfrac\mu2x^2`.

    :math:`x(t) = x_0e^{-\mu t}`, so :math:`f(x(t)) = \tfrac\mu2x_0^2e^{-2\mu t}` and indeed
    :math:`\tfrac{d}{dt}f = -\mu^2x(t)^2 = -|f'(x(t))|^2` (McAllester 2018).
    """
    mu = _curvature(mu)
    x0 = float(_checks.finite_array("x0", x0, ndim=0))
    t = np.asarray(_checks.finite_array("t", t), dtype=np.float64)
    if np.any(t < 0):
        raise ValueError("t must be non-negative")
    return 0.5 * mu * x0**2 * np.exp(-2 * mu * t)
