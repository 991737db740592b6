"""Checks for the coding exercises of Chapter 2, *Convergence of SGD*.

The references do not call the package functions that are the answers: the noise floor is the
fixed point of the second-moment recursion iterated in NumPy, the learning curve that recursion
written out step by step, and the measured floor is compared with the closed form.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from .. import quadratic
from . import Case, CheckResult, check_function, refuse_package_call


def _iterated_floor(eta, mu, sigma):
    """The stationary E L of v <- (1 - eta mu)^2 v + eta^2 sigma^2, by iterating it to its fixed point."""
    v = 0.0
    for _ in range(200_000):
        v_new = (1 - eta * mu) ** 2 * v + eta**2 * sigma**2
        if v_new == v:
            break
        v = v_new
    return 0.5 * mu * v


def check_noise_floor(student_fn: Callable) -> CheckResult:
    """Exercise 2.1: ``student_fn(eta, mu, sigma)`` is the stationary E L of constant-step SGD."""
    exercise = "Exercise 2.1 (noise floor)"
    refused = refuse_package_call(exercise, student_fn, quadratic.noise_floor, quadratic.expected_loss)
    if refused is not None:
        return refused
    cases = [
        Case((0.1, 1.0, 1.0), label="eta=0.1, mu=1, sigma=1"),
        Case((0.01, 1.0, 2.0), label="small step: close to eta sigma^2 / 4"),
        Case((1.0, 1.0, 1.0), label="eta*mu = 1 (one step forgets the past)"),
        Case((0.5, 3.0, 0.5), label="eta=0.5, mu=3 (eta*mu = 1.5)"),
        Case((0.2, 2.0, 0.0), label="no noise: no floor"),
    ]
    return check_function(exercise, student_fn, _iterated_floor, cases, rtol=1e-6, atol=1e-12)


def _recursion(mu, sigma, w0, step_sizes):
    out, v = [0.5 * mu * w0**2], w0**2
    for eta in np.asarray(step_sizes, float):
        v = (1 - eta * mu) ** 2 * v + eta**2 * sigma**2
        out.append(0.5 * mu * v)
    return np.asarray(out)


def check_expected_loss(student_fn: Callable) -> CheckResult:
    """Exercise 2.2: ``student_fn(mu, sigma, w0, step_sizes)`` returns E L(w_k) for k = 0..T."""
    exercise = "Exercise 2.2 (exact learning curve)"
    refused = refuse_package_call(exercise, student_fn, quadratic.expected_loss, quadratic.simulate)
    if refused is not None:
        return refused
    rng = np.random.default_rng(0)
    cases = [
        Case((1.0, 1.0, 1.0, np.full(5, 0.1)), label="constant step 0.1, 5 steps"),
        Case((2.0, 0.5, -3.0, rng.uniform(0, 0.9, 20)), label="20 random steps"),
        Case((1.0, 1.0, 2.0, 1.0 / np.arange(1, 201)), label="eta_t = 1/t, 200 steps"),
        Case((1.0, 0.0, 1.0, np.full(10, 0.5)), label="no noise: pure contraction"),
    ]
    return check_function(exercise, student_fn, _recursion, cases, rtol=1e-4, atol=1e-7)


def check_measured_floor(student_fn: Callable) -> CheckResult:
    """Exercise 2.3 (an experiment): ``student_fn(key, eta, mu, sigma, steps, n_chains)`` simulates
    ``n_chains`` chains of constant-step SGD on mu w^2 / 2 with Gaussian gradient noise, from w = 0,
    and returns ``(mean, se)`` of L(w) after ``steps`` steps; the mean must agree with
    eta sigma^2 / (2 (2 - eta mu)) within four standard errors."""
    exercise = "Exercise 2.3 (measuring the noise floor)"
    refused = refuse_package_call(exercise, student_fn, quadratic.simulate, quadratic.noise_floor,
                                  quadratic.expected_loss, quadratic.mean_estimation_sgd)
    if refused is not None:
        return refused
    lines = []
    try:
        for eta, mu, sigma in [(0.1, 1.0, 1.0), (0.5, 2.0, 0.5), (0.05, 1.0, 2.0), (1.5, 1.0, 1.0)]:
            steps, n_chains = int(np.ceil(15 / (eta * mu * min(1.0, 2 - eta * mu)))), 4000
            label = f"eta={eta}, mu={mu}, sigma={sigma} ({steps} steps, {n_chains} chains)"
            out = student_fn(jax.random.key(int(100 * eta)), eta, mu, sigma, steps, n_chains)
            mean, se = (float(np.asarray(v)) for v in out)
            theory = eta * sigma**2 / (2 * (2 - eta * mu))
            if not (np.isfinite(mean) and np.isfinite(se)) or se <= 0:
                return CheckResult(exercise, False, lines + [f"{label}: return (mean, standard error) with a positive, finite standard error"])
            if se > 0.1 * theory:
                return CheckResult(exercise, False, lines + [f"{label}: the standard error {se:.3g} is large for a floor of {theory:.3g}: is it the error of the mean (std / sqrt(n_chains))?"])
            z = (mean - theory) / se
            if abs(z) > 4:
                return CheckResult(exercise, False, lines + [f"{label}: measured {mean:.4g} ± {se:.2g}, theory {theory:.4g} ({z:+.1f} standard errors)"])
            lines.append(f"{label}: measured {mean:.4g} ± {se:.2g}, theory {theory:.4g} ({z:+.1f} s.e.)")
    except NotImplementedError:
        return CheckResult(exercise, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
    except Exception as exc:
        return CheckResult(exercise, False, lines + [f"your function raised {type(exc).__name__}: {exc}"])
    return CheckResult(exercise, True, lines)
