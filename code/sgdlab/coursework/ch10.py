"""Checks for the coding exercises of Chapter 10, *The noisy quadratic model*."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from . import CheckResult


def _not_started(exercise: str) -> CheckResult:
    return CheckResult(exercise, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])


def _simulated_floor(h, c, lr, bs, gamma, key, chains=20_000, steps=None):
    """Monte Carlo of the stationary loss per coordinate: many chains of preconditioned SGD run
    long past their mixing time, each step's noise the mean of ``bs`` per-example draws."""
    x = lr * h ** (1 - gamma)
    steps = steps or int(np.ceil(20 / x.min()))
    theta = np.zeros((chains, h.size))
    rng = np.random.default_rng(key)
    for _ in range(steps):  # a NumPy reference, independent of sgdlab.nqm (small, so a loop is fine)
        noise = rng.standard_normal((chains, h.size)) * np.sqrt(c / bs)
        theta = theta - lr * h**-gamma * (h * theta + noise)
    losses = 0.5 * h * theta**2
    return losses.mean(axis=0), losses.std(axis=0) / np.sqrt(chains)


def check_noise_floor(student_fn: Callable) -> CheckResult:
    """Exercise 10.1: ``student_fn(h, c, learning_rate, batch_size, gamma)`` is the stationary loss of each coordinate."""
    exercise = "Exercise 10.1 (the noise floor)"
    cases = [
        (np.array([1.0, 0.5, 0.1]), np.array([1.0, 0.5, 0.1]), 0.5, 4, 0.0, "C = H, alpha = 0.5, B = 4"),
        (np.array([1.0, 0.2]), np.array([2.0, 0.1]), 1.2, 1, 0.0, "alpha h near 2: the floor blows up"),
        (np.array([1.0, 0.25]), np.array([1.0, 0.25]), 0.4, 16, 0.5, "preconditioned, gamma = 1/2"),
    ]
    lines = []
    for k, (h, c, lr, bs, gamma, label) in enumerate(cases):
        try:
            got = np.asarray(student_fn(h, c, lr, bs, gamma), dtype=float)
        except NotImplementedError:
            return _not_started(exercise)
        except Exception as exc:  # the student's error, shown to them
            return CheckResult(exercise, False, lines + [f"{label}: your function raised {type(exc).__name__}: {exc}"])
        if got.shape != h.shape:
            return CheckResult(exercise, False, lines + [f"{label}: expected one value per coordinate, shape {h.shape}, got {got.shape}"])
        mean, se = _simulated_floor(h, c, lr, bs, gamma, key=k)
        z = np.abs(got - mean) / se
        if np.any(z > 5):
            return CheckResult(exercise, False, lines + [f"{label}: a simulation of 20,000 chains gives {np.round(mean, 5)} "
                                                         f"(± {np.round(se, 5)}), you gave {np.round(got, 5)}"])
        lines.append(f"{label}: ok, within {z.max():.1f} standard errors of a 20,000-chain simulation")
    return CheckResult(exercise, True, lines)


def _sgd_second_moments(h, c, lr, bs, steps):
    """E theta_t^2 per coordinate for t = 0..steps from the one-coordinate recursion, in float64."""
    s = np.ones_like(h)
    out = [s]
    for _ in range(steps):
        s = (1 - lr * h) ** 2 * s + lr**2 * c / bs
        out.append(s)
    return np.array(out)


def check_simulated_risk(student_fn: Callable) -> CheckResult:
    """Exercise 10.2: ``student_fn(key, h, c, learning_rate, batch_size, steps, chains)`` measures the risk curve by simulation.

    The measurement (shape ``(steps + 1,)``) must agree with the exact risk, within five
    Monte-Carlo standard errors at every step, computed from the exact second moments (the loss
    of a Gaussian coordinate, ½hθ², has variance ½h²s², s = Eθ²).
    """
    exercise = "Exercise 10.2 (measure the risk by simulation)"
    h = 1.0 / np.arange(1, 9)
    lines = []
    for k, (lr, bs) in enumerate([(0.5, 4), (1.5, 1)]):
        steps, chains = 40, 4000
        label = f"alpha = {lr}, B = {bs}, {chains} chains"
        try:
            got = np.asarray(student_fn(jax.random.key(100 + k), h, h, lr, bs, steps, chains), dtype=float)
        except NotImplementedError:
            return _not_started(exercise)
        except Exception as exc:
            return CheckResult(exercise, False, lines + [f"{label}: your function raised {type(exc).__name__}: {exc}"])
        if got.shape != (steps + 1,):
            return CheckResult(exercise, False, lines + [f"{label}: expected shape {(steps + 1,)}, got {got.shape}"])
        s = _sgd_second_moments(h, h, lr, bs, steps)
        exact = 0.5 * (h * s).sum(axis=1)
        se = np.sqrt((0.5 * (h * s) ** 2).sum(axis=1) / chains)
        z = np.abs(got - exact) / se
        if np.any(z > 5):
            t = int(np.argmax(z))
            return CheckResult(exercise, False, lines + [f"{label}: at step {t} the exact risk is {exact[t]:.4f} "
                                                         f"(± {se[t]:.4f} for this many chains), you measured {got[t]:.4f}"])
        if np.allclose(got, exact, rtol=1e-6):
            return CheckResult(exercise, False, lines + [f"{label}: your numbers equal the exact risk: simulate the chains instead"])
        lines.append(f"{label}: ok, largest deviation {z.max():.1f} standard errors")
    return CheckResult(exercise, True, lines)
