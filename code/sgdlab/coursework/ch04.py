"""Checks for the coding exercises of Chapter 4, *Running averages and momentum*."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import averaging, momentum
from . import Case, CheckResult, check_function


def check_goh_parameters(student_fn: Callable) -> CheckResult:
    """Exercise 4.1: ``student_fn(lam_max, lam_min)`` returns the optimal heavy-ball ``(alpha, beta)``."""
    cases = [
        Case((100.0, 1.0), label="kappa = 100"),
        Case((4.0, 1.0), label="lam_max = 4, lam_min = 1"),
        Case((2.5, 0.01), label="lam_max = 2.5, lam_min = 0.01"),
        Case((3.0, 3.0), label="kappa = 1 (no momentum needed)"),
    ]
    return check_function("Exercise 4.1 (optimal step and momentum)", student_fn,
                          lambda a, b: np.array(momentum.goh_parameters(a, b)), cases, rtol=1e-6, atol=1e-9)


def check_adam_corrected_ema(student_fn: Callable) -> CheckResult:
    """Exercise 4.2: ``student_fn(xs, beta)`` returns Adam's bias-corrected EMA of a 1-D stream, one value per step."""
    rng = np.random.default_rng(4)
    cases = [
        Case((np.ones(5), 0.9), label="a constant stream of ones, beta = 0.9"),
        Case((rng.normal(2.0, 1.0, 50), 0.95), label="50 noisy values around 2, beta = 0.95"),
        Case((np.arange(1.0, 31.0), 0.5), label="a ramp 1..30, beta = 0.5"),
        Case((rng.normal(size=20), 0.0), label="beta = 0: the estimate is the latest value"),
    ]

    def reference(xs, beta):
        return np.asarray(averaging.running_averages(np.asarray(xs, np.float32), beta)["adam"])

    return check_function("Exercise 4.2 (Adam's bias correction)", student_fn, reference, cases, rtol=1e-4, atol=1e-5)
