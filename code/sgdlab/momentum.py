r"""Gradient descent and heavy-ball momentum on a quadratic: exact rates and compiled trajectories.

On :math:`f(w) = \tfrac12\sum_i \lambda_i w_i^2` with :math:`0<\lambda_n\le\dots\le\lambda_1`
(any quadratic, in the eigenbasis of its Hessian) and condition number
:math:`\kappa = \lambda_1/\lambda_n`:

* gradient descent :math:`w \leftarrow w - \alpha\nabla f` multiplies coordinate :math:`i` by
  :math:`1-\alpha\lambda_i`; the best step :math:`\alpha = 2/(\lambda_1+\lambda_n)` gives the
  rate :math:`(\kappa-1)/(\kappa+1)`;
* heavy ball (Polyak, 1964) :math:`z \leftarrow \beta z + \nabla f,\; w \leftarrow w - \alpha z`
  — exactly ``optax.sgd(alpha, momentum=beta)`` — acts on :math:`(z_i, w_i)` by
  :math:`\begin{pmatrix}\beta & \lambda_i\\ -\alpha\beta & 1-\alpha\lambda_i\end{pmatrix}`, with
  characteristic polynomial :math:`x^2-(1+\beta-\alpha\lambda_i)x+\beta`. The product of its
  roots is :math:`\beta`, so complex roots have modulus :math:`\sqrt\beta`. The best choice
  (Polyak 1964; Goh, *Why momentum really works*, Distill 2017)

  .. math:: \alpha^\star = \Bigl(\frac{2}{\sqrt{\lambda_1}+\sqrt{\lambda_n}}\Bigr)^2,\qquad
            \beta^\star = \Bigl(\frac{\sqrt\kappa-1}{\sqrt\kappa+1}\Bigr)^2

  makes every root complex or double with modulus :math:`\sqrt{\beta^\star} = (\sqrt\kappa-1)/(\sqrt\kappa+1)`.

:func:`heavy_ball_trajectory` runs Optax's own ``optax.sgd`` on such a quadratic inside one
``jax.lax.scan``; :func:`measured_rate` fits the per-step contraction of a trajectory.

* Nesterov momentum, ``optax.sgd(alpha, momentum=beta, nesterov=True)``:
  :math:`z \leftarrow \beta z + \nabla f(w),\; w \leftarrow w - \alpha(\nabla f(w) + \beta z)`, acts on
  :math:`(z_i, w_i)` with characteristic polynomial :math:`x^2-(1+\beta)(1-\alpha\lambda_i)x+\beta(1-\alpha\lambda_i)`.
  Its best tuning on a quadratic (Lessard, Recht & Packard 2016) is
  :math:`\alpha = 4/(3\lambda_1+\lambda_n)`, :math:`\beta = (\sqrt{3\kappa+1}-2)/(\sqrt{3\kappa+1}+2)`,
  with rate :math:`1-2/\sqrt{3\kappa+1}`: between gradient descent and the heavy ball.

The stationary spread of heavy ball under gradient noise lives in :mod:`sgdlab.nqm`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _checks, train


def _eigenvalues(lambdas: Any) -> np.ndarray:
    lam = np.asarray(_checks.finite_array("lambdas", lambdas, ndim=1), dtype=float)
    if np.any(lam <= 0):
        raise ValueError("lambdas must all be positive (a strictly convex quadratic)")
    return lam


def goh_parameters(lam_max: float, lam_min: float) -> tuple[float, float]:
    r"""Optimal heavy-ball step and momentum :math:`(\alpha^\star, \beta^\star)` for eigenvalues in :math:`[\lambda_n, \lambda_1]`.

    :math:`\alpha^\star = (2/(\sqrt{\lambda_1}+\sqrt{\lambda_n}))^2`,
    :math:`\beta^\star = ((\sqrt\kappa-1)/(\sqrt\kappa+1))^2` (Polyak 1964; Goh 2017).
    """
    lam_max = _checks.positive_float("lam_max", lam_max)
    lam_min = _checks.positive_float("lam_min", lam_min)
    if lam_min > lam_max:
        raise ValueError(f"lam_min={lam_min} is larger than lam_max={lam_max}")
    root_k = np.sqrt(lam_max / lam_min)
    return float((2 / (np.sqrt(lam_max) + np.sqrt(lam_min))) ** 2), float(((root_k - 1) / (root_k + 1)) ** 2)


def optimal_rates(kappa: float) -> tuple[float, float]:
    r"""The best per-step rates on condition number :math:`\kappa`: gradient descent
    :math:`(\kappa-1)/(\kappa+1)` and heavy ball :math:`(\sqrt\kappa-1)/(\sqrt\kappa+1)`."""
    kappa = _checks.positive_float("kappa", kappa)
    if kappa < 1:
        raise ValueError(f"kappa must be at least 1, got {kappa!r}")
    return float((kappa - 1) / (kappa + 1)), float((np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1))


def gd_rate(alpha: float, lambdas: Any) -> float:
    r"""Exact per-step contraction of gradient descent: :math:`\max_i |1-\alpha\lambda_i|`."""
    alpha = _checks.positive_float("alpha", alpha)
    return float(np.max(np.abs(1 - alpha * _eigenvalues(lambdas))))


def heavy_ball_roots(alpha: float, beta: float, lam: Any) -> np.ndarray:
    r"""The two roots of :math:`x^2-(1+\beta-\alpha\lambda)x+\beta` for each :math:`\lambda`; shape ``(len(lam), 2)``, complex."""
    alpha = _checks.positive_float("alpha", alpha)
    beta = _momentum(beta)
    lam = _eigenvalues(np.atleast_1d(lam))
    b = 1 + beta - alpha * lam
    disc = np.sqrt((b * b - 4 * beta).astype(complex))
    return np.stack([(b + disc) / 2, (b - disc) / 2], axis=-1)


def heavy_ball_rate(alpha: float, beta: float, lambdas: Any) -> float:
    """Exact per-step contraction of heavy ball: the largest root modulus over all eigenvalues."""
    return float(np.max(np.abs(heavy_ball_roots(alpha, beta, lambdas))))


def nesterov_roots(alpha: float, beta: float, lam: Any) -> np.ndarray:
    r"""Roots of Nesterov's :math:`x^2-(1+\beta)(1-\alpha\lambda)x+\beta(1-\alpha\lambda)` per :math:`\lambda`; shape ``(len(lam), 2)``."""
    alpha = _checks.positive_float("alpha", alpha)
    beta = _momentum(beta)
    q = 1 - alpha * _eigenvalues(np.atleast_1d(lam))
    b, c = (1 + beta) * q, beta * q
    disc = np.sqrt((b * b - 4 * c).astype(complex))
    return np.stack([(b + disc) / 2, (b - disc) / 2], axis=-1)


