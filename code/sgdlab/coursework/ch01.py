"""Checks for the coding exercises of Chapter 1, *Why stochastic gradients?*."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from .. import noise
from . import Case, CheckResult, check_function


def check_minibatch_variance(student_fn: Callable) -> CheckResult:
    """Exercise 1.1: ``student_fn(grads, batch_size, replace)`` returns E||g_B - g||^2 exactly."""
    rng = np.random.default_rng(0)
    small = rng.normal(size=(7, 3)) + np.array([1.0, -2.0, 0.5])
    wide = rng.normal(size=(50, 20)) * np.linspace(0.1, 3, 20)
    cases = [
        Case((small, 1, True), label="7 examples, B=1, with replacement"),
        Case((small, 3, False), label="7 examples, B=3, without replacement"),
        Case((small, 7, False), label="B=N without replacement (no noise left)"),
        Case((wide, 10, True), label="50 examples, B=10, with replacement"),
        Case((wide, 10, False), label="50 examples, B=10, without replacement"),
    ]

    def reference(grads, batch_size, replace):
        return float(noise.minibatch_variance(grads, batch_size, replace=replace))

    return check_function("Exercise 1.1 (minibatch variance)", student_fn, reference, cases, rtol=1e-4, atol=1e-6)


def check_epoch_batches(student_fn: Callable) -> CheckResult:
    """Exercise 1.2: ``student_fn(key, n, batch_size)`` cuts one random permutation into batches."""
    exercise = "Exercise 1.2 (one epoch of minibatches)"
    lines = []
    try:
        for n, b in [(10, 3), (12, 4), (100, 7)]:
            out = np.asarray(student_fn(jax.random.key(0), n, b))
            label = f"n={n}, batch_size={b}"
            if out.shape != (n // b, b):
                return CheckResult(exercise, False, lines + [f"{label}: expected shape {(n // b, b)}, got {out.shape}"])
            flat = out.ravel()
            if not np.issubdtype(flat.dtype, np.integer) or flat.min() < 0 or flat.max() >= n:
                return CheckResult(exercise, False, lines + [f"{label}: indices must be integers in 0..{n - 1}"])
            if len(set(flat.tolist())) != flat.size:
                return CheckResult(exercise, False, lines + [f"{label}: an example appears twice in one epoch"])
            lines.append(f"{label}: shape, range and no repeats ok")
        first = np.asarray(student_fn(jax.random.key(1), 100, 10))
        again = np.asarray(student_fn(jax.random.key(1), 100, 10))
        other = np.asarray(student_fn(jax.random.key(2), 100, 10))
        if not np.array_equal(first, again):
            return CheckResult(exercise, False, lines + ["the same key must give the same batches (use the key, not a global RNG)"])
        if np.array_equal(first, other) or np.array_equal(np.sort(first.ravel()), first.ravel()):
            return CheckResult(exercise, False, lines + ["the batches do not look shuffled: different keys should give different orders"])
        lines.append("same key, same batches; new key, new order")
        # every example is equally likely to land in the first batch
        counts = np.zeros(20)
        for k in range(400):
            counts[np.asarray(student_fn(jax.random.key(100 + k), 20, 5))[0]] += 1
        expected = 400 * 5 / 20
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        # 19 degrees of freedom: P(chi2 > 43.8) = 0.001
        if chi2 > 43.8:
            return CheckResult(exercise, False, lines + [f"the first batch favours some examples (chi-square {chi2:.1f} on 19 dof)"])
        lines.append(f"the first batch is uniform over examples (chi-square {chi2:.1f} on 19 dof)")
    except NotImplementedError:
        return CheckResult(exercise, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
    except Exception as exc:
        return CheckResult(exercise, False, lines + [f"your function raised {type(exc).__name__}: {exc}"])
    return CheckResult(exercise, True, lines)
