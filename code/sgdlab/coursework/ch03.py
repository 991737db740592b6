"""Checks for the coding exercises of Chapter 3, *Martingales*."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from .. import martingales
from . import Case, CheckResult, check_function, refuse_package_call


def _rs_terms(x, eta, mu, sigma):
    """Independent reference: b and c read off the exact one-step mean, computed by Gauss–Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(8)       # E over xi ~ N(0, 1), exact for polynomials
    x_next = (1 - eta * mu) * x - eta * sigma * nodes
    mean_next = np.sum(weights * 0.5 * mu * x_next**2) / np.sqrt(2 * np.pi)
    c = 0.5 * mu * eta**2 * sigma**2                             # the rise at the minimum x = 0
    return np.array([0.5 * mu * x**2 - mean_next + c, c])


def check_rs_terms(student_fn: Callable) -> CheckResult:
    """Exercise 3.1: ``student_fn(x, eta, mu, sigma)`` returns (b, c) of the Robbins–Siegmund form."""
    cases = [
        Case((1.0, 0.1, 1.0, 1.0), label="x=1, eta=0.1, mu=1, sigma=1"),
        Case((-2.0, 0.5, 2.0, 0.3), label="x=-2, eta=0.5, mu=2 (eta*mu = 1)"),
        Case((0.0, 0.2, 1.0, 1.0), label="at the minimum: b = 0, c > 0"),
        Case((3.0, 0.01, 0.5, 0.0), label="no noise: c = 0"),
    ]

    def student(*args):
        return np.asarray(student_fn(*args), dtype=float).reshape(-1)

    return check_function("Exercise 3.1 (Robbins–Siegmund terms)", student, _rs_terms, cases, rtol=1e-6, atol=1e-12)


def _clipped_step_change(w, y, eta, batch_size, clip):
    y = np.asarray(y, dtype=np.float64)
    c = np.clip(w - y, -clip, clip)
    h, v = c.mean(), c.var()
    return -eta * (w - y.mean()) * h + 0.5 * eta**2 * (h**2 + v / batch_size)


def check_clipped_step_change(student_fn: Callable) -> CheckResult:
    """Exercise 3.2: ``student_fn(w, y, eta, batch_size, clip)`` is E[X_next] - X for a clipped step.

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


def check_measure_rho(student_fn: Callable, n_paths: int = 20000) -> CheckResult:
    r"""Exercise 3.3 (an experiment): ``student_fn(key, mu, s, eta, n_paths)`` measures :math:`\mathbb E f(x_1)/f(x_0)`.

    Each measurement must lie within 4 standard errors of
    :math:`\rho=(1-\eta\mu)^2+\eta^2\mu^2s^2`; the standard error comes from the exact variance of
    :math:`u^2`, :math:`u = a+b\xi` (:math:`\operatorname{Var}u^2 = 4a^2b^2+2b^4`). An answer that
    returns :math:`\rho` itself for every key, or that calls the package's simulator, is refused.
    """
    name = "Exercise 3.3 (measure the contraction rho)"
    refused = refuse_package_call(name, student_fn, martingales.multiplicative_noise_paths)
    if refused is not None:
        return refused
    cases = [(1.0, 1.0, 0.5), (2.0, 0.5, 0.3), (1.0, 2.0, 0.2), (0.5, 0.0, 1.0)]
    lines, exact_hits = [], 0
    for k, (mu, s, eta) in enumerate(cases):
        label = f"mu={mu}, s={s}, eta={eta}"
        try:
            got = float(np.asarray(student_fn(jax.random.key(100 + k), mu, s, eta, n_paths)))
        except NotImplementedError:
            return CheckResult(name, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
        except Exception as exc:  # the student's error, shown to them
            return CheckResult(name, False, [f"{label}: your function raised {type(exc).__name__}: {exc}"])
        a, b = 1 - eta * mu, -eta * mu * s
        rho = a**2 + b**2
        se = np.sqrt((4 * a**2 * b**2 + 2 * b**4) / n_paths)
        exact_hits += int(se > 0 and abs(got - rho) < 1e-9)
        if not abs(got - rho) <= 4 * se + 1e-9:
            return CheckResult(name, False, lines + [f"{label}: measured {got:.5f}, theory {rho:.5f} ± {se:.5f} "
                                                      f"(1 s.e.): more than 4 standard errors apart"])
        lines.append(f"{label}: measured {got:.5f}, theory {rho:.5f} ± {se:.5f}: ok")
    if exact_hits >= 2:
        return CheckResult(name, False, ["your function returns the formula exactly: simulate the step and "
                                         "average, the point is to see the measurement scatter around rho"])
    return CheckResult(name, True, lines)