def nesterov_rate(alpha: float, beta: float, lambdas: Any) -> float:
    """Exact per-step contraction of Nesterov momentum: the largest root modulus over all eigenvalues."""
    return float(np.max(np.abs(nesterov_roots(alpha, beta, lambdas))))


def nesterov_parameters(lam_max: float, lam_min: float) -> tuple[float, float]:
    r"""Best Nesterov step and momentum on a quadratic with eigenvalues in :math:`[\lambda_n,\lambda_1]`.

    :math:`\alpha = 4/(3\lambda_1+\lambda_n)` and :math:`\beta = (\sqrt{3\kappa+1}-2)/(\sqrt{3\kappa+1}+2)`,
    which give the rate :math:`1-2/\sqrt{3\kappa+1}` (Lessard, Recht & Packard 2016, Section 2.2).
    """
    lam_max = _checks.positive_float("lam_max", lam_max)
    lam_min = _checks.positive_float("lam_min", lam_min)
    if lam_min > lam_max:
        raise ValueError(f"lam_min={lam_min} is larger than lam_max={lam_max}")
    root = np.sqrt(3 * lam_max / lam_min + 1)
    return float(4 / (3 * lam_max + lam_min)), float((root - 2) / (root + 2))


def _momentum(beta: Any) -> float:
    b = _checks.positive_float("beta", beta, allow_zero=True)
    if not b < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta!r}")
    return b


def heavy_ball_trajectory(alpha: float, beta: float, lambdas: Any, w0: Any, steps: int, *,
                          nesterov: bool = False) -> np.ndarray:
    r"""Iterates of ``optax.sgd(alpha, momentum=beta, nesterov=nesterov)`` on :math:`f(w)=\frac12\sum_i\lambda_i w_i^2`.

    ``beta=0`` is plain gradient descent; ``nesterov=True`` is Nesterov momentum. Returns an array of shape ``(steps + 1, d)`` whose
    row :math:`t` is :math:`w_t` (row 0 is ``w0``). All steps run in one compiled ``lax.scan``
    (:func:`sgdlab.train.optimize`), and new ``alpha`` or ``beta`` values reuse it.
    """
    alpha = _checks.positive_float("alpha", alpha)
    beta = _momentum(beta)
    lam = _eigenvalues(lambdas)
    w0 = _checks.finite_array("w0", w0, ndim=1)
    if w0.shape != lam.shape:
        raise ValueError(f"w0 must have shape {lam.shape} like lambdas, got {w0.shape}")
    steps = _checks.positive_int("steps", steps)
    w0 = jnp.asarray(w0, jnp.float32)
    tx = optax.sgd(alpha, momentum=beta, nesterov=bool(nesterov))
    _, _, ws = train.optimize(tx, w0, _diagonal_gradient, steps=steps,
                              args=(jnp.asarray(lam, jnp.float32),))
    return np.concatenate([np.asarray(w0)[None], np.asarray(ws)])


