r"""Martingales, the descent inequality of SGD, and preconditioned (natural-gradient) SGD.

Chapter 3 proves SGD convergence with martingale tools. This module holds what its experiments
compute:

* simulators of three textbook processes — the series :math:`\sum_k\varepsilon_k/k^p` of random
  signs (a martingale that converges for :math:`p>1/2` and wanders for :math:`p=0`), the product
  :math:`\prod_k U_k` of mean-one factors (a non-negative martingale that converges to 0 while
  its mean stays 1), and the loss of SGD on a quadratic with Robbins–Monro steps (an "almost
  supermartingale" in the sense of Robbins & Siegmund 1971);
* :func:`descent_estimate`: at a fixed :math:`w_t`, a Monte-Carlo estimate of
  :math:`\mathbb E[L(w_{t+1})\mid w_t]` over minibatches, beside the bound
  :math:`L(w_t) - \eta\,\nabla L^\top P\nabla L + \eta^2 C` of the descent lemma;
* :func:`clipped_fixed_point`: where SGD with clipped (hence biased) per-example gradients
  really converges in McAllester's one-dimensional example;
* :func:`preconditioned_sgd`: natural-gradient descent (Amari 1998) with the Fisher matrix of
  :func:`sgdlab.curvature.fisher_matrix`
  for small models, run by the engine's loop for hand-written gradients
  (:func:`sgdlab.train.optimize`).

The local top Hessian eigenvalue comes from :func:`sgdlab.curvature.top_eigenvalue`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.optimize import brentq

from . import _checks, curvature, train
from .losses import per_example_loss

__all__ = [
    "sign_series",
    "sign_series_variance",
    "product_martingale",
    "multiplicative_noise_paths",
    "quadratic_sgd_paths",
    "DescentEstimate",
    "descent_estimate",
    "clipped_fixed_point",
    "preconditioned_sgd",
]


# ------------------------------------------------------------------ three martingales

def sign_series(key: jax.Array, n_paths: int, steps: int, p: float) -> np.ndarray:
    r"""Paths of :math:`X_n = \sum_{k=1}^n \varepsilon_k k^{-p}` with independent random signs :math:`\varepsilon_k=\pm1`.

    Each :math:`X_n` is a martingale with :math:`\operatorname{Var}X_n = \sum_{k\le n}k^{-2p}`.
    For :math:`p>1/2` it is bounded in :math:`L^2`, so it converges almost surely (Doob); for
    :math:`p=0` it is the simple random walk, which does not converge. Returns an array of shape
    ``(n_paths, steps + 1)`` starting at :math:`X_0=0` (a cumulative sum, no loop over steps).
    """
    n_paths = _checks.positive_int("n_paths", n_paths)
    steps = _checks.positive_int("steps", steps)
    p = _checks.positive_float("p", p, allow_zero=True)
    signs = jax.random.rademacher(key, (n_paths, steps), dtype=jnp.float32)
    k = jnp.arange(1, steps + 1, dtype=jnp.float32)
    x = jnp.cumsum(signs * k**-p, axis=1)
    return np.asarray(jnp.concatenate([jnp.zeros((n_paths, 1)), x], axis=1))


def sign_series_variance(steps: int, p: float) -> np.ndarray:
    r""":math:`\operatorname{Var}X_n = \sum_{k\le n}k^{-2p}` for ``n = 0..steps`` (closed form of :func:`sign_series`)."""
    steps = _checks.positive_int("steps", steps)
    p = _checks.positive_float("p", p, allow_zero=True)
    return np.concatenate([[0.0], np.cumsum(np.arange(1, steps + 1, dtype=np.float64) ** (-2 * p))])


def product_martingale(key: jax.Array, n_paths: int, steps: int, spread: float = 0.5) -> np.ndarray:
    r"""Paths of :math:`X_n=\prod_{k\le n}U_k`, :math:`U_k = 1\pm` ``spread`` with probability 1/2 each.

    :math:`\mathbb E U_k = 1`, so :math:`X_n` is a non-negative martingale with
    :math:`\mathbb EX_n = 1` for every :math:`n`. By Doob's theorem it converges almost surely,
    and since :math:`\mathbb E\log U_k = \tfrac12\log(1-s^2) < 0` the limit is 0: the mean is
    carried by ever rarer, ever larger paths. Shape ``(n_paths, steps + 1)``.
    """
    n_paths = _checks.positive_int("n_paths", n_paths)
    steps = _checks.positive_int("steps", steps)
    spread = _checks.fraction("spread", spread)
    signs = jax.random.rademacher(key, (n_paths, steps), dtype=jnp.float32)
    logs = jnp.cumsum(jnp.log1p(spread * signs), axis=1)
    return np.asarray(jnp.exp(jnp.concatenate([jnp.zeros((n_paths, 1)), logs], axis=1)))


def multiplicative_noise_paths(key: jax.Array, mu: float, spread: float, x0: float, eta: float, steps: int,
                               n_paths: int) -> np.ndarray:
    r"""Loss paths :math:`X_n=\tfrac\mu2x_n^2` of constant-step SGD whose noise vanishes at the optimum.

    The stochastic gradient is :math:`\hat g = \mu x(1+s\xi)`, :math:`\xi\sim N(0,1)`: unbiased, with
    noise proportional to the gradient, as when every example is fitted exactly (interpolation).
    Then :math:`\mathbb E[X_{n+1}\mid x_n] = \rho X_n` with
    :math:`\rho = (1-\eta\mu)^2+\eta^2\mu^2s^2`, so for :math:`\rho\le1` the loss is a
    non-negative supermartingale and converges almost surely, even with a constant step.
    Returns shape ``(n_paths, steps + 1)``.
    """
    mu = _checks.positive_float("mu", mu)
    spread = _checks.positive_float("spread", spread, allow_zero=True)
    x0 = float(_checks.finite_array("x0", x0, ndim=0))
    eta = _checks.positive_float("eta", eta)
    steps = _checks.positive_int("steps", steps)
    n_paths = _checks.positive_int("n_paths", n_paths)
    xi = jax.random.normal(key, (n_paths, steps))
    logs = jnp.cumsum(jnp.log(jnp.abs(1 - eta * mu * (1 + spread * xi))), axis=1)
    x = jnp.abs(x0) * jnp.exp(jnp.concatenate([jnp.zeros((n_paths, 1)), logs], axis=1))
    return np.asarray(0.5 * mu * x**2)


def _noisy_quadratic_step(x, t, key, mu, sigma, etas):
    r"""The step :math:`\eta_t(\mu x+\sigma\xi_t)` of every path; ``optax.sgd(1.0)`` subtracts it."""
    xi = jax.random.normal(jax.random.fold_in(key, t), x.shape, x.dtype)
    return etas[t] * (mu * x + sigma * xi)


def quadratic_sgd_paths(key: jax.Array, mu: float, sigma: float, x0: float, step_sizes, n_paths: int) -> np.ndarray:
    r"""Whole paths :math:`x_0,\dots,x_T` of SGD on :math:`\tfrac\mu2x^2` with Gaussian gradient noise.

    The loss :math:`X_n = \tfrac\mu2x_n^2` satisfies, exactly,

    .. math::  \mathbb E[X_{n+1}\mid x_n] = X_n - \underbrace{(1-(1-\eta_n\mu)^2)X_n}_{b_n}
               + \underbrace{\tfrac12\mu\eta_n^2\sigma^2}_{c_n},

    the Robbins–Siegmund form with :math:`a_n = 0`; with :math:`\sum\eta_n^2<\infty` the
    :math:`c_n` are summable. The chain is that of :func:`sgdlab.quadratic.simulate`, which keeps
    only the mean over chains; this one returns every path (the chapter sums :math:`b_n` along
    each). All paths step together through :func:`sgdlab.train.optimize` (one compiled scan);
    returns shape ``(n_paths, T + 1)``.
    """
    mu = _checks.positive_float("mu", mu)
    sigma = _checks.positive_float("sigma", sigma, allow_zero=True)
    x0 = float(_checks.finite_array("x0", x0, ndim=0))
    etas = _checks.finite_array("step_sizes", step_sizes, ndim=1)
    if np.any(etas < 0):
        raise ValueError("step_sizes must be non-negative")
    n_paths = _checks.positive_int("n_paths", n_paths)
    x_init = jnp.full((n_paths,), x0, jnp.float32)
    _, _, xs = train.optimize(optax.sgd(1.0), x_init, _noisy_quadratic_step, steps=int(etas.shape[0]),
                              args=(key, jnp.float32(mu), jnp.float32(sigma), jnp.asarray(etas, jnp.float32)))
    return np.asarray(jnp.concatenate([x_init[None], xs], axis=0).T)


# ------------------------------------------------------------------ the descent inequality

class DescentEstimate(NamedTuple):
    r"""Result of :func:`descent_estimate`; arrays are indexed like ``step_sizes``.

    ``expected_next``/``se``: Monte-Carlo :math:`\mathbb E[L(w-\eta P\hat g)]` and its standard
    error; ``bound``: :math:`L - \eta g^\top Pg + \tfrac{\lambda}{2}\eta^2\mathbb E\|P\hat g\|^2`;
    ``first_order``: :math:`L - \eta g^\top Pg`; ``loss``, ``descent`` (:math:`g^\top Pg`),
    ``second_moment`` (exact :math:`\mathbb E\|P\hat g\|^2`), ``second_moment_mc`` (its Monte-Carlo
    estimate) and ``lam`` (:math:`\lambda`, the local top Hessian eigenvalue) are scalars.
    """

    step_sizes: np.ndarray
    expected_next: np.ndarray
    se: np.ndarray
    bound: np.ndarray
    first_order: np.ndarray
    loss: float
    descent: float
    second_moment: float
    second_moment_mc: float
    lam: float


def descent_estimate(
    key: jax.Array,
    loss_fn: Callable,
    w: jax.Array,
    grads: jax.Array,
    step_sizes,
    batch_size: int,
    n_draws: int,
    *,
    preconditioner: jax.Array | None = None,
    lam: float | None = None,
    chunk: int = 64,
) -> DescentEstimate:
    r"""Check the descent inequality of SGD at a fixed point :math:`w` by Monte Carlo.

    ``grads`` are the per-example gradients at :math:`w` (shape ``(N, P)``, e.g. from
    :func:`sgdlab.noise.per_example_grads`), so :math:`g=\bar g` is the full gradient. For each of
    ``n_draws`` minibatches of ``batch_size`` examples (with replacement) and each step size
    :math:`\eta`, the full loss :math:`L(w-\eta P\hat g)` is evaluated; its average estimates
    :math:`\mathbb E[L(w_{t+1})\mid w_t=w]`. Beside it, the descent lemma with the local top Hessian
    eigenvalue :math:`\lambda` (:func:`sgdlab.curvature.top_eigenvalue`, unless ``lam`` is given)
    in place of the smoothness constant :math:`\Lambda` gives

    .. math::  \mathbb E[L(w-\eta P\hat g)] \le L(w) - \eta\,g^\top Pg
               + \frac{\lambda}{2}\eta^2\Big(\|Pg\|^2 + \frac{\operatorname{tr}(P\Sigma P^\top)}{B}\Big),

    valid where the curvature along the step stays below :math:`\lambda`; :math:`\lambda` is local, not a
    global smoothness constant, so the bound is a comparison, not a theorem here (Bottou et al. 2018,
    Lemma 4.4; Huszár's lecture notes for the supermartingale argument). ``preconditioner`` is a
    ``(P, P)`` matrix (default: the identity). Minibatch means are formed as a sparse weight
    matrix times ``grads``; the losses are evaluated in chunks of ``chunk`` draws.
    """
    grads = jnp.asarray(_checks.finite_array("grads", grads, ndim=2))
    n, dim = grads.shape
    batch_size = _checks.batch_size("batch_size", batch_size, n)
    n_draws = _checks.positive_int("n_draws", n_draws)
    if n_draws < 2:
        raise ValueError("n_draws must be at least 2 to estimate a standard error")
    chunk = _checks.positive_int("chunk", chunk)
    etas = np.asarray(_checks.finite_array("step_sizes", step_sizes, ndim=1), np.float64)
    if np.any(etas < 0):
        raise ValueError("step_sizes must be non-negative")
    w = jnp.asarray(w)
    if w.shape != (dim,):
        raise ValueError(f"w must have shape ({dim},) to match grads, got {w.shape}")
    if preconditioner is None:
        precond = jnp.eye(dim, dtype=grads.dtype)
    else:
        precond = jnp.asarray(_checks.finite_array("preconditioner", preconditioner, ndim=2), grads.dtype)
        if precond.shape != (dim, dim):
            raise ValueError(f"preconditioner must have shape ({dim}, {dim}), got {precond.shape}")
    if lam is None:
        lam = float(jax.jit(lambda v: curvature.top_eigenvalue(loss_fn, v, jax.random.key(0))[0])(w))
    else:
        lam = _checks.positive_float("lam", lam)

    g = grads.mean(0)
    pg_all = grads @ precond.T                                   # P g_i for every example
    pg = pg_all.mean(0)
    tr_noise = jnp.mean(jnp.sum((pg_all - pg) ** 2, axis=1))     # tr(P Sigma P^T)
    second = float(pg @ pg + tr_noise / batch_size)
    descent = float(g @ pg)
    loss0 = float(loss_fn(w))

    idx = jax.random.randint(key, (n_draws, batch_size), 0, n)
    weights = jnp.zeros((n_draws, n), grads.dtype).at[jnp.arange(n_draws)[:, None], idx].add(1.0 / batch_size)
    updates = weights @ pg_all                                   # P g_hat for every draw, (n_draws, P)
    second_mc = float(jnp.mean(jnp.sum(updates**2, axis=1)))

    @jax.jit
    def losses_for(u):
        return jax.vmap(lambda eta: loss_fn(w - eta * u))(jnp.asarray(etas, w.dtype))

    values = np.asarray(jax.lax.map(losses_for, updates, batch_size=chunk), np.float64)  # (n_draws, n_eta)
    mean = values.mean(0)
    se = values.std(0, ddof=1) / np.sqrt(n_draws)
    first_order = loss0 - etas * descent
    bound = first_order + 0.5 * lam * etas**2 * second
    return DescentEstimate(etas, mean, se, bound, first_order, loss0, descent, second, second_mc, float(lam))


# ------------------------------------------------------------------ a biased gradient

def clipped_fixed_point(y, clip: float) -> float:
    r"""Where SGD with clipped per-example gradients settles in McAllester's example.

    The per-example gradient of :math:`\tfrac12(w-y_i)^2` is :math:`w-y_i`; clipped to
    :math:`[-\tau,\tau]` its mean :math:`h(w)=\frac1n\sum_i\operatorname{clip}(w-y_i,-\tau,\tau)`
    is no longer the gradient of the squared loss (it is that of the Huber loss). SGD with
    Robbins–Monro steps converges to the root of :math:`h`, found here with Brent's method —
    the Huber location estimate, not the mean :math:`\bar y`.
    """
    y = np.asarray(_checks.finite_array("y", y, ndim=1), np.float64)
    clip = _checks.positive_float("clip", clip)
    h = lambda b: float(np.mean(np.clip(b - y, -clip, clip)))  # noqa: E731
    return brentq(h, y.min(), y.max(), xtol=1e-12)


# ------------------------------------------------------------------ natural gradient

def _preconditioned_gradient(w, t, key, x, y, damping, *, model_fn, batch_size, fisher_batch, natural):
    r""":math:`(F_t+\delta I)^{-1}\hat g_t` (or :math:`\hat g_t`) with both minibatches drawn from ``fold_in(key, t)``."""
    k_batch, k_fisher = jax.random.split(jax.random.fold_in(key, t))
    n = x.shape[0]
    idx = jax.random.randint(k_batch, (batch_size,), 0, n)
    g_hat = jax.grad(_mean_loss)(w, x[idx], y[idx], model_fn=model_fn)
    if not natural:
        return g_hat
    # the Fisher of an independent minibatch: given w_t, the preconditioner and g_hat are independent
    jdx = jax.random.randint(k_fisher, (fisher_batch,), 0, n)
    fisher = curvature.fisher_matrix(model_fn, w, x[jdx])
    return jnp.linalg.solve(fisher + damping * jnp.eye(w.shape[0], dtype=w.dtype), g_hat)


def _mean_loss(w, x, y, *, model_fn):
    return per_example_loss(model_fn(w, x), y, "cross_entropy").mean()


def _full_loss(w, _key, x, y, _damping, *, model_fn):
    """The traced value after every step: the full training loss (``optimize`` passes ``w, *args``)."""
    return _mean_loss(w, x, y, model_fn=model_fn)


def preconditioned_sgd(
    key: jax.Array,
    model_fn: Callable,
    w0: jax.Array,
    x,
    y,
    *,
    lr: float,
    steps: int,
    batch_size: int,
    natural: bool = True,
    damping: float = 1e-3,
    fisher_batch: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Minibatch natural-gradient descent :math:`w\leftarrow w-\eta(F_t+\delta I)^{-1}\hat g_t` (or plain SGD).

    At step :math:`t` the minibatch of :math:`\hat g_t` and an independent minibatch of
    ``fisher_batch`` inputs for the Fisher estimate :math:`F_t`
    (:func:`sgdlab.curvature.fisher_matrix`) are drawn from ``jax.random.fold_in(key, t)``;
    :math:`\delta` = ``damping``. Given :math:`w_t` the
    preconditioner and :math:`\hat g_t` are conditionally independent and the preconditioner is
    positive definite, so the expected step :math:`-\eta\,\mathbb E[P_t\mid w_t]\nabla L(w_t)`
    is a descent direction (Amari 1998). ``natural=False`` runs plain SGD on the same
    minibatches. ``model_fn(w, x)`` gives logits from flat parameters.

    Optax has no natural-gradient transformation; the preconditioned direction is the gradient
    oracle of :func:`sgdlab.train.optimize`, and ``optax.sgd(lr)`` takes the step. Returns the
    final parameters and the full training loss before the first and after every step
    (``steps + 1`` values).
    """
    if not callable(model_fn):
        raise ValueError("model_fn must be a callable model_fn(w, x) returning logits")
    x, y = map(jnp.asarray, _checks.examples(x, y))
    lr = _checks.positive_float("lr", lr)
    steps = _checks.positive_int("steps", steps)
    batch_size = _checks.batch_size("batch_size", batch_size, int(x.shape[0]))
    fisher_batch = _checks.batch_size("fisher_batch", fisher_batch, int(x.shape[0]))
    damping = _checks.positive_float("damping", damping)
    w0 = jnp.asarray(_checks.finite_array("w0", w0, ndim=1), jnp.float32)
    gradient = functools.partial(_preconditioned_gradient, model_fn=model_fn, batch_size=batch_size,
                                 fisher_batch=fisher_batch, natural=bool(natural))
    w, _, losses = train.optimize(optax.sgd(lr), w0, gradient, steps=steps, args=(key, x, y, jnp.float32(damping)),
                                  trace=functools.partial(_full_loss, model_fn=model_fn))
    return np.asarray(w), np.concatenate([[float(_mean_loss(w0, x, y, model_fn=model_fn))], np.asarray(losses)])
