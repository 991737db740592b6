"""Checks for the coding exercises of Chapter 11, *Interpolation and exponential convergence*.

Each reference is computed another way than the displayed formula the student transcribes:
the Kaczmarz rate from the averaged projection map, :math:`\\eta^*(m)` by minimising Ma, Bassily
and Belkin's bound numerically, and the measured one-step contraction from the exact average of
the projected error over the row distribution.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from scipy.optimize import minimize_scalar

from . import Case, CheckResult, check_function


def _matrices() -> list[Case]:
    rng = np.random.default_rng(11)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    spread = rng.normal(size=(30, 6)) * rng.uniform(0.1, 3.0, size=(30, 1))
    with_zero_row = rng.normal(size=(12, 4))
    with_zero_row[3] = 0.0
    return [
        Case((np.array([[1.0, 0.0], [1.0, 1.0]]),), label="A = [[1, 0], [1, 1]]"),
        Case((q,), label="an orthogonal 5 x 5 matrix (rate 1 - 1/5)"),
        Case((rng.normal(size=(40, 8)),), label="a Gaussian 40 x 8 matrix"),
        Case((spread,), label="30 rows with norms spread over a factor 30"),
        Case((with_zero_row,), label="a matrix with a zero row"),
    ]


def _averaged_projection_rate(A) -> float:
    """Largest eigenvalue of E_i[I - a_i a_i^T/||a_i||^2] with p_i = ||a_i||^2/||A||_F^2 (full column rank)."""
    A = np.asarray(A, np.float64)
    sq = np.sum(A**2, axis=1)
    keep = sq > 0
    p = sq[keep] / sq.sum()
    projections = np.einsum("ri,rj->rij", A[keep], A[keep]) / sq[keep, None, None]
    averaged = np.einsum("r,rij->ij", p, np.eye(A.shape[1])[None] - projections)
    return float(np.linalg.eigvalsh(averaged).max())


def check_kaczmarz_rate(student_fn: Callable) -> CheckResult:
    """Exercise 11.1: ``student_fn(A)`` returns Strohmer and Vershynin's rate 1 - sigma_min^2/||A||_F^2."""
    return check_function("Exercise 11.1 (the Kaczmarz rate)", student_fn, _averaged_projection_rate, _matrices(),
                          rtol=1e-6, atol=1e-9)


def _brute_force_step(m, beta, lam_max, lam_min) -> float:
    """The step minimising max over {lam_1, lam_k} of 1 - 2 eta l + eta^2 l (beta + (m-1) l)/m, numerically."""
    def bound(eta):
        return max(1 - 2 * eta * lam + eta**2 * lam * (beta + (m - 1) * lam) / m for lam in (lam_max, lam_min))

    upper = 4 * m / beta  # the bound exceeds 1 beyond 2m/(beta + (m-1) lam) <= 2m/beta
    return float(minimize_scalar(bound, bounds=(0.0, upper), method="bounded", options={"xatol": 1e-12}).x)


def check_optimal_rate(student_fn: Callable) -> CheckResult:
    """Exercise 11.2: ``student_fn(m, beta, lam_max, lam_min)`` returns Ma, Bassily and Belkin's eta*(m)."""
    cases = [
        Case((1, 1.0, 0.1, 0.02), label="m = 1 (eta* = 1/beta)"),
        Case((5, 1.0, 0.1, 0.02), label="m = 5, below m* = 13.5"),
        Case((13, 1.0, 0.1, 0.02), label="m = 13, just below m*"),
        Case((40, 1.0, 0.1, 0.02), label="m = 40, beyond m*"),
        Case((1000, 2.0, 0.5, 0.01), label="m = 1000: close to gradient descent's 2/(lam_1 + lam_k)"),
        Case((3, 4.0, 0.3, 0.3), label="lam_1 = lam_k (m* infinite)"),
    ]
    return check_function("Exercise 11.2 (Ma, Bassily and Belkin's optimal step)", student_fn, _brute_force_step,
                          cases, rtol=1e-4, atol=1e-9)


def _exact_one_step(A, x_star, x0, key) -> float:
    """E||x_1 - x*||^2 / ||x_0 - x*||^2, averaged exactly over the rows (the key is not needed)."""
    A, x_star, x0 = (np.asarray(v, np.float64) for v in (A, x_star, x0))
    e = x0 - x_star
    sq = np.sum(A**2, axis=1)
    projected = e[None, :] - (A @ e / sq)[:, None] * A
    return float((sq / sq.sum()) @ np.sum(projected**2, axis=1) / (e @ e))


def check_one_step_contraction(student_fn: Callable) -> CheckResult:
    """Exercise 11.3: ``student_fn(A, x_star, x0, key)`` measures E||x_1 - x*||^2/||x_0 - x*||^2 by simulation."""
    rng = np.random.default_rng(12)
    A1 = rng.normal(size=(30, 5)) * rng.uniform(0.3, 2.0, size=(30, 1))
    A2 = rng.normal(size=(60, 10))
    cases = [
        Case((A1, np.ones(5), np.zeros(5), jax.random.key(0)), label="30 x 5, x0 = 0, x* = 1"),
        Case((A2, rng.normal(size=10), rng.normal(size=10), jax.random.key(1)), label="60 x 10, random x0 and x*"),
    ]
    # 10^4 chains measure the ratio to well within 3 % (its relative standard error is below 0.5 %)
    return check_function("Exercise 11.3 (measuring one Kaczmarz step)", student_fn, _exact_one_step, cases,
                          rtol=0.03, atol=0.0)
