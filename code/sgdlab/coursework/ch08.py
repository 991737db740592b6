"""Checks for the coding exercises of Chapter 8, *The gradient noise scale and the critical batch size*."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from . import Case, CheckResult, check_function


def check_critical_batch_size(student_fn: Callable) -> CheckResult:
    r"""Exercise 8.1: ``student_fn(batch_sizes, steps)`` returns :math:`E_{\min}/S_{\min}`.

    The steps are generated from known constants, :math:`S(B) = S_{\min} + E_{\min}/B`, without
    noise; the reference solves for the constants from the first and last run alone
    (:math:`E_{\min} = (S_1 - S_k)/(1/B_1 - 1/B_k)`), not by a least-squares fit.
    """
    truths = [("short", 40.0, 8000.0, [8, 32, 128]), ("long", 1500.0, 3.0e5, [4, 16, 64, 256, 1024]),
              ("tiny critical batch", 300.0, 900.0, [1, 2, 4, 8])]
    cases = [Case((np.array(b), s + e / np.array(b, float)), label=f"{name}: S_min={s:g}, E_min={e:g}")
             for name, s, e, b in truths]

    def reference(batch_sizes, steps):
        b, s = np.asarray(batch_sizes, float), np.asarray(steps, float)
        e_min = (s[0] - s[-1]) / (1 / b[0] - 1 / b[-1])
        return e_min / (s[-1] - e_min / b[-1])

    return check_function("Exercise 8.1 (critical batch size)", student_fn, reference, cases, rtol=1e-6)


def _per_example_gradients(seed: int, n: int, p: int) -> np.ndarray:
    """Rows with a common mean direction and heavy, unequal noise: a least-squares-like cloud."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=p)
    return mean + rng.normal(size=(n, p)) * np.linspace(1.0, 4.0, p)


def check_estimate_b_simple(student_fn: Callable) -> CheckResult:
    r"""Exercise 8.2 (an experiment): ``student_fn(key, grads, b_small, b_big, n_draws)`` -> :math:`B_{\rm simple}`.

    The reference is the exact :math:`\operatorname{tr}\\Sigma/|G|^2` of the rows (covariance
    normalised by :math:`n`). With the draws given, the sampling error of the two-batch estimate
    is about 1 %; an answer within 6 % passes. Averaging the per-draw ratios instead of the two
    estimates, or dividing the squared norm of a single batch, fails.
    """
    exercise = "Exercise 8.2 (measure B_simple)"
    lines = []
    for k, (n, p, b_small, b_big) in enumerate([(300, 5, 4, 64), (1000, 12, 8, 256)]):
        grads = _per_example_gradients(k, n, p)
        g = grads.mean(0)
        exact = np.mean(np.sum((grads - g) ** 2, axis=1)) / (g @ g)
        label = f"case {k + 1} (n = {n}, P = {p}, batches {b_small} and {b_big})"
        try:
            got = float(student_fn(jax.random.key(10 + k), grads, b_small, b_big, 40000))
        except NotImplementedError:
            return CheckResult(exercise, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
        except Exception as exc:  # the student's error, shown to them
            return CheckResult(exercise, False, lines + [f"{label}: your function raised {type(exc).__name__}: {exc}"])
        if not np.isfinite(got) or abs(got - exact) > 0.06 * exact:
            return CheckResult(exercise, False, lines + [f"{label}: measured {got:.4g}, but tr(Sigma)/|G|^2 = {exact:.4g}"])
        lines.append(f"{label}: measured {got:.4g}, exact {exact:.4g}: ok")
    return CheckResult(exercise, True, lines)
