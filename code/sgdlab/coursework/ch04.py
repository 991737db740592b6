"""Checks for the coding exercises of Chapter 4, *Running averages and momentum*."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import averaging, momentum
from . import Case, CheckResult, check_function, refuse_package_call


def _goh_by_band_edges(lam_max, lam_min):
    """Independent reference: the (alpha, beta) that put both extreme eigenvalues on the edges of the complex band.

    Solve :math:`\\alpha\\lambda_n = (1-\\sqrt\\beta)^2`, :math:`\\alpha\\lambda_1 = (1+\\sqrt\\beta)^2` for
    :math:`(\\sqrt\\alpha, \\sqrt\\beta)`: two linear equations in the square roots.
    """
    a = np.array([[np.sqrt(lam_min), 1.0], [np.sqrt(lam_max), -1.0]])   # sqrt(alpha lam) = 1 -+ sqrt(beta) ...
    # ... with unknowns (sqrt(alpha), sqrt(beta)): sqrt(alpha) sqrt(lam_min) + sqrt(beta) = 1,
    #                                              sqrt(alpha) sqrt(lam_max) - sqrt(beta) = 1
    root_alpha, root_beta = np.linalg.solve(a, np.ones(2))
    return np.array([root_alpha**2, root_beta**2])


def check_goh_parameters(student_fn: Callable) -> CheckResult:
    """Exercise 4.1: ``student_fn(lam_max, lam_min)`` returns the optimal heavy-ball ``(alpha, beta)``."""
    name = "Exercise 4.1 (optimal step and momentum)"
    refused = refuse_package_call(name, student_fn, momentum.goh_parameters)
    if refused is not None:
        return refused
    cases = [
        Case((100.0, 1.0), label="kappa = 100"),
        Case((4.0, 1.0), label="lam_max = 4, lam_min = 1"),
        Case((2.5, 0.01), label="lam_max = 2.5, lam_min = 0.01"),
        Case((3.0, 3.0), label="kappa = 1 (no momentum needed)"),
    ]
    return check_function(name, lambda a, b: np.asarray(student_fn(a, b), float).reshape(-1),
                          _goh_by_band_edges, cases, rtol=1e-6, atol=1e-9)


def _adam_by_weights(xs, beta):
    """Independent reference: the weighted sum :math:`\\sum_s(1-\\beta)\\beta^{t-s}x_s/(1-\\beta^t)` as a matrix product."""
    xs = np.asarray(xs, np.float64)
    t = np.arange(1, xs.size + 1)
    age = t[:, None] - t[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(age >= 0, (1 - beta) * np.power(beta, np.maximum(age, 0)), 0.0)
    if beta == 0:
        w = np.eye(xs.size)
    return (w @ xs) / (1 - beta**t)


def check_adam_corrected_ema(student_fn: Callable) -> CheckResult:
    """Exercise 4.2: ``student_fn(xs, beta)`` returns Adam's bias-corrected EMA of a 1-D stream, one value per step."""
    name = "Exercise 4.2 (Adam's bias correction)"
    refused = refuse_package_call(name, student_fn, averaging.running_averages)
    if refused is not None:
        return refused
    rng = np.random.default_rng(4)
    cases = [
        Case((np.ones(5), 0.9), label="a constant stream of ones, beta = 0.9"),
        Case((rng.normal(2.0, 1.0, 50), 0.95), label="50 noisy values around 2, beta = 0.95"),
        Case((np.arange(1.0, 31.0), 0.5), label="a ramp 1..30, beta = 0.5"),
        Case((rng.normal(size=20), 0.0), label="beta = 0: the estimate is the latest value"),
    ]
    return check_function(name, student_fn, _adam_by_weights, cases, rtol=1e-4, atol=1e-5)


def _nesterov_radius(lambdas, alpha, beta):
    r"""Largest root modulus of :math:`x^2-(1+\beta)(1-\alpha\lambda)x+\beta(1-\alpha\lambda)` (``numpy.roots``)."""
    q = 1 - alpha * np.asarray(lambdas, float)
    return max(np.abs(np.roots([1.0, -(1 + beta) * qi, beta * qi])).max() for qi in q)


def check_nesterov_rate(student_fn: Callable) -> CheckResult:
    r"""Exercise 4.3 (an experiment): ``student_fn(lambdas, alpha, beta, start, stop)`` measures Nesterov's rate.

    The measurement must agree within 2 % with the theory: :math:`1-2/\sqrt{3\kappa+1}` at Lessard
    et al.'s tuning, :math:`1-1/\sqrt\kappa` at the textbook tuning, and the largest root modulus
    (``numpy.roots``) at a large step where Nesterov and the heavy ball differ by 6 %. Calling the
    package's closed-form rate instead of measuring is refused.
    """
    name = "Exercise 4.3 (measure the Nesterov rate)"
    refused = refuse_package_call(name, student_fn, momentum.nesterov_rate, momentum.nesterov_roots)
    if refused is not None:
        return refused
    cases = []
    for kappa in (100.0, 50.0):
        lam = np.geomspace(kappa, 1.0, 20)
        root = np.sqrt(3 * kappa + 1)
        cases.append((f"kappa = {kappa:g}, Lessard et al. tuning", lam, 4 / (3 * kappa + 1), (root - 2) / (root + 2),
                      (150, 350), 1 - 2 / root))
        cases.append((f"kappa = {kappa:g}, textbook tuning", lam, 1 / kappa,
                      (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1), (150, 350), 1 - 1 / np.sqrt(kappa)))
    lam10 = np.geomspace(10.0, 1.0, 20)
    cases.append(("kappa = 10, alpha = 0.12, beta = 0.5 (heavy ball would give 0.707)", lam10, 0.12, 0.5,
                  (20, 60), _nesterov_radius(lam10, 0.12, 0.5)))
    lines = []
    for label, lam, alpha, beta, (start, stop), theory in cases:
        try:
            got = float(np.asarray(student_fn(lam, alpha, beta, start, stop)))
        except NotImplementedError:
            return CheckResult(name, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
        except Exception as exc:  # the student's error, shown to them
            return CheckResult(name, False, [f"{label}: your function raised {type(exc).__name__}: {exc}"])
        if not abs(got / theory - 1) <= 0.02:
            return CheckResult(name, False, lines + [f"{label}: measured {got:.5f}, theory {theory:.5f}: "
                                                      f"more than 2 % apart"])
        lines.append(f"{label}: measured {got:.5f}, theory {theory:.5f}: ok")
    return CheckResult(name, True, lines)
