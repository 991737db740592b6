"""Checks for the coding exercises of Chapter 6, *Batch size and learning-rate scaling*."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import scaling
from . import Case, CheckResult, check_function


def check_momentum_for_batch(student_fn: Callable) -> CheckResult:
    """Exercise 6.1: ``student_fn(eta_prime_1, n_mu_1, batch_size)`` -> ``(learning_rate, momentum)`` for ``optax.sgd``."""
    cases = [
        Case((0.01, 32.0, 1), label="batch 1 (nothing to scale)"),
        Case((0.01, 32.0, 4), label="eta'_1=0.01, N_1=32, B=4"),
        Case((0.2, 100.0, 10), label="eta'_1=0.2, N_1=100, B=10"),
        Case((0.05, 64.0, 64), label="B = N_1 (momentum 0)"),
    ]

    def reference(eta_prime_1, n_mu_1, batch_size):
        return scaling.optax_momentum(eta_prime_1, n_mu_1, batch_size)

    return check_function("Exercise 6.1 (momentum at a larger batch)", student_fn, reference, cases, rtol=1e-6)


def check_mcallester_b_and_eta(student_fn: Callable) -> CheckResult:
    """Exercise 6.2: ``student_fn(g, sigma, curvature, batch_size)`` -> ``(B_star, eta_B)``."""
    cases = [
        Case((0.3, 2.0, 4.0, 8), label="g=0.3, sigma=2, L=4, B=8"),
        Case((-0.5, 1.0, 1.0, 1), label="negative gradient, B=1"),
        Case((0.25, 1.0, 1.0, 64), label="B = B* (eta = 1/(2L))"),
        Case((1.0, 0.5, 2.0, 100), label="B > B* (capped at 1/(2L))"),
    ]

    def reference(g, sigma, curvature, batch_size):
        b_star = scaling.mcallester_batch_size(g, sigma)
        if batch_size >= b_star:
            return b_star, 1 / (2 * curvature)
        return b_star, scaling.mcallester_rate(batch_size, g, sigma, curvature)

    return check_function("Exercise 6.2 (McAllester's batch size and rate)", student_fn, reference, cases, rtol=1e-6)


def check_goyal_schedule(student_fn: Callable) -> CheckResult:
    """Exercise 6.3: ``student_fn(base_lr, k, warmup_steps)`` returns an Optax schedule (linear ramp, then constant)."""
    steps = np.array([0, 1, 5, 10, 19, 20, 21, 50, 500])

    def evaluate(fn):
        def values(base_lr, k, warmup_steps):
            schedule = fn(base_lr, k, warmup_steps)
            if not callable(schedule):
                raise TypeError("the function must return a schedule: a callable of the step count")
            return np.array([float(schedule(int(t))) for t in steps])
        return values

    def reference(base_lr, k, warmup_steps):
        return base_lr + (k - 1) * base_lr * np.minimum(steps, warmup_steps) / warmup_steps

    cases = [
        Case((0.1, 8, 20), label="base 0.1, k=8, 20 warmup steps"),
        Case((0.02, 32, 10), label="base 0.02, k=32, 10 warmup steps"),
        Case((1.0, 1, 5), label="k=1 (no warmup)"),
    ]
    return check_function("Exercise 6.3 (Goyal's warmup)", evaluate(student_fn), reference, cases, rtol=1e-5)
