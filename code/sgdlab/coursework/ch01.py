"""Checks for the coding exercises of Chapter 1, *Why stochastic gradients?*.

The references are independent of the package functions the chapter uses: exact enumeration
of every possible minibatch for small data sets, the pairwise form of the covariance for larger
ones, and the closed form :math:`\\operatorname{tr}\\Sigma/B` for the measured noise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import jax
import numpy as np

from .. import noise
from . import Case, CheckResult, check_function, refuse_package_call


def _enumerated_variance(grads: np.ndarray, batch_size: int, replace: bool) -> float:
    """E||g_B - g||^2 by listing every ordered draw (with replacement) or every subset (without)."""
    g = grads.mean(0)
    n = grads.shape[0]
    draws = (itertools.product(range(n), repeat=batch_size) if replace
             else itertools.combinations(range(n), batch_size))
    errors = [np.sum((grads[list(d)].mean(0) - g) ** 2) for d in draws]
    return float(np.mean(errors))


def _pairwise_variance(grads: np.ndarray, batch_size: int, replace: bool) -> float:
    """E||g_B - g||^2 from E<c_i, c_i> and E<c_i, c_j> over ordered pairs of positions in the batch."""
    c = grads - grads.mean(0)
    gram = c @ c.T
    n, b = gram.shape[0], batch_size
    same = np.trace(gram) / n                                   # E<c_i, c_i>
    other = 0.0 if replace else (gram.sum() - np.trace(gram)) / (n * (n - 1))  # E<c_i, c_j>, i != j
    return float((b * same + b * (b - 1) * other) / b**2)


def _reference_variance(grads, batch_size, replace):
    grads = np.asarray(grads, float)
    n = grads.shape[0]
    count = n**batch_size if replace else math.comb(n, batch_size)
    if count <= 5000:
        return _enumerated_variance(grads, batch_size, replace)
    return _pairwise_variance(grads, batch_size, replace)


# the package's own answers to this chapter's exercises, which an answer must not call
_NOISE_ANSWERS = (noise.minibatch_variance, noise.gradient_noise_trace, noise.empirical_minibatch_variance)


def check_minibatch_variance(student_fn: Callable) -> CheckResult:
    """Exercise 1.1: ``student_fn(grads, batch_size, replace)`` returns E||g_B - g||^2 exactly."""
    exercise = "Exercise 1.1 (minibatch variance)"
    refused = refuse_package_call(exercise, student_fn, *_NOISE_ANSWERS)
    if refused is not None:
        return refused
    rng = np.random.default_rng(0)
    small = rng.normal(size=(7, 3)) + np.array([1.0, -2.0, 0.5])
    wide = rng.normal(size=(50, 20)) * np.linspace(0.1, 3, 20)
    cases = [
        Case((small, 1, True), label="7 examples, B=1, with replacement (all 7 draws listed)"),
        Case((small, 3, True), label="7 examples, B=3, with replacement (all 343 draws listed)"),
        Case((small, 3, False), label="7 examples, B=3, without replacement (all 35 subsets listed)"),
        Case((small, 7, False), label="B=n without replacement (no noise left)"),
        Case((wide, 10, True), label="50 examples, B=10, with replacement"),
        Case((wide, 10, False), label="50 examples, B=10, without replacement"),
    ]
    return check_function(exercise, student_fn, _reference_variance, cases, rtol=1e-4, atol=1e-6)


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


def check_noise_measurement(student_fn: Callable) -> CheckResult:
    """Exercise 1.3 (an experiment): ``student_fn(key, grads, batch_size, n_draws)`` returns ``n_draws``
    measured squared errors ||g_B - g||^2 of minibatches drawn with replacement; their mean must agree
    with tr(Sigma)/B within four standard errors."""
    exercise = "Exercise 1.3 (measuring the noise)"
    refused = refuse_package_call(exercise, student_fn, *_NOISE_ANSWERS)
    if refused is not None:
        return refused
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(200, 30)) * np.linspace(0.2, 2.0, 30) + rng.normal(size=30)
    c = grads - grads.mean(0)
    trace = float(np.mean(np.sum(c**2, axis=1)))
    lines = []
    try:
        for b, n_draws in [(1, 4000), (8, 4000), (64, 2000)]:
            label = f"B={b}, {n_draws} draws"
            out = np.asarray(student_fn(jax.random.key(b), grads, b, n_draws), float)
            if out.shape != (n_draws,):
                return CheckResult(exercise, False, lines + [f"{label}: expected one squared error per draw, shape {(n_draws,)}, got {out.shape}"])
            if not np.all(np.isfinite(out)) or np.any(out < 0):
                return CheckResult(exercise, False, lines + [f"{label}: squared errors must be finite and non-negative"])
            if out.std() == 0:
                return CheckResult(exercise, False, lines + [f"{label}: every draw gave the same value: are the minibatches random?"])
            mean, se = out.mean(), out.std(ddof=1) / np.sqrt(n_draws)
            theory = trace / b
            z = (mean - theory) / se
            if abs(z) > 4:
                return CheckResult(exercise, False, lines + [
                    f"{label}: measured {mean:.4g} ± {se:.2g}, but tr(Sigma)/B = {theory:.4g} ({z:+.1f} standard errors)"])
            lines.append(f"{label}: measured {mean:.4g} ± {se:.2g}, tr(Sigma)/B = {theory:.4g} ({z:+.1f} s.e.)")
        again = np.asarray(student_fn(jax.random.key(8), grads, 8, 4000), float)
        if not np.allclose(again, np.asarray(student_fn(jax.random.key(8), grads, 8, 4000), float)):
            return CheckResult(exercise, False, lines + ["the same key must give the same draws (use the key, not a global RNG)"])
    except NotImplementedError:
        return CheckResult(exercise, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
    except Exception as exc:
        return CheckResult(exercise, False, lines + [f"your function raised {type(exc).__name__}: {exc}"])
    return CheckResult(exercise, True, lines)
