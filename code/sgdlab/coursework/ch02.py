"""Checks for the coding exercises of Chapter 2, *Convergence of SGD*."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import quadratic
from . import Case, CheckResult, check_function


def check_noise_floor(student_fn: Callable) -> CheckResult:
    """Exercise 2.1: ``student_fn(alpha, mu, sigma)`` is the stationary E f of constant-step SGD."""
    cases = [
        Case((0.1, 1.0, 1.0), label="alpha=0.1, mu=1, sigma=1"),
        Case((0.01, 1.0, 2.0), label="small step: close to alpha sigma^2 / 4"),
        Case((1.0, 1.0, 1.0), label="alpha*mu = 1 (one step forgets the past)"),
        Case((0.5, 3.0, 0.5), label="alpha=0.5, mu=3 (alpha*mu = 1.5)"),
        Case((0.2, 2.0, 0.0), label="no noise: no floor"),
    ]
    return check_function("Exercise 2.1 (noise floor)", student_fn, quadratic.noise_floor, cases, rtol=1e-6, atol=1e-12)


def check_expected_loss(student_fn: Callable) -> CheckResult:
    """Exercise 2.2: ``student_fn(mu, sigma, x0, step_sizes)`` returns E f(x_k) for k = 0..T."""
    rng = np.random.default_rng(0)
    cases = [
        Case((1.0, 1.0, 1.0, np.full(5, 0.1)), label="constant step 0.1, 5 steps"),
        Case((2.0, 0.5, -3.0, rng.uniform(0, 0.9, 20)), label="20 random steps"),
        Case((1.0, 1.0, 2.0, quadratic.harmonic_steps(1.0, 200)), label="alpha_t = 1/t, 200 steps"),
        Case((1.0, 0.0, 1.0, np.full(10, 0.5)), label="no noise: pure contraction"),
    ]

    def reference(mu, sigma, x0, step_sizes):
        return quadratic.expected_loss(mu, sigma, x0, step_sizes)

    return check_function("Exercise 2.2 (exact learning curve)", student_fn, reference, cases, rtol=1e-4, atol=1e-7)
