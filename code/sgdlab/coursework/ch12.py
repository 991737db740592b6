"""Checks for the coding exercises of Chapter 12, *Data parallelism and distributed SGD*."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..optim.delayed import stability_limit
from . import Case, CheckResult, check_function, refuse_package_call


def _root_radius(x: float, tau: int) -> float:
    r"""Largest modulus of the roots of :math:`z^{\tau+1} - z^\tau + x` (``numpy.roots``): the per-step factor."""
    coeffs = np.zeros(tau + 2)
    coeffs[0], coeffs[1] = 1.0, -1.0
    coeffs[-1] += x
    return float(np.abs(np.roots(coeffs)).max())


def _limit_by_bisection(tau: float) -> float:
    """Independent reference: the largest stable x, where the root radius crosses 1, by bisection on ``numpy.roots``."""
    tau = int(tau)
    lo, hi = 1e-9, 2.0  # stable at lo; at x = 2 every delay is unstable (z = -1 for tau = 0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _root_radius(mid, tau) < 1.0 else (lo, mid)
    return 0.5 * (lo + hi)


def check_stability_limit(student_fn: Callable) -> CheckResult:
    r"""Exercise 12.1: ``student_fn(tau)`` returns the largest stable :math:`\eta\lambda` of gradient descent with delay ``tau``."""
    name = "Exercise 12.1 (the stability limit of delayed gradient descent)"
    refused = refuse_package_call(name, student_fn, stability_limit)
    if refused is not None:
        return refused
    cases = [Case((tau,), label=f"tau = {tau}") for tau in (0, 1, 2, 3, 7, 20)]
    return check_function(name, lambda tau: float(student_fn(tau)), _limit_by_bisection, cases, rtol=1e-6, atol=1e-9)


def check_measured_factor(student_fn: Callable) -> CheckResult:
    r"""Exercise 12.2 (an experiment): ``student_fn(x, tau)`` measures the per-step factor of delayed gradient descent.

    The recursion :math:`w_{t+1} = w_t - x\,w_{t-\tau}` is run by the student; the measured
    factor :math:`|w_{t+1}|/|w_t|` over a long run must agree within 2 % with the largest root
    modulus of :math:`z^{\tau+1} - z^\tau + x` (``numpy.roots``), stable and unstable settings alike.
    """
    name = "Exercise 12.2 (measure what a delay costs)"
    cases = [(0.1, 2), (0.3, 4), (0.05, 8), (0.5, 1), (0.7, 2), (0.02, 16)]
    lines = []
    for x, tau in cases:
        label = f"x = {x}, tau = {tau}"
        try:
            got = float(np.asarray(student_fn(x, tau)))
        except NotImplementedError:
            return CheckResult(name, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
        except Exception as exc:  # the student's error, shown to them
            return CheckResult(name, False, [f"{label}: your function raised {type(exc).__name__}: {exc}"])
        theory = _root_radius(x, tau)
        if not abs(got / theory - 1) <= 0.02:
            return CheckResult(name, False, lines + [f"{label}: measured {got:.5f}, largest root modulus "
                                                      f"{theory:.5f}: more than 2 % apart"])
        lines.append(f"{label}: measured {got:.5f}, largest root modulus {theory:.5f}: ok")
    return CheckResult(name, True, lines)
