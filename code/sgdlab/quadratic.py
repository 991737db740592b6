r"""SGD on one-dimensional quadratics: closed forms, the bounds of Bottou et al., a many-chain simulator.

The model of Chapter 2 is :math:`L(w) = \tfrac{\mu}{2}w^2` with a stochastic gradient
:math:`\hat g = \mu w + \sigma\xi`, :math:`\mathbb E\xi = 0`, :math:`\mathbb E\xi^2 = 1`.
SGD :math:`w_{k+1} = w_k - \eta_k\hat g_k` is then a linear recursion, and its second moment
:math:`v_k = \mathbb E w_k^2` obeys the exact recursion

.. math::  v_{k+1} = (1-\eta_k\mu)^2 v_k + \eta_k^2\sigma^2 ,

from which the closed forms below follow:

* constant step :math:`\eta`: the noise floor
  :math:`\lim_k \mathbb E L(w_k) = \dfrac{\eta\sigma^2}{2(2-\eta\mu)}` (for :math:`0<\eta\mu<2`);
* step :math:`\eta_t = c/t`: if :math:`2c\mu>1`, :math:`t\,\mathbb E L(w_t)\to\mu c^2\sigma^2/(2(2c\mu-1))`;
  if :math:`2c\mu<1`, :math:`\mathbb E L(w_t)\propto t^{-2c\mu}`;
* the Polyak–Ruppert average :math:`\bar w_k = \frac1k\sum_{j=1}^k w_j`: its exact second moment
  (:func:`averaged_expected_loss`) and :math:`k\,\mathbb E L(\bar w_k)\to\sigma^2/(2\mu)`
  (Polyak & Juditsky 1992) for steps that decay more slowly than :math:`1/k`;
* gradient flow :math:`\dot w = -\mu w`: :math:`L(w(t)) = L(w_0)e^{-2\mu t}`.

The bounds of Bottou, Curtis & Nocedal (2018), Section 4, are written in the book's letters (the
paper's in brackets): :math:`L` [:math:`F`] is :math:`\mu` [:math:`c`]-strongly convex where
needed, its gradient is :math:`\Lambda` [:math:`L`]-Lipschitz, the step is :math:`\eta`
[:math:`\alpha`], and the stochastic gradient satisfies, given :math:`w_k`,

.. math::  \nabla L(w_k)^\top\mathbb E\hat g_k \ge \gamma\|\nabla L(w_k)\|^2,\qquad
           \|\mathbb E\hat g_k\| \le \gamma_G\|\nabla L(w_k)\|,

           \operatorname{Var}\hat g_k \le M + M_V\|\nabla L(w_k)\|^2,

with :math:`\gamma_G\ge\gamma>0` [:math:`\mu_G\ge\mu`] and :math:`M_G = M_V+\gamma_G^2`. An unbiased
gradient has :math:`\gamma=\gamma_G=1`. :func:`bcn_max_step` is the largest allowed step
:math:`\gamma/(\Lambda M_G)`; :func:`bcn_floor` the floor :math:`\eta\Lambda M/(2\mu\gamma)` of Thm 4.6
(constant step); :func:`bcn_diminishing_bound` the :math:`\nu/(k_0+k)` of Thm 4.7; and
:func:`bcn_nonconvex_bound` the bound of Thm 4.8 on the average of :math:`\mathbb E\|\nabla L(w_k)\|^2`,
which with :math:`\eta\propto1/\sqrt K` is :math:`O(1/\sqrt K)`.

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
    "bcn_max_step",
    "bcn_floor",
    "bcn_diminishing_bound",
    "bcn_nonconvex_bound",
    "expected_loss",
    "averaged_expected_loss",
    "harmonic_steps",
    "harmonic_limit",
    "harmonic_exponent",
    "simulate",
    "mean_estimation_sgd",
    "gradient_flow",
]


class ChainStats(NamedTuple):
    r"""Summary of many independent SGD chains.

    ``mean[k]`` and ``se[k]`` are the average of the loss :math:`L(w_k)` over chains and its standard
    error after ``k`` steps (``k = 0..T``). ``tail_mean`` and ``tail_se`` are the mean over chains
    of the per-chain time average of :math:`t\,L(w_t)` over the steps ``k >= tail_from``
    (with :math:`t = k+1`), a low-variance estimate of the constant in
    :math:`\mathbb E L(w_t)\approx K/t`; NaN when no tail was requested. ``final`` holds the
    chains' final positions.
    """

    mean: np.ndarray
    se: np.ndarray
    tail_mean: float
    tail_se: float
    final: np.ndarray


def _curvature(mu):
    return _checks.positive_float("mu", mu)


def noise_floor(eta: float, mu: float, sigma: float) -> float:
    r"""Stationary expected loss of constant-step SGD on :math:`L=\tfrac{\mu}{2}w^2`.

    With gradient noise of variance :math:`\sigma^2` the stationary variance of
    :math:`w_{k+1} = (1-\eta\mu)w_k - \eta\sigma\xi_k` is
    :math:`\eta\sigma^2/(\mu(2-\eta\mu))`, so

    .. math::  \lim_{k\to\infty}\mathbb E L(w_k) = \frac{\eta\sigma^2}{2(2-\eta\mu)},
               \qquad 0 < \eta\mu < 2 .

    For small steps this is :math:`\eta\sigma^2/4`: linear in the step and, with
    :math:`\sigma^2=\sigma_1^2/B`, inversely proportional to the batch size.
    """
    eta = _checks.positive_float("eta", eta)
    mu = _curvature(mu)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    if not eta * mu < 2:
        raise ValueError(f"eta must satisfy eta*mu < 2 for a stationary state, got eta={eta}, mu={mu}")
    return eta * sigma**2 / (2 * (2 - eta * mu))


def bcn_max_step(smoothness: float, *, gamma: float = 1.0, gamma_g: float | None = None, M_V: float = 0.0) -> float:
    r"""The largest step of Bottou, Curtis & Nocedal's Theorems 4.6 and 4.8: :math:`\gamma/(\Lambda M_G)`.

    :math:`M_G = M_V + \gamma_G^2` with :math:`\gamma_G\ge\gamma` (default :math:`\gamma_G=\gamma`, as for
    an unbiased gradient); ``smoothness`` is :math:`\Lambda` (the paper's :math:`L`). See the module docstring.
    """
    smoothness = _checks.positive_float("smoothness", smoothness)
    gamma = _checks.positive_float("gamma", gamma)
    gamma_g = gamma if gamma_g is None else _checks.positive_float("gamma_g", gamma_g)
    if gamma_g < gamma:
        raise ValueError(f"gamma_g must be at least gamma, got gamma_g={gamma_g}, gamma={gamma}")
    M_V = _checks.positive_float("M_V", M_V, allow_zero=True)
    return gamma / (smoothness * (M_V + gamma_g**2))


def bcn_floor(eta: float, smoothness: float, M: float, mu: float, gamma: float = 1.0) -> float:
    r"""The noise floor of Bottou, Curtis & Nocedal (2018), Theorem 4.6: :math:`\eta\Lambda M/(2\mu\gamma)`.

    For a :math:`\mu`-strongly convex loss with a :math:`\Lambda`-Lipschitz gradient (``smoothness``)
    and a fixed step :math:`0<\eta\le\gamma/(\Lambda M_G)` (:func:`bcn_max_step`),

    .. math::  \mathbb E[L(w_k)-L^\star] \le \frac{\eta\Lambda M}{2\mu\gamma}
               + (1-\eta\mu\gamma)^{k-1}\Big(L(w_1)-L^\star-\frac{\eta\Lambda M}{2\mu\gamma}\Big).

    The letters are explained in the module docstring (the paper writes :math:`c` for
    :math:`\mu`, :math:`L` for :math:`\Lambda`, :math:`\mu` for :math:`\gamma`).
    """
    eta = _checks.positive_float("eta", eta)
    smoothness = _checks.positive_float("smoothness", smoothness)
    M = _checks.positive_float("M", M, allow_zero=True)
    mu = _checks.positive_float("mu", mu)
    gamma = _checks.positive_float("gamma", gamma)
    if mu > smoothness:
        raise ValueError(f"mu (strong convexity) cannot exceed the smoothness constant, got mu={mu}, "
                         f"smoothness={smoothness}")
    return eta * smoothness * M / (2 * mu * gamma)


def bcn_diminishing_bound(k, s: float, k0: float, smoothness: float, M: float, mu: float, gap1: float,
                          gamma: float = 1.0) -> np.ndarray:
    r"""Bottou, Curtis & Nocedal (2018), Theorem 4.7: :math:`\mathbb E[L(w_k)-L^\star]\le\nu/(k_0+k)`.

    For the steps :math:`\eta_k = s/(k_0+k)`, :math:`k = 1, 2, \dots`, with :math:`s>1/(\mu\gamma)`,
    :math:`k_0>0` and :math:`\eta_1\le\gamma/(\Lambda M_G)`, on a :math:`\mu`-strongly convex loss,

    .. math::  \nu = \max\Big\{\frac{s^2\Lambda M}{2(s\mu\gamma-1)},\ (k_0+1)\big(L(w_1)-L^\star\big)\Big\},

    where ``gap1`` is :math:`L(w_1)-L^\star` at the starting point :math:`w_1`. (The paper writes
    :math:`\beta, \gamma` for :math:`s, k_0`.) Returns the bound at the iterates ``k`` (``k >= 1``).
    """
    s = _checks.positive_float("s", s)
    k0 = _checks.positive_float("k0", k0)
    smoothness = _checks.positive_float("smoothness", smoothness)
    M = _checks.positive_float("M", M, allow_zero=True)
    mu = _checks.positive_float("mu", mu)
    gap1 = _checks.positive_float("gap1", gap1, allow_zero=True)
    gamma = _checks.positive_float("gamma", gamma)
    if not s * mu * gamma > 1:
        raise ValueError(f"s must satisfy s*mu*gamma > 1, got s*mu*gamma = {s * mu * gamma}")
    k = np.asarray(_checks.finite_array("k", k), dtype=np.float64)
    if np.any(k < 1):
        raise ValueError("k must be at least 1 (w_1 is the starting point)")
    nu = max(s**2 * smoothness * M / (2 * (s * mu * gamma - 1)), (k0 + 1) * gap1)
    return nu / (k0 + k)


def bcn_nonconvex_bound(K: int, eta: float, smoothness: float, M: float, gap1: float, gamma: float = 1.0) -> float:
    r"""Bottou, Curtis & Nocedal (2018), Theorem 4.8: the average of :math:`\mathbb E\|\nabla L(w_k)\|^2` over ``K`` iterates.

    For a loss bounded below by :math:`L_{\inf}` with a :math:`\Lambda`-Lipschitz gradient and a fixed
    step :math:`0<\eta\le\gamma/(\Lambda M_G)`,

    .. math::  \min_{1\le k\le K}\mathbb E\|\nabla L(w_k)\|^2 \le
               \frac1K\sum_{k=1}^K\mathbb E\|\nabla L(w_k)\|^2
               \le \frac{\eta\Lambda M}{\gamma} + \frac{2(L(w_1)-L_{\inf})}{K\gamma\eta},

    ``gap1`` being :math:`L(w_1)-L_{\inf}`. The step :math:`\eta = a/\sqrt K` makes both terms
    :math:`O(1/\sqrt K)`; so do the diminishing steps of the paper's Theorem 4.10.
    """
    K = _checks.positive_int("K", K)
    eta = _checks.positive_float("eta", eta)
    smoothness = _checks.positive_float("smoothness", smoothness)
    M = _checks.positive_float("M", M, allow_zero=True)
    gap1 = _checks.positive_float("gap1", gap1, allow_zero=True)
    gamma = _checks.positive_float("gamma", gamma)
    return eta * smoothness * M / gamma + 2 * gap1 / (K * gamma * eta)


def _step_array(step_sizes) -> jax.Array:
    arr = _checks.finite_array("step_sizes", step_sizes, ndim=1)
    if np.any(arr < 0):
        raise ValueError("step_sizes must be non-negative")
    return jnp.asarray(arr, dtype=jnp.float32)


def harmonic_steps(c: float, steps: int) -> np.ndarray:
    r"""The Robbins–Monro schedule :math:`\eta_t = c/t` for :math:`t = 1,\dots,` ``steps``."""
    c = _checks.positive_float("c", c)
    steps = _checks.positive_int("steps", steps)
    return c / np.arange(1, steps + 1, dtype=np.float64)


def expected_loss(mu: float, sigma: float, x0: float, step_sizes) -> np.ndarray:
    r"""Exact :math:`\mathbb E L(w_k)` for ``k = 0..T`` from the second-moment recursion.

    .. math::  v_{k+1} = (1-\eta_k\mu)^2 v_k + \eta_k^2\sigma^2,\qquad
               \mathbb E L(w_k) = \tfrac{\mu}{2}v_k,\qquad v_0 = w_0^2 ,

    with ``x0`` the starting point :math:`w_0`.

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


def averaged_expected_loss(mu: float, sigma: float, x0: float, step_sizes) -> np.ndarray:
    r"""Exact :math:`\mathbb E L(\bar w_k)` for the Polyak–Ruppert average :math:`\bar w_k = \frac1k\sum_{j=1}^k w_j`.

    With :math:`S_k = \sum_{j\le k} w_j` and :math:`a_k = 1-\eta_k\mu`, the second moments
    :math:`P = \mathbb E w_k^2`, :math:`Q = \mathbb E w_kS_k`, :math:`R = \mathbb E S_k^2` obey

    .. math::  P' = a_k^2P + \eta_k^2\sigma^2,\qquad Q' = a_kQ + P',\qquad R' = R + 2a_kQ + P',

    from :math:`(P, Q, R) = (w_0^2, 0, 0)`, and :math:`\mathbb E L(\bar w_k) = \tfrac\mu2R_k/k^2`
    (entry 0 is :math:`L(w_0)`). For steps that decay more slowly than :math:`1/k`,
    :math:`k\,\mathbb E L(\bar w_k)\to\sigma^2/(2\mu)`, the variance of the best unbiased
    estimate (Polyak & Juditsky 1992; Ruppert 1988): averaging attains the best constant of
    :math:`c/t` without knowing :math:`\mu`.
    """
    mu = _curvature(mu)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    x0 = float(_checks.finite_array("x0", x0, ndim=0))
    a = _step_array(step_sizes)
    return np.asarray(_averaged_moment(jnp.float32(mu), jnp.float32(sigma), jnp.float32(x0), a), np.float64)


@jax.jit
def _averaged_moment(mu, sigma, x0, etas):
    def step(carry, inp):
        p, q, r = carry
        k, eta = inp
        a = 1 - eta * mu
        p_new = a**2 * p + eta**2 * sigma**2
        q_new = a * q + p_new
        r_new = r + 2 * a * q + p_new
        return (p_new, q_new, r_new), 0.5 * mu * r_new / (k + 1.0) ** 2

    zero = jnp.zeros((), jnp.float32)
    _, out = jax.lax.scan(step, (x0**2, zero, zero), (jnp.arange(etas.shape[0]), etas))
    return jnp.concatenate([jnp.asarray([0.5 * mu * x0**2]), out])


def harmonic_limit(mu: float, c: float, sigma: float) -> float:
    r"""Limit of :math:`t\,\mathbb E L(w_t)` for :math:`\eta_t = c/t` when :math:`2c\mu>1`.

    Putting :math:`v_t\approx K/t` into the second-moment recursion and matching the
    :math:`1/t^2` terms gives :math:`K = c^2\sigma^2/(2c\mu-1)`, so

    .. math::  t\,\mathbb E L(w_t) \to \frac{\mu c^2\sigma^2}{2(2c\mu-1)} .
    """
    mu = _curvature(mu)
    c = _checks.positive_float("c", c)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    if not 2 * c * mu > 1:
        raise ValueError(f"c must satisfy 2*c*mu > 1 for the 1/t rate, got 2*c*mu = {2 * c * mu}")
    return mu * c**2 * sigma**2 / (2 * (2 * c * mu - 1))


def harmonic_exponent(mu: float, c: float) -> float:
    r"""Exponent :math:`p` in :math:`\mathbb E L(w_t)\propto t^{-p}` for :math:`\eta_t=c/t`: :math:`p=\min(2c\mu, 1)`.

    When :math:`2c\mu<1` the deterministic part decays like
    :math:`\prod_{s<t}(1-c\mu/s)^2\approx t^{-2c\mu}`, slower than the :math:`1/t` of the noise.
    (At :math:`2c\mu=1` there is an extra :math:`\log t`.)
    """
    mu = _curvature(mu)
    c = _checks.positive_float("c", c)
    return min(2 * c * mu, 1.0)


@functools.partial(jax.jit, static_argnames=("n_chains", "tail_from", "average"))
def _simulate(key, mu, sigma, x0, etas, n_chains, tail_from, average):
    def one_chain_step(x, eta, xi):
        return x - eta * (mu * x + sigma * xi)

    step_all = jax.vmap(one_chain_step, in_axes=(0, None, 0))

    def step(carry, inp):
        x, xbar, acc = carry
        k, eta = inp
        xi = jax.random.normal(jax.random.fold_in(key, k), (n_chains,))
        x = step_all(x, eta, xi)
        xbar = xbar + (x - xbar) / (k + 1.0)   # the average of w_1..w_{k+1}
        f = 0.5 * mu * (xbar if average else x) ** 2
        acc = acc + jnp.where(k + 1 >= tail_from, (k + 2.0) * f, 0.0)
        return (x, xbar, acc), (f.mean(), f.var())

    x = jnp.full((n_chains,), x0, jnp.float32)
    f0 = 0.5 * mu * x0**2
    (x, xbar, acc), (means, variances) = jax.lax.scan(step, (x, x, jnp.zeros(n_chains)),
                                                      (jnp.arange(etas.shape[0]), etas))
    means = jnp.concatenate([jnp.asarray([f0], jnp.float32), means])
    variances = jnp.concatenate([jnp.zeros(1), variances])
    return means, variances, acc, (xbar if average else x)


def simulate(
    key: jax.Array,
    mu: float,
    sigma: float,
    x0: float,
    step_sizes,
    n_chains: int,
    *,
    tail_from: int | None = None,
    average: bool = False,
) -> ChainStats:
    r"""Run ``n_chains`` independent SGD chains on :math:`L=\tfrac\mu2 w^2` with Gaussian gradient noise.

    Each step is :math:`w_{k+1} = w_k - \eta_k(\mu w_k + \sigma\xi_k)`, :math:`\xi_k\sim N(0,1)`, from
    :math:`w_0` = ``x0``, for all chains at once: one ``lax.scan`` over the steps of a ``vmap`` over
    chains, compiled once. Only the per-step mean and variance of the loss over chains leave the
    device, so :math:`10^4` chains times :math:`10^4` steps need no more memory than one state.

    With ``average=True`` the statistics (and ``final``) are those of the Polyak–Ruppert average
    :math:`\bar w_k = \frac1k\sum_{j=1}^k w_j` instead of the iterate (:func:`averaged_expected_loss`
    is their exact mean). With ``tail_from`` the per-chain average of :math:`t L(w_t)`, :math:`t=k+1`,
    over steps ``k >= tail_from`` is also returned (``tail_mean``, ``tail_se``).
    """
    mu = _curvature(mu)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    x0 = float(_checks.finite_array("x0", x0, ndim=0))
    etas = _step_array(step_sizes)
    n_chains = _checks.positive_int("n_chains", n_chains)
    T = int(etas.shape[0])
    if tail_from is None:
        tail = T + 1
    else:
        tail = _checks.nonnegative_int("tail_from", tail_from)
        if tail > T:
            raise ValueError(f"tail_from={tail} is beyond the last step ({T})")
    means, variances, acc, x = _simulate(key, jnp.float32(mu), jnp.float32(sigma), jnp.float32(x0), etas,
                                         n_chains, tail, bool(average))
    means, variances = np.asarray(means, np.float64), np.asarray(variances, np.float64)
    se = np.sqrt(variances / max(n_chains - 1, 1))
    if tail <= T:
        per_chain = np.asarray(acc, np.float64) / (T + 1 - tail)
        tail_mean, tail_se = float(per_chain.mean()), float(per_chain.std(ddof=1) / np.sqrt(n_chains))
    else:
        tail_mean = tail_se = float("nan")
    return ChainStats(means, se, tail_mean, tail_se, np.asarray(x))


@functools.partial(jax.jit, static_argnames=("batch_size", "n_chains"))
def _mean_estimation(key, y, w0, etas, clip, batch_size, n_chains):
    n = y.shape[0]
    ybar = y.mean()

    def one_chain(w, k_chain, eta):
        idx = jax.random.randint(k_chain, (batch_size,), 0, n)
        g_hat = jnp.clip(w - y[idx], -clip, clip).mean()   # clip = inf: the plain minibatch gradient
        return w - eta * g_hat

    def step(w, inp):
        k, eta = inp
        keys = jax.random.split(jax.random.fold_in(key, k), n_chains)
        w = jax.vmap(one_chain, in_axes=(0, 0, None))(w, keys, eta)
        excess = 0.5 * (w - ybar) ** 2
        return w, (excess.mean(), excess.var())

    w = jnp.full((n_chains,), w0, jnp.float32)
    w, (means, variances) = jax.lax.scan(step, w, (jnp.arange(etas.shape[0]), etas))
    e0 = 0.5 * (w0 - ybar) ** 2
    return jnp.concatenate([jnp.asarray([e0]), means]), jnp.concatenate([jnp.zeros(1), variances]), w


def mean_estimation_sgd(
    key: jax.Array, y, step_sizes, batch_size: int, n_chains: int, *, w0: float = 0.0,
    clip: float | None = None,
) -> ChainStats:
    r"""McAllester's one-dimensional example, run with real minibatches.

    The loss is :math:`\ell(w, y) = \tfrac12(w-y)^2`, so the full gradient is :math:`w-\bar y`
    and the minibatch gradient :math:`\hat g = w - \bar y_B`: even at the optimum
    :math:`w^\star=\bar y` it is not zero (McAllester 2018, who writes :math:`\beta` for :math:`w`).
    Every chain starts at ``w0`` (:math:`w_0`) and draws its own minibatch of ``batch_size``
    examples (with replacement) from ``y`` at every step. Returned statistics are those of the
    excess loss :math:`\tfrac12(w_k-\bar y)^2`; the gradient noise has variance :math:`\sigma_y^2/B`
    (population variance of ``y``), so :func:`noise_floor` with :math:`\mu=1`,
    :math:`\sigma^2=\sigma_y^2/B` predicts its floor.

    With ``clip`` each per-example gradient :math:`w-y_i` is clipped to :math:`[-\tau,\tau]`
    before averaging: a *biased* estimate of :math:`w-\bar y` (Chapter 3).
    """
    y = jnp.asarray(_checks.finite_array("y", y, ndim=1), jnp.float32)
    batch_size = _checks.batch_size("batch_size", batch_size, int(y.shape[0]))
    n_chains = _checks.positive_int("n_chains", n_chains)
    etas = _step_array(step_sizes)
    w0 = float(_checks.finite_array("w0", w0, ndim=0))
    clip = float("inf") if clip is None else _checks.positive_float("clip", clip)
    means, variances, w = _mean_estimation(key, y, jnp.float32(w0), etas, jnp.float32(clip), batch_size,
                                              n_chains)
    se = np.sqrt(np.asarray(variances, np.float64) / max(n_chains - 1, 1))
    return ChainStats(np.asarray(means, np.float64), se, float("nan"), float("nan"), np.asarray(w))


def gradient_flow(mu: float, x0: float, t) -> np.ndarray:
    r"""Loss along the gradient flow :math:`\dot w = -\mu w` of :math:`L=\tfrac\mu2w^2`, from :math:`w_0` = ``x0``.

    :math:`w(t) = w_0e^{-\mu t}`, so :math:`L(w(t)) = \tfrac\mu2w_0^2e^{-2\mu t}` and indeed
    :math:`\tfrac{d}{dt}L = -\mu^2w(t)^2 = -|L'(w(t))|^2` (McAllester 2018).
    """
    mu = _curvature(mu)
    x0 = float(_checks.finite_array("x0", x0, ndim=0))
    t = np.asarray(_checks.finite_array("t", t), dtype=np.float64)
    if np.any(t < 0):
        raise ValueError("t must be non-negative")
    return 0.5 * mu * x0**2 * np.exp(-2 * mu * t)
