"""Checks for the coding exercises of Chapter 6, *Batch size and learning-rate scaling*.

The references are independent of the answers' package functions: McAllester's average form of
momentum run beside ``optax.sgd``, a numerical maximisation of the guaranteed decrease, the
warmup formula, and the closed form of SGD's error on a noisy quadratic.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import optimize

from .. import scaling
from . import Case, CheckResult, check_function, refuse_package_call

_STREAM = np.random.default_rng(6).normal(size=(120, 3))


def _heavy_ball_path(lr: float, momentum: float) -> np.ndarray:
    """Parameters after each gradient of a fixed stream under ``optax.sgd(lr, momentum=momentum)``."""
    tx = optax.sgd(float(lr), momentum=float(momentum))
    w, state, path = jnp.zeros(3), tx.init(jnp.zeros(3)), []
    for g in _STREAM:
        update, state = tx.update(jnp.asarray(g, jnp.float32), state, w)
        w = w + update
        path.append(np.asarray(w))
    return np.array(path)


def _average_form_path(eta_prime_1: float, n_1: float, batch_size: int) -> np.ndarray:
    """McAllester's form with N_B = N_1 / B and eta'_B = B eta'_1: m <- (1 - 1/N) m + g / N, w <- w - eta' m."""
    n, eta_prime = n_1 / batch_size, batch_size * eta_prime_1
    w, m, path = np.zeros(3), np.zeros(3), []
    for g in _STREAM:
        m = (1 - 1 / n) * m + g / n
        w = w - eta_prime * m
        path.append(w.copy())
    return np.array(path)


def check_momentum_for_batch(student_fn: Callable) -> CheckResult:
    """Exercise 6.1: ``student_fn(eta_prime_1, n_1, batch_size)`` -> ``(learning_rate, momentum)`` for ``optax.sgd``."""
    exercise = "Exercise 6.1 (momentum at a larger batch)"
    refused = refuse_package_call(exercise, student_fn, scaling.optax_momentum, scaling.momentum_horizon)
    if refused is not None:
        return refused

    def run_student(eta_prime_1, n_1, batch_size):
        out = student_fn(eta_prime_1, n_1, batch_size)
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise TypeError("return a pair (learning_rate, momentum)")
        return _heavy_ball_path(*out)

    cases = [
        Case((0.01, 32.0, 1), label="batch 1 (nothing to scale)"),
        Case((0.01, 32.0, 4), label="eta'_1=0.01, N_1=32, B=4"),
        Case((0.2, 100.0, 10), label="eta'_1=0.2, N_1=100, B=10"),
        Case((0.05, 64.0, 32), label="eta'_1=0.05, N_1=64, B=32 (N_B = 2)"),
    ]
    return check_function(exercise, run_student, _average_form_path, cases, rtol=1e-4, atol=1e-6)


def _numerical_optimum(g: float, sigma: float, curvature: float) -> tuple[float, float]:
    """(B*, eta*) by maximising the guaranteed decrease per example over B >= 4 sigma^2/g^2, eta >= 0."""
    c = 2 * sigma / abs(g)

    def neg_per_example(log_b):  # the best eta at each B is (1 - c / sqrt(B)) / curvature
        b = math.exp(log_b)
        eta = max(0.0, 1 - c / math.sqrt(b)) / curvature
        return -(eta * abs(g) * (abs(g) - c * abs(g) / math.sqrt(b)) - 0.5 * curvature * eta**2 * g**2) / b

    res = optimize.minimize_scalar(neg_per_example, bounds=(2 * math.log(c), 2 * math.log(c) + 12),
                                   method="bounded", options=dict(xatol=1e-12))
    b_star = math.exp(res.x)
    return b_star, (1 - c / math.sqrt(b_star)) / curvature


def check_mcallester_b_and_eta(student_fn: Callable) -> CheckResult:
    """Exercise 6.2: ``student_fn(g, sigma, curvature, batch_size)`` -> ``(B_star, eta_B)``."""
    exercise = "Exercise 6.2 (McAllester's batch size and rate)"
    refused = refuse_package_call(exercise, student_fn, scaling.mcallester_batch_size, scaling.mcallester_rate,
                                  scaling.bound_optimal_rate)
    if refused is not None:
        return refused
    cases = [
        Case((0.3, 2.0, 4.0, 8), label="g=0.3, sigma=2, curvature 4, B=8"),
        Case((-0.5, 1.0, 1.0, 1), label="negative gradient, B=1"),
        Case((0.25, 1.0, 1.0, 256), label="B = B* (eta = 1/(2 curvature))"),
        Case((1.0, 0.5, 2.0, 100), label="B > B* (capped at 1/(2 curvature))"),
    ]

    def reference(g, sigma, curvature, batch_size):
        b_star, eta_star = _numerical_optimum(g, sigma, curvature)
        return b_star, min(batch_size / b_star, 1.0) * eta_star

    return check_function(exercise, student_fn, reference, cases, rtol=1e-5)


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


def check_noise_floor(student_fn: Callable) -> CheckResult:
    r"""Exercise 6.4: ``student_fn(eta, batch_size, sigma, curvature, steps, key)`` returns final errors of 4000 chains.

    Their mean square must agree within four standard errors with
    :math:`\frac{\eta^2\sigma^2}{B}\frac{1-a^{2T}}{1-a^2}`, :math:`a = 1 - \Lambda\eta` (written out here).
    """
    exercise = "Exercise 6.4 (a noise floor, measured)"
    refused = refuse_package_call(exercise, student_fn, scaling.quadratic_sgd_error)
    if refused is not None:
        return refused
    settings = [(0.1, 1, 1.0, 1.0, 200), (0.1, 8, 1.0, 1.0, 200), (0.02, 4, 2.0, 3.0, 300), (0.05, 2, 1.0, 1.0, 5)]
    lines = []
    for i, (eta, b, sigma, curv, steps) in enumerate(settings):
        label = f"eta={eta}, B={b}, sigma={sigma}, curvature={curv}, {steps} steps"
        try:
            e = np.asarray(student_fn(eta, b, sigma, curv, steps, jax.random.key(40 + i)), dtype=float).ravel()
        except NotImplementedError:
            return CheckResult(exercise, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
        except Exception as exc:  # the student's error, shown to them
            return CheckResult(exercise, False, lines + [f"{label}: your function raised {type(exc).__name__}: {exc}"])
        if e.size < 1000 or not np.all(np.isfinite(e)):
            return CheckResult(exercise, False, lines + [f"{label}: expected 4000 finite final errors, got {e.size}"])
        a2 = (1 - curv * eta) ** 2
        exact = eta**2 * sigma**2 / b * (1 - a2**steps) / (1 - a2)
        sq = e**2
        se = sq.std(ddof=1) / math.sqrt(sq.size)
        if abs(sq.mean() - exact) > 4 * se:
            return CheckResult(exercise, False, lines + [
                f"{label}: mean of e_T^2 is {sq.mean():.5f} ± {se:.5f}, the closed form says {exact:.5f}"])
        lines.append(f"{label}: mean e_T^2 = {sq.mean():.5f} ± {se:.5f}, closed form {exact:.5f}: ok")
    return CheckResult(exercise, True, lines)
