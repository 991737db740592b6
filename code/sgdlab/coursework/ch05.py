"""Checks for the coding exercises of Chapter 5, *Adaptive methods: RMSProp and Adam*."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
import optax

from .. import train, wilson
from . import Case, CheckResult, check_function


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
    rng = np.random.default_rng(5)
    cases = [
        Case((np.full(10, 3.0), 0.1, 0.9, 0.999, 1e-8), label="constant gradient 3: every update is -0.1"),
        Case((rng.normal(size=40), 0.01, 0.9, 0.999, 1e-8), label="40 standard-normal gradients"),
        Case((rng.normal(1.0, 5.0, size=60), 0.003, 0.8, 0.99, 1e-6), label="noisy gradients, b1=0.8, b2=0.99"),
        Case((np.array([1e-3, -2e-3, 5e-4]), 1.0, 0.9, 0.999, 1e-3), label="tiny gradients where eps matters"),
    ]
    return check_function("Exercise 5.1 (Adam, one coordinate)", student_fn, _optax_updates, cases, rtol=1e-4, atol=1e-6)


def check_wilson_features(student_fn: Callable) -> CheckResult:
    """Exercise 5.2: ``student_fn(y)`` builds Wilson et al.'s design matrix with ``d = 6n`` columns."""
    rng = np.random.default_rng(7)
    cases = [
        Case((np.array([1.0, -1.0, -1.0]),), label="y = (1, -1, -1)"),
        Case((np.array([-1.0, 1.0, 1.0, 1.0]),), label="y = (-1, 1, 1, 1)"),
        Case((np.where(rng.random(12) < 0.7, 1.0, -1.0),), label="12 random labels"),
    ]
    return check_function("Exercise 5.2 (Wilson et al.'s features)", student_fn, wilson.features, cases, rtol=0, atol=0)
