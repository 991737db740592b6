"""Checks for the coding exercises of Chapter 13, *The deep bootstrap*."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from . import Case, CheckResult, check_function


def _soft_error_numpy(logits, labels) -> float:
    """Mean of 1 - softmax(logits)_y, in float64 NumPy with the log-sum-exp shift."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    rows = np.arange(z.shape[0])
    return float(np.mean(1.0 - np.exp(log_p[rows, np.asarray(labels)])))


def _cases() -> list[Case]:
    # one shape for every case: eager JAX compiles each operation once per shape
    rng = np.random.default_rng(13)
    labels = rng.integers(0, 10, 200)
    confident = 50.0 * np.eye(10)[labels]
    huge = np.where(np.eye(10, dtype=bool)[(labels + 1) % 10], 1000.0, 0.0)
    return [
        Case((np.zeros((200, 10)), labels), label="uniform logits: soft error 0.9"),
        Case((rng.normal(size=(200, 10)), labels), label="200 random logits, 10 classes"),
        Case((confident, labels), label="confident and right: soft error near 0"),
        Case((huge, labels), label="huge logits on a wrong class (needs a stable softmax)"),
    ]


def check_soft_error(student_fn: Callable) -> CheckResult:
    """Exercise 13.1: ``student_fn(logits, labels)`` returns the mean soft error of a batch."""
    return check_function("Exercise 13.1 (soft error)", student_fn, _soft_error_numpy, _cases(),
                          rtol=1e-4, atol=1e-5)


def check_gibbs_error(student_fn: Callable) -> CheckResult:
    """Exercise 13.2: ``student_fn(key, logits, labels, draws)`` measures the error of the classifier
    that answers a label drawn from the softmax, ``draws`` times per example.

    Theory says its expectation is the soft error. Each case has ``n * draws = 100,000`` guesses, so
    the estimate has standard error at most :math:`\\sqrt{0.25/10^5} = 0.0016`; it must lie within
    four of them of the closed form (a false alarm about once in 16,000 checks).
    """
    rng = np.random.default_rng(31)
    labels = rng.integers(0, 10, 100)
    cases = [  # one shape for every case (100 examples, 10 classes, 1000 guesses each)
        Case((jax.random.key(1), np.zeros((100, 10)), labels, 1000),
             label="uniform logits: the guess is wrong 9 times in 10"),
        Case((jax.random.key(2), 2.0 * rng.normal(size=(100, 10)), labels, 1000),
             label="100 random logits, 10 classes"),
        Case((jax.random.key(3), 4.0 * rng.normal(size=(100, 10)), labels, 1000),
             label="100 confident random logits"),
    ]
    tolerance = 4 * np.sqrt(0.25 / 100_000)
    return check_function("Exercise 13.2 (the soft error is the error of a random guess)", student_fn,
                          lambda key, logits, labels, draws: _soft_error_numpy(logits, labels), cases,
                          rtol=0.0, atol=tolerance)
