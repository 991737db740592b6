"""Checks for the coding exercises of Chapter 7, *The geometry of gradient noise*."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from .. import sde
from . import Case, CheckResult, check_function, judge_measurement


def check_stationary_variance(student_fn: Callable) -> CheckResult:
    """Exercise 7.1: ``student_fn(lam, c, eta, batch_size)``, the stationary variance of 1-D SGD.

    The reference is SciPy's discrete Lyapunov solver on 1x1 matrices (``sde.stationary_covariance``),
    not the closed form the student derives.
    """
    cases = [
        Case((1.0, 1.0, 0.1, 1), label="lambda = 1, c = 1, eta = 0.1, B = 1"),
        Case((4.0, 0.5, 0.45, 8), label="eta * lambda = 1.8, close to the stability limit"),
        Case((0.01, 3.0, 1.0, 32), label="a flat direction, lambda = 0.01"),
        Case((2.0, 2.0, 0.001, 4), label="a tiny step: nearly Mandt's continuous answer"),
    ]

    def reference(lam, c, eta, b):
        return float(sde.stationary_covariance([[lam]], [[c]], eta, b)[0, 0])

    return check_function("Exercise 7.1 (stationary variance)", student_fn, reference, cases, rtol=1e-6, atol=0)


def check_anisotropy_gain(student_fn: Callable) -> CheckResult:
    """Exercise 7.2: ``student_fn(eigenvalues)`` returns :math:`D\\operatorname{tr}(H^2)/(\\operatorname{tr}H)^2`.

    The reference builds a rotated dense Hessian with those eigenvalues and compares the loss
    rises :math:`\\operatorname{tr}(H\\Sigma)` of noise :math:`\\Sigma = H` and of isotropic noise of
    the same trace (Zhu et al. 2019).
    """
    rng = np.random.default_rng(7)
    cases = [
        Case((np.ones(5),), label="equal eigenvalues: no gain"),
        Case((1.0 / np.arange(1, 101),), label="lambda_i = 1/i, D = 100"),
        Case((np.r_[np.ones(3), np.zeros(97)],), label="3 curved directions out of 100"),
        Case((rng.exponential(size=20),), label="20 random eigenvalues"),
    ]

    def reference(eigenvalues):
        lam = np.asarray(eigenvalues, np.float64)
        q, _ = np.linalg.qr(rng.normal(size=(lam.size, lam.size)))
        h = q @ np.diag(lam) @ q.T
        sigma_iso = np.trace(h) / lam.size * np.eye(lam.size)
        return np.trace(h @ h) / np.trace(h @ sigma_iso)

    return check_function("Exercise 7.2 (gain of anisotropic noise)", student_fn, reference, cases, rtol=1e-6)


def check_one_step_rise(student_fn: Callable) -> CheckResult:
    """Exercise 7.3 (an experiment): ``student_fn(key, hessian, sigma, eta, n_draws)`` -> ``(mean, se)``.

    The student's Monte-Carlo mean of the loss after one noisy step from the minimum must agree
    with :math:`\\frac{\\eta^2}2\\operatorname{tr}(H\\Sigma)` within four of the student's standard
    errors, and the standard error must be plausible (within a factor 2 of the exact one).
    """
    exercise = "Exercise 7.3 (one step from the minimum)"
    rng = np.random.default_rng(3)
    lines = []
    for k, (d, eta) in enumerate([(3, 0.5), (6, 0.1)]):
        m = rng.normal(size=(d, d))
        h = m @ m.T / d + 0.1 * np.eye(d)
        s = rng.normal(size=(d, d))
        sigma = s @ s.T / d
        n_draws = 20000
        try:
            mean, se = student_fn(jax.random.key(100 + k), h, sigma, eta, n_draws)
            mean, se = float(mean), float(se)
        except NotImplementedError:
            return CheckResult(exercise, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
        except Exception as exc:  # the student's error, shown to them
            return CheckResult(exercise, False, [f"case {k + 1}: your function raised {type(exc).__name__}: {exc}"])
        theory = 0.5 * eta**2 * np.trace(h @ sigma)
        # Var of (eta^2/2) xi^T H xi for Gaussian xi: (eta^4/2) tr((H Sigma)^2)
        exact_se = np.sqrt(0.5 * eta**4 * np.trace(h @ sigma @ h @ sigma) / n_draws)
        label = f"case {k + 1} (d = {d}, eta = {eta})"
        ok, line = judge_measurement(label, mean, se, theory, exact_se)
        if not ok:
            return CheckResult(exercise, False, lines + [line])
        lines.append(line)
    return CheckResult(exercise, True, lines)
