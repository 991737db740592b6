"""Checks for the coding exercises of Chapter 9, *Flat minima, SAM and weight averaging*."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import Case, CheckResult, check_function, judge_measurement, refuse_package_call


def _quadratic(a: np.ndarray, b: np.ndarray) -> Callable:
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    return lambda w: a @ w - b


def _logistic(x: np.ndarray, y: np.ndarray) -> Callable:
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    return jax.grad(lambda w: jnp.mean(jnp.logaddexp(0.0, -y * (x @ w))))


def check_sam_step(student_fn: Callable) -> CheckResult:
    r"""Exercise 9.1: ``student_fn(grad_fn, w, learning_rate, rho)`` returns :math:`w - \eta\nabla L(w + \rho g/\|g\|)`.

    The reference is Optax's own SAM, ``optax.contrib.sam(optax.sgd(eta), optax.chain(
    optax.contrib.normalize(), optax.sgd(rho)), opaque_mode=True)``, given ``grad_fn`` as its
    gradient oracle: an implementation written independently of the student's formula.
    """
    exercise = "Exercise 9.1 (a SAM step)"
    refused = refuse_package_call(exercise, student_fn, optax.contrib.sam)
    if refused is not None:
        return refused
    rng = np.random.default_rng(9)
    m = rng.normal(size=(4, 4))
    x, y = rng.normal(size=(30, 3)), np.sign(rng.normal(size=30))
    cases = [
        Case((_quadratic(np.diag([1.0, 10.0]), np.zeros(2)), np.array([1.0, 1.0]), 0.05, 0.1),
             label="a valley L = (w1^2 + 10 w2^2)/2"),
        Case((_quadratic(m @ m.T + np.eye(4), rng.normal(size=4)), rng.normal(size=4), 0.1, 0.5),
             label="a random quadratic in 4 dimensions, a large radius"),
        Case((_logistic(x, y), rng.normal(size=3), 0.5, 0.05), label="logistic regression"),
    ]

    def reference(grad_fn, w, learning_rate, rho):
        tx = optax.contrib.sam(optax.sgd(learning_rate), optax.chain(optax.contrib.normalize(), optax.sgd(rho)),
                               opaque_mode=True)
        w = jnp.asarray(w, jnp.float32)
        updates, _ = tx.update(grad_fn(w), tx.init(w), w, grad_fn=lambda p, _: grad_fn(p))
        return optax.apply_updates(w, updates)

    return check_function(exercise, student_fn, reference, cases, rtol=1e-4, atol=1e-6)


def _exact_swa_loss(mu: float, sigma: float, eta: float, w0: float, start: int, steps: int) -> tuple[float, float]:
    r"""Mean and standard deviation of :math:`L(\bar w)` for the average of :math:`w_t`, ``start <= t <= steps``.

    Written out in float64: :math:`w_t = a^tw_0 - \eta\sigma\sum_{j<t}a^{t-1-j}\xi_j` with
    :math:`a = 1-\eta\mu`, so :math:`\bar w` is Gaussian with mean :math:`\frac1K\sum_ta^tw_0` and
    variance :math:`\sum_jc_j^2`, :math:`c_j = \frac{\eta\sigma}{K}\sum_{t\ge\max(\text{start}, j+1)}a^{t-1-j}`;
    for Gaussian :math:`\bar w`, :math:`\operatorname{Var}\bar w^2 = 4m^2v + 2v^2`.
    """
    a = 1.0 - eta * mu
    t = np.arange(max(start, 1), steps + 1)
    k = len(t)
    mean = np.sum(a ** t.astype(float)) * w0 / k
    j = np.arange(steps)
    powers = a ** np.clip(t[None, :] - 1 - j[:, None], 0, None).astype(float)
    coeff = eta * sigma / k * np.sum(np.where(t[None, :] >= j[:, None] + 1, powers, 0.0), axis=1)
    var = np.sum(coeff**2)
    loss_mean = 0.5 * mu * (mean**2 + var)
    loss_sd = 0.5 * mu * np.sqrt(4 * mean**2 * var + 2 * var**2)
    return float(loss_mean), float(loss_sd)


def check_swa_loss(student_fn: Callable) -> CheckResult:
    r"""Exercise 9.2 (an experiment): ``student_fn(key, mu, sigma, eta, w0, start, steps, n_chains)`` -> ``(mean, se)``.

    The student's Monte-Carlo mean of :math:`L(\bar w)`, the average of the iterates from step
    ``start`` on, must agree with the exact value within four of the student's standard errors,
    and the standard error must be plausible (within a factor of two of the exact one). The
    exact value is written out in float64 here, independently of the package's recursions.
    """
    exercise = "Exercise 9.2 (SWA with a late start)"
    lines = []
    for k, (mu, sigma, eta, w0, start, steps) in enumerate([(1.0, 1.0, 0.2, 3.0, 1, 200),
                                                             (1.0, 1.0, 0.2, 3.0, 100, 200),
                                                             (4.0, 0.5, 0.1, -1.0, 50, 300)]):
        n_chains = 4000
        label = f"case {k + 1} (mu = {mu}, eta = {eta}, average from step {start} of {steps})"
        try:
            mean, se = student_fn(jax.random.key(20 + k), mu, sigma, eta, w0, start, steps, n_chains)
            mean, se = float(mean), float(se)
        except NotImplementedError:
            return CheckResult(exercise, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
        except Exception as exc:  # the student's error, shown to them
            return CheckResult(exercise, False, lines + [f"{label}: your function raised {type(exc).__name__}: {exc}"])
        exact, sd = _exact_swa_loss(mu, sigma, eta, w0, start, steps)
        exact_se = sd / np.sqrt(n_chains)
        ok, line = judge_measurement(label, mean, se, exact, exact_se)
        if not ok:
            return CheckResult(exercise, False, lines + [line])
        lines.append(line)
    return CheckResult(exercise, True, lines)