def _diagonal_gradient(w, _t, lam):
    return lam * w


def _matrix_gradient(w, _t, h):
    return h @ w


def measured_rate(trajectory: Any, start: int, stop: int) -> float:
    r"""Per-step contraction fitted to a trajectory: :math:`\exp` of the least-squares slope of
    :math:`\log\|w_t\|` over :math:`t\in[\text{start}, \text{stop})`.

    At the optimal heavy-ball parameters the extreme eigen-directions have a double root, so
    :math:`\|w_t\|\propto t\rho^t` there and the fit overestimates :math:`\rho` by a factor of
    about :math:`e^{1/\bar t}`; fitting late (large :math:`\bar t`) keeps that small.
    """
    traj = np.asarray(_checks.finite_array("trajectory", trajectory, ndim=2), dtype=float)
    start = _checks.nonnegative_int("start", start)
    stop = _checks.positive_int("stop", stop)
    if not start + 2 <= stop <= traj.shape[0]:
        raise ValueError(f"need start + 2 <= stop <= {traj.shape[0]}, got start={start}, stop={stop}")
    norms = np.linalg.norm(traj[start:stop], axis=1)
    if np.any(norms <= 0):
        raise ValueError("the trajectory reaches exactly zero inside the window; pick an earlier window")
    t = np.arange(start, stop)
    return float(np.exp(np.polyfit(t, np.log(norms), 1)[0]))


def valley_loss(lambdas: Any, trajectory: Any) -> np.ndarray:
    r"""Loss :math:`f(w_t) = \frac12\sum_i\lambda_i w_{t,i}^2` along a trajectory of shape ``(T, d)``."""
    lam = _eigenvalues(lambdas)
    traj = np.asarray(trajectory, dtype=float)
    if traj.ndim != 2 or traj.shape[1] != lam.size:
        raise ValueError(f"trajectory must have shape (T, {lam.size}), got {traj.shape}")
    return 0.5 * (traj**2 * lam).sum(axis=1)


def quadratic_trajectory(optimizer: optax.GradientTransformation, hessian: Any, w0: Any, steps: int) -> np.ndarray:
    r"""Iterates of any Optax ``optimizer`` on :math:`f(w) = \frac12 w^\top H w` from ``w0``; shape ``(steps + 1, d)``.

    Unlike :func:`heavy_ball_trajectory` the Hessian may be any symmetric positive
    semi-definite matrix, e.g. a rotated valley, which matters for coordinate-wise methods
    such as Adam. One compiled ``lax.scan``, reused by every optimizer of the same kind.
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    h = np.asarray(_checks.finite_array("hessian", hessian, ndim=2), dtype=float)
    if h.shape[0] != h.shape[1] or not np.allclose(h, h.T):
        raise ValueError(f"hessian must be a symmetric square matrix, got shape {h.shape}")
    w0 = _checks.finite_array("w0", w0, ndim=1)
    if w0.shape != (h.shape[0],):
        raise ValueError(f"w0 must have shape ({h.shape[0]},), got {w0.shape}")
    steps = _checks.positive_int("steps", steps)
    w0 = jnp.asarray(w0, jnp.float32)
    _, _, ws = train.optimize(optimizer, w0, _matrix_gradient, steps=steps, args=(jnp.asarray(h, jnp.float32),))
    return np.concatenate([np.asarray(w0)[None], np.asarray(ws)])


def rotated_valley(eigenvalues: Any, degrees: float) -> np.ndarray:
    r"""The 2x2 Hessian :math:`R\,\mathrm{diag}(\lambda)\,R^\top` of a valley rotated by ``degrees``."""
    lam = _eigenvalues(eigenvalues)
    if lam.shape != (2,):
        raise ValueError(f"eigenvalues must hold two values, got shape {lam.shape}")
    t = np.deg2rad(float(degrees))
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return r @ np.diag(lam) @ r.T
