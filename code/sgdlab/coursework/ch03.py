"""Checks for the coding exercises of Chapter 3, *Martingales*."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import Case, CheckResult, check_function


def _rs_terms(x, alpha, mu, sigma):
    f = 0.5 * mu * x**2
    return np.array([alpha * mu * (2 - alpha * mu) * f, 0.5 * mu * alpha**2 * sigma**2])


def check_rs_terms(student_fn: Callable) -> CheckResult:
    """Exercise 3.1: ``student_fn(x, alpha, mu, sigma)`` returns (B, C) of the Robbins–Siegmund form."""
    cases = [
        Case((1.0, 0.1, 1.0, 1.0), label="x=1, alpha=0.1, mu=1, sigma=1"),
        Case((-2.0, 0.5, 2.0, 0.3), label="x=-2, alpha=0.5, mu=2 (alpha*mu = 1)"),
        Case((0.0, 0.2, 1.0, 1.0), label="at the minimum: B = 0, C > 0"),
        Case((3.0, 0.01, 0.5, 0.0), label="no noise: C = 0"),
    ]

    def student(*args):
        return np.asarray(student_fn(*args), dtype=float).reshape(-1)

    return check_function("Exercise 3.1 (Robbins–Siegmund terms)", student, _rs_terms, cases, rtol=1e-6, atol=1e-12)


def _clipped_step_change(beta, y, alpha, batch_size, clip):
    y = np.asarray(y, dtype=np.float64)
    c = np.clip(beta - y, -clip, clip)
    h, v = c.mean(), c.var()
    return -alpha * (beta - y.mean()) * h + 0.5 * alpha**2 * (h**2 + v / batch_size)


def check_clipped_step_change(student_fn: Callable) -> CheckResult:
    """Exercise 3.2: ``student_fn(beta, y, alpha, batch_size, clip)`` is E[X_next] - X for a clipped step.

    The reference formula is itself checked against a Monte-Carlo simulation in
    ``tests/test_martingales.py``.
    """
    rng = np.random.default_rng(3)
    skewed = rng.exponential(2.0, size=200)
    symmetric = rng.normal(size=101)
    cases = [
        Case((1.5, skewed, 0.2, 4, 1.0), label="skewed data, between the optimum and the Huber point"),
        Case((0.0, skewed, 0.1, 1, 0.5), label="far from the optimum, B=1"),
        Case((float(skewed.mean()), skewed, 0.3, 8, 1.0), label="at the optimum"),
        Case((0.3, symmetric, 0.2, 4, 100.0), label="clip so large it never acts (unbiased step)"),
    ]
    return check_function("Exercise 3.2 (one clipped step)", student_fn, _clipped_step_change, cases,
                          rtol=1e-6, atol=1e-10)
