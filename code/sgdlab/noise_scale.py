r"""The gradient noise scale of McCandlish, Kaplan, Amodei et al. (2018), *An Empirical Model of Large-Batch Training*.

With true gradient :math:`G`, per-example gradient covariance :math:`\Sigma` and Hessian :math:`H`,
the noise scales are

.. math::  B_{\text{noise}} = \frac{\operatorname{tr}(H\Sigma)}{G^\top HG},\qquad
           B_{\text{simple}} = \frac{\operatorname{tr}\Sigma}{|G|^2}.

Neither :math:`|G|^2` nor :math:`\operatorname{tr}\Sigma` is observed during training, but squared
norms of minibatch gradients of two sizes are, and since
:math:`\mathbb E|G_B|^2 = |G|^2 + \operatorname{tr}\Sigma/B` for a batch of :math:`B` examples drawn
*with replacement*, two sizes give unbiased estimates of both (their Appendix A):
:func:`two_batch_estimates`. Drawn *without* replacement from a training set of :math:`N`
examples, the :math:`1/B` becomes :math:`\frac{N-B}{B(N-1)}`, about :math:`1/B-1/N` (their
footnote on finite training sets); pass ``n_train`` to use that form. The ratio of two unbiased
estimates is biased: average numerator and denominator separately, then divide.

:func:`optimal_step` gives their best step :math:`\epsilon_{\rm opt}(B)` and its gain on a quadratic,
and :func:`minibatch_sq_norm` measures :math:`|G_B|^2` inside a compiled training loop (a metric
of :func:`sgdlab.train.fit`).

:func:`fit_steps_examples` fits the trade-off :math:`(S/S_{\min}-1)(E/E_{\min}-1) = 1` between
steps :math:`S` and examples :math:`E = BS` to reach a target, whose ratio
:math:`B_{\text{crit}} = E_{\min}/S_{\min}` is the critical batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from . import _checks

__all__ = ["two_batch_estimates", "b_simple", "b_noise", "optimal_step", "minibatch_sq_norm", "fit_steps_examples"]


def _inverse_size(b: int, n_train: int | None) -> float:
    r"""The factor :math:`c(B)` in :math:`\mathbb E|G_B|^2 = |G|^2 + c(B)\operatorname{tr}\Sigma`."""
    return 1.0 / b if n_train is None else (n_train - b) / (b * (n_train - 1))


def two_batch_estimates(sq_norm_small: Any, sq_norm_big: Any, b_small: int, b_big: int, *,
                        n_train: int | None = None) -> tuple[jax.Array, jax.Array]:
    r"""Unbiased :math:`(|G|^2, \operatorname{tr}\Sigma)` from squared norms of gradients over two batch sizes.

    With :math:`c(B) = 1/B` (each batch drawn with replacement, the default, ``n_train=None``) or
    :math:`c(B) = \frac{N-B}{B(N-1)}` (each batch drawn without replacement from ``n_train`` = :math:`N`
    examples; :math:`\Sigma` normalised by :math:`N`, as in :mod:`sgdlab.noise`),

    .. math::  \widehat{\operatorname{tr}\Sigma} = \frac{|G_{B_s}|^2-|G_{B_b}|^2}{c(B_s)-c(B_b)},\qquad
               \widehat{|G|^2} = |G_{B_s}|^2 - c(B_s)\,\widehat{\operatorname{tr}\Sigma},

    which for :math:`c = 1/B` is McCandlish et al.'s Appendix A pair
    :math:`\widehat{|G|^2} = \frac{B_b|G_{B_b}|^2 - B_s|G_{B_s}|^2}{B_b - B_s}` and
    :math:`\widehat{\operatorname{tr}\Sigma} = \frac{|G_{B_s}|^2-|G_{B_b}|^2}{1/B_s-1/B_b}`. Both are
    unbiased by linearity, whether or not the two batches overlap (in data-parallel training the
    small batch is one worker's share of the big one). ``sq_norm_small`` and ``sq_norm_big`` are
    arrays of measurements (any matching shapes; the formulas act elementwise); the batch sizes
    are Python integers, so the function is jit-able with them fixed.
    """
    b_small = _checks.positive_int("b_small", b_small)
    b_big = _checks.positive_int("b_big", b_big)
    if b_big <= b_small:
        raise ValueError(f"b_big must be larger than b_small, got b_small={b_small}, b_big={b_big}")
    if n_train is not None:
        n_train = _checks.positive_int("n_train", n_train)
        if b_big > n_train:
            raise ValueError(f"b_big={b_big} is larger than n_train={n_train}")
    c_small, c_big = _inverse_size(b_small, n_train), _inverse_size(b_big, n_train)
    small, big = jnp.asarray(sq_norm_small), jnp.asarray(sq_norm_big)
    trace = (small - big) / (c_small - c_big)
    return small - c_small * trace, trace


def b_simple(trace_sigma: Any, grad_sq_norm: Any) -> jax.Array:
    r""":math:`B_{\text{simple}} = \operatorname{tr}\Sigma/|G|^2`, the noise scale when the Hessian is a multiple of :math:`I`."""
    return jnp.asarray(trace_sigma) / jnp.asarray(grad_sq_norm)


def b_noise(hessian: Any, sigma: Any, grad: Any) -> jax.Array:
    r""":math:`B_{\text{noise}} = \operatorname{tr}(H\Sigma)/G^\top HG` from the exact Hessian, covariance and gradient.

    The batch size at which the best step of a noisy quadratic model makes half the progress of
    the noiseless one (McCandlish et al. 2018, Section 2.2). ``hessian`` and ``sigma`` are
    ``(P, P)``, ``grad`` is ``(P,)``.
    """
    h = jnp.asarray(_checks.finite_array("hessian", hessian, ndim=2))
    s = jnp.asarray(_checks.finite_array("sigma", sigma, ndim=2))
    g = jnp.asarray(_checks.finite_array("grad", grad, ndim=1))
    if h.shape != s.shape or h.shape != (g.shape[0], g.shape[0]):
        raise ValueError(f"hessian {h.shape}, sigma {s.shape} and grad {g.shape} do not match")
    return jnp.sum(h * s.T) / (g @ h @ g)


def optimal_step(grad: Any, hessian: Any, sigma: Any, batch_size: Any) -> tuple[jax.Array, jax.Array]:
    r"""McCandlish et al.'s best step :math:`\eta_{\rm opt}(B)` (their :math:`\epsilon`) and its expected gain :math:`\Delta L_{\rm opt}(B)`.

    On the quadratic :math:`L(w-\eta\hat g) = L(w) - \eta G^\top\hat g + \frac{\eta^2}2\hat g^\top H\hat g`
    with :math:`\mathbb E\hat g = G` and :math:`\operatorname{Cov}\hat g = \Sigma/B` (a batch of
    :math:`B` drawn with replacement), the expected gain
    :math:`\eta|G|^2 - \frac{\eta^2}2\bigl(G^\top HG + \operatorname{tr}(H\Sigma)/B\bigr)` is
    largest at

    .. math::  \eta_{\rm opt}(B) = \frac{\eta_{\max}}{1+B_{\rm noise}/B},\qquad
               \Delta L_{\rm opt}(B) = \frac{\Delta L_{\max}}{1+B_{\rm noise}/B},

    with :math:`\eta_{\max} = |G|^2/G^\top HG` and :math:`\Delta L_{\max} = \frac12|G|^4/G^\top HG`
    (their Section 2.2). ``batch_size`` may be an array (elementwise); ``inf`` gives the
    noiseless values. Shapes as in :func:`b_noise`.
    """
    h = jnp.asarray(_checks.finite_array("hessian", hessian, ndim=2))
    s = jnp.asarray(_checks.finite_array("sigma", sigma, ndim=2))
    g = jnp.asarray(_checks.finite_array("grad", grad, ndim=1))
    if h.shape != s.shape or h.shape != (g.shape[0], g.shape[0]):
        raise ValueError(f"hessian {h.shape}, sigma {s.shape} and grad {g.shape} do not match")
    b = np.asarray(batch_size, dtype=np.float64)
    if np.isnan(b).any() or np.any(b <= 0):
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")
    curv = g @ h @ g
    ratio = b_noise(h, s, g) / jnp.asarray(b, jnp.result_type(float))
    return (g @ g / curv) / (1 + ratio), 0.5 * (g @ g) ** 2 / curv / (1 + ratio)


def minibatch_sq_norm(loss_fn: Callable[[Any, jax.Array, jax.Array], jax.Array], params: Any,
                      sample: Callable[[jax.Array, int], tuple[jax.Array, jax.Array]], key: jax.Array,
                      batch_size: int, *, draws: int = 1) -> jax.Array:
    r"""The mean over ``draws`` independent minibatches of :math:`|G_B|^2 = |\nabla L_B(w)|^2`.

    ``loss_fn(params, x, y)`` is the mean loss of a batch, ``sample(key, batch_size) -> (x, y)``
    draws a batch (with replacement, for :func:`two_batch_estimates`). This is what a training
    loop measures for the noise scale: in :func:`sgdlab.train.fit` pass
    ``metrics={"sq_small": lambda p: minibatch_sq_norm(p.loss_fn, p.params, p.sample, p.key, b)}``,
    and likewise for the big batch. Its expectation is :math:`|G|^2 + \operatorname{tr}\Sigma/B`.
    The draws run one after another (``lax.map``), so memory stays at one batch; pure JAX,
    with ``batch_size`` and ``draws`` Python integers.
    """
    batch_size = _checks.positive_int("batch_size", batch_size)
    draws = _checks.positive_int("draws", draws)
    return _minibatch_sq_norm(loss_fn, params, sample, key, batch_size, draws)


def _minibatch_sq_norm(loss_fn, params, sample, key, batch_size, draws):
    def one(k):
        x, y = sample(k, batch_size)
        grads = jax.grad(loss_fn)(params, x, y)
        return sum(jnp.vdot(leaf, leaf) for leaf in jax.tree.leaves(grads))

    return jnp.mean(jax.lax.map(one, jax.random.split(key, draws)))


def fit_steps_examples(steps: Any, examples: Any) -> tuple[float, float]:
    r"""Fit :math:`(S/S_{\min}-1)(E/E_{\min}-1) = 1` to measured (steps, examples) pairs; return :math:`(S_{\min}, E_{\min})`.

    The relation is :math:`S_{\min}/S + E_{\min}/E = 1`; with the batch size :math:`B = E/S` of each
    run it reads :math:`S(B) = S_{\min} + E_{\min}/B`. In an experiment :math:`B` is set and only the
    steps :math:`S` are measured, with an error roughly proportional to :math:`S` (a run is a
    random walk to the target), and :math:`S` spans decades across batch sizes. So the fit is a
    least-squares fit *in log space*, :math:`\min\sum_i\bigl(\log S_i - \log(S_{\min}+E_{\min}/B_i)\bigr)^2`
    over :math:`\log S_{\min}, \log E_{\min}` (SciPy's ``least_squares``), started from the
    linear least-squares solution of :math:`S_{\min}/S_i + E_{\min}/E_i = 1`. Runs that never
    reached the target (infinite steps) are dropped. Exact pairs are recovered exactly.
    """
    s, e = np.asarray(steps, np.float64), np.asarray(examples, np.float64)
    if s.ndim != 1 or s.shape != e.shape:
        raise ValueError(f"steps and examples must be 1-D of the same length, got {s.shape} and {e.shape}")
    if np.isnan(s).any() or np.isnan(e).any():
        raise ValueError("steps and examples must not contain NaN (mark a run that never arrived with inf)")
    keep = np.isfinite(s) & np.isfinite(e)
    s, e = s[keep], e[keep]
    if len(s) < 2:
        raise ValueError("steps needs at least two finite (steps, examples) pairs to fit two parameters")
    if np.any(s <= 0) or np.any(e <= 0):
        raise ValueError("steps and examples must be positive")
    b = e / s
    lin, *_ = np.linalg.lstsq(np.stack([1 / s, 1 / e], axis=1), np.ones_like(s), rcond=None)
    start = np.log(np.clip(lin, 1e-3 * np.array([s.min(), e.min()]), None))

    def residual(theta):
        s_min, e_min = np.exp(theta)
        return np.log(s) - np.log(s_min + e_min / b)

    sol = scipy.optimize.least_squares(residual, start, method="lm", xtol=1e-14, ftol=1e-14)
    s_min, e_min = np.exp(sol.x)
    return float(s_min), float(e_min)
