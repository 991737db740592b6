"""Checks for the coding exercises of Chapter 5, *Adaptive methods: AdaGrad, RMSProp and Adam*.

Each check compares with a reference that is not the answer's package function: Optax's own
Adam for the updates, the definition transcribed entry by entry for Wilson et al.'s features,
the closed-form limits of Chapter 5's theorem for the AdaGrad experiment.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import train, wilson
from ..optim import adam as sgdlab_adam
from ..optim import adamw as sgdlab_adamw
from . import Case, CheckResult, check_function, refuse_package_call


def _stream(_w, t, grads):
    return grads[t]


def _optax_updates(grads, learning_rate, b1, b2, eps):
    """The updates ``optax.adam`` makes on a one-parameter gradient stream (the reference)."""
    grads = jnp.asarray(grads, jnp.float32)
    _, _, ws = train.optimize(optax.adam(learning_rate, b1=b1, b2=b2, eps=eps), jnp.zeros(()), _stream,
                              steps=grads.shape[0], args=(grads,))
    return np.diff(np.concatenate([[0.0], np.asarray(ws, np.float64)]))


def check_adam_updates(student_fn: Callable) -> CheckResult:
    """Exercise 5.1: ``student_fn(grads, learning_rate, b1, b2, eps)`` returns Adam's update at every step."""
    exercise = "Exercise 5.1 (Adam, one coordinate)"
    refused = refuse_package_call(exercise, student_fn, optax.adam, optax.adamw, optax.scale_by_adam,
                                  sgdlab_adam, sgdlab_adamw)
    if refused is not None:
        return refused
    rng = np.random.default_rng(5)
    cases = [
        Case((np.full(10, 3.0), 0.1, 0.9, 0.999, 1e-8), label="constant gradient 3: every update is -0.1"),
        Case((rng.normal(size=40), 0.01, 0.9, 0.999, 1e-8), label="40 standard-normal gradients"),
        Case((rng.normal(1.0, 5.0, size=60), 0.003, 0.8, 0.99, 1e-6), label="noisy gradients, b1=0.8, b2=0.99"),
        Case((np.array([1e-3, -2e-3, 5e-4]), 1.0, 0.9, 0.999, 1e-3), label="tiny gradients where eps matters"),
    ]
    return check_function(exercise, student_fn, _optax_updates, cases, rtol=1e-4, atol=1e-6)


def _features_by_definition(y) -> np.ndarray:
    """Wilson et al.'s matrix written entry by entry from the definition (the reference)."""
    y = np.asarray(y, dtype=float)
    n = y.size
    x = np.zeros((n, 6 * n))
    for i, label in enumerate(y):
        x[i, 0] = label
        x[i, 1] = x[i, 2] = 1.0
        block = 1 if label == 1 else 5
        for j in range(block):
            x[i, 3 + 5 * i + j] = 1.0
    return x


def check_wilson_features(student_fn: Callable) -> CheckResult:
    """Exercise 5.2: ``student_fn(y)`` builds Wilson et al.'s design matrix with ``d = 6n`` columns."""
    exercise = "Exercise 5.2 (Wilson et al.'s features)"
    refused = refuse_package_call(exercise, student_fn, wilson.features, wilson.dataset)
    if refused is not None:
        return refused
    rng = np.random.default_rng(7)
    cases = [
        Case((np.array([1.0, -1.0, -1.0]),), label="y = (1, -1, -1)"),
        Case((np.array([-1.0, 1.0, 1.0, 1.0]),), label="y = (-1, 1, 1, 1)"),
        Case((np.where(rng.random(12) < 0.7, 1.0, -1.0),), label="12 random labels"),
    ]
    result = check_function(exercise, student_fn, _features_by_definition, cases, rtol=0, atol=0)
    if result:
        y = np.array([1.0, 1.0, -1.0, 1.0, -1.0])
        x = np.asarray(student_fn(y), dtype=float)
        if not np.array_equal(x @ np.sign(x.T @ y), 4 * y):
            return CheckResult(exercise, False, result.lines + ["X sign(X^T y) = 4y fails for your matrix"])
        result.lines.append("X sign(X^T y) = 4y: ok")
    return result


def check_adagrad_test_error(student_fn: Callable) -> CheckResult:
    """Exercise 5.3: ``student_fn(problem, initial_accumulator_value, steps)`` measures AdaGrad's test error.

    The references are the closed-form limits of Chapter 5's theorem: for accumulator 0 the test
    error of :math:`s/4` (every negative test point wrong); for Optax's default 0.1 that of the
    minimum-norm interpolant (none wrong).
    """
    problems = {seed: wilson.dataset(jax.random.key(seed), 20, 0.7, n_test=400) for seed in (11, 12)}

    def theory(problem, initial_accumulator_value, steps):
        x, y = np.asarray(problem.x_train, np.float64), np.asarray(problem.y_train, np.float64)
        limit = wilson.adaptive_solution(x, y) if initial_accumulator_value == 0 else wilson.min_norm_solution(x, y)
        return wilson.test_error(limit, problem)

    cases = [
        Case((problems[11], 0.0, 1000), label="accumulator 0 (limit s/4), problem 1"),
        Case((problems[12], 0.0, 1000), label="accumulator 0 (limit s/4), problem 2"),
        Case((problems[11], 0.1, 3000), label="accumulator 0.1 (Optax's default), problem 1"),
    ]
    return check_function("Exercise 5.3 (AdaGrad's accumulator, measured)", student_fn, theory, cases,
                          rtol=0, atol=1e-9)
