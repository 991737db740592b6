r"""SGD near a minimum as a linear stochastic process: its stationary covariance, exact and continuous.

Near a minimum :math:`w^\star` the loss is :math:`L(w)\approx\tfrac12(w-w^\star)^\top A(w-w^\star)`
and a minibatch gradient of size :math:`B` is :math:`A(w-w^\star)+\xi`, with noise of mean 0 and
covariance :math:`C/B` (:math:`C` the per-example gradient covariance at :math:`w^\star`). Constant-step
SGD, :math:`w_{t+1} = w_t - \eta(A(w_t-w^\star)+\xi_t)`, is then a vector autoregression whose
covariance obeys :math:`\Sigma_{t+1} = (I-\eta A)\Sigma_t(I-\eta A)^\top + \eta^2C/B`. It has a
stationary covariance when every eigenvalue of :math:`\eta A` lies in :math:`(0, 2)`:

* :func:`stationary_covariance`: the exact fixed point, a discrete Lyapunov equation
  (SciPy's ``solve_discrete_lyapunov``);
* :func:`continuous_stationary_covariance`: Mandt, Hoffman & Blei's (2017) approximation of SGD
  by the Ornstein-Uhlenbeck process :math:`dw = -\eta A w\,dt + \tfrac{\eta}{\sqrt B}C^{1/2}dW`,
  whose stationary covariance solves :math:`A\Sigma + \Sigma A = \tfrac{\eta}{B}C` (SciPy's
  ``solve_continuous_lyapunov``). When :math:`A` and :math:`C` commute the two differ by the factor
  :math:`(I-\eta A/2)^{-1}`: they agree only for :math:`\eta\lambda_{\max}\ll 1`;
* :func:`simulate_stationary_covariance`: many chains of that process in one compiled
  ``lax.scan``, the Monte-Carlo check of both;
* :func:`least_squares_stationary_covariance` and :func:`simulate_least_squares_sgd`: the same
  for real minibatch SGD on least squares, whose noise grows with the distance from the optimum
  (multiplicative noise), so the additive model above underestimates it at large steps.

The solves are small dense linear algebra on the host (NumPy/SciPy, float64).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from . import _checks

__all__ = [
    "stationary_covariance",
    "continuous_stationary_covariance",
    "SimulatedCovariance",
    "simulate_stationary_covariance",
    "least_squares_stationary_covariance",
    "simulate_least_squares_sgd",
]


def _square_symmetric(name: str, value, n: int | None = None) -> np.ndarray:
    m = np.asarray(_checks.finite_array(name, value, ndim=2), np.float64)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {m.shape}")
    if n is not None and m.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, {n}) like hessian, got {m.shape}")
    if not np.allclose(m, m.T, rtol=1e-6, atol=1e-9 * max(1.0, np.abs(m).max())):
        raise ValueError(f"{name} must be symmetric")
    return 0.5 * (m + m.T)


def _validate(hessian, noise_cov, learning_rate, batch_size):
    a = _square_symmetric("hessian", hessian)
    c = _square_symmetric("noise_cov", noise_cov, a.shape[0])
    if np.linalg.eigvalsh(c).min() < -1e-9 * max(1.0, np.abs(c).max()):
        raise ValueError("noise_cov must be positive semi-definite")
    eta = _checks.positive_float("learning_rate", learning_rate)
    b = _checks.positive_int("batch_size", batch_size)
    lam = np.linalg.eigvalsh(a)
    if lam.min() <= 0:
        raise ValueError(f"hessian must be positive definite (smallest eigenvalue {lam.min():.3g}): "
                         "along a flat or negative direction SGD has no stationary distribution")
    if eta * lam.max() >= 2:
        raise ValueError(f"learning_rate={eta:g} times the largest eigenvalue {lam.max():.4g} is >= 2: "
                         "SGD diverges and has no stationary covariance")
    return a, c, eta, b


def stationary_covariance(hessian, noise_cov, learning_rate: float, batch_size: int) -> np.ndarray:
    r"""Exact stationary covariance of constant-step SGD on a quadratic with gradient noise :math:`C/B`.

    The unique solution of the discrete Lyapunov equation

    .. math::  \Sigma = (I-\eta A)\,\Sigma\,(I-\eta A)^\top + \frac{\eta^2}{B}\,C,

    for ``hessian`` :math:`A` (symmetric positive definite, :math:`\eta\lambda_{\max}(A)<2`),
    per-example ``noise_cov`` :math:`C` (symmetric positive semi-definite), step :math:`\eta` and
    batch size :math:`B`. It holds for any noise distribution with that covariance, independent
    across steps. If :math:`A` and :math:`C` commute, :math:`\Sigma = \frac{\eta}{B}\,C\,
    \bigl(A(2I-\eta A)\bigr)^{-1}`. Solved by ``scipy.linalg.solve_discrete_lyapunov``; returns a
    float64 array of shape ``(d, d)``.
    """
    a, c, eta, b = _validate(hessian, noise_cov, learning_rate, batch_size)
    m = np.eye(a.shape[0]) - eta * a
    sigma = scipy.linalg.solve_discrete_lyapunov(m, eta**2 / b * c)
    return 0.5 * (sigma + sigma.T)


def continuous_stationary_covariance(hessian, noise_cov, learning_rate: float, batch_size: int) -> np.ndarray:
    r"""Mandt et al.'s (2017) continuous-time approximation of :func:`stationary_covariance`.

    The stationary covariance of the Ornstein-Uhlenbeck process that approximates SGD,

    .. math::  A\Sigma + \Sigma A = \frac{\eta}{B}\,C,

    (Mandt, Hoffman & Blei, *Stochastic Gradient Descent as Approximate Bayesian Inference*, 2017,
    in this notation). It drops the :math:`\eta^2 A\Sigma A` term of the exact
    equation, so its relative error in the direction of an eigenvalue :math:`\lambda` of a
    commuting pair is :math:`\eta\lambda/2`. Solved by ``scipy.linalg.solve_continuous_lyapunov``.
    """
    a, c, eta, b = _validate(hessian, noise_cov, learning_rate, batch_size)
    sigma = scipy.linalg.solve_continuous_lyapunov(a, eta / b * c)
    return 0.5 * (sigma + sigma.T)


class SimulatedCovariance(NamedTuple):
    """Monte-Carlo stationary covariance: the estimate and the standard error of each entry."""

    cov: np.ndarray
    se: np.ndarray


@functools.partial(jax.jit, static_argnames=("steps", "burn_in", "n_chains"))
def _simulate(key, a, root, eta, steps, burn_in, n_chains):
    d = a.shape[0]

    def step(carry, k):
        w, acc = carry
        xi = jax.random.normal(jax.random.fold_in(key, k), (n_chains, d)) @ root.T
        w = w - eta * (w @ a + xi)
        keep = (k >= burn_in).astype(w.dtype)
        return (w, acc + keep * jnp.einsum("ci,cj->cij", w, w)), None

    init = (jnp.zeros((n_chains, d), a.dtype), jnp.zeros((n_chains, d, d), a.dtype))
    (_, acc), _ = jax.lax.scan(step, init, jnp.arange(steps + burn_in))
    return acc / steps                                           # per-chain time averages of w w^T


def simulate_stationary_covariance(
    key: jax.Array,
    hessian,
    noise_cov,
    learning_rate: float,
    batch_size: int,
    *,
    steps: int,
    n_chains: int,
    burn_in: int | None = None,
) -> SimulatedCovariance:
    r"""Stationary covariance of SGD on :math:`\tfrac12w^\top Aw` with Gaussian noise :math:`N(0, C/B)`, by simulation.

    ``n_chains`` independent chains start at the minimum, run ``burn_in`` steps (default: five
    relaxation times :math:`1/(\eta\lambda_{\min})` of the slowest direction) and then average
    :math:`w_tw_t^\top` over ``steps`` more. The chains are independent, so the standard error of
    each entry is the spread of the per-chain averages over :math:`\sqrt{n_{chains}}`. One
    compiled ``lax.scan`` over steps, vectorised over chains; the hyperparameters are traced.
    """
    a, c, eta, b = _validate(hessian, noise_cov, learning_rate, batch_size)
    steps = _checks.positive_int("steps", steps)
    n_chains = _checks.positive_int("n_chains", n_chains)
    if n_chains < 2:
        raise ValueError("n_chains must be at least 2 to estimate a standard error")
    if burn_in is None:
        burn_in = int(np.ceil(5 / (eta * np.linalg.eigvalsh(a).min())))
    burn_in = _checks.nonnegative_int("burn_in", burn_in)
    # a square root R R^T = C/B that tolerates a singular C
    lam, vec = np.linalg.eigh(c / b)
    root = vec * np.sqrt(np.clip(lam, 0, None))
    per_chain = np.asarray(_simulate(key, jnp.asarray(a, jnp.float32), jnp.asarray(root, jnp.float32),
                                     jnp.float32(eta), steps, burn_in, n_chains), np.float64)
    return SimulatedCovariance(per_chain.mean(0), per_chain.std(0, ddof=1) / np.sqrt(n_chains))


def _least_squares(x, y):
    x = np.asarray(_checks.finite_array("x", x, ndim=2), np.float64)
    y = np.asarray(_checks.finite_array("y", y, ndim=(1, 2)), np.float64).reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    w_opt, *_ = np.linalg.lstsq(x, y, rcond=None)
    return x, y, w_opt


def least_squares_stationary_covariance(x, y, learning_rate: float, batch_size: int) -> np.ndarray:
    r"""Exact stationary covariance of minibatch SGD on least squares, :math:`L(w)=\frac1{2N}\sum_i(x_i^\top w-y_i)^2`.

    A minibatch of :math:`B` examples drawn with replacement has gradient
    :math:`\hat H_B(w-\hat w) + \zeta_B` with :math:`\hat H_B = \frac1B\sum_{i\in B}x_ix_i^\top` and
    :math:`\zeta_B` the minibatch gradient at the optimum :math:`\hat w` (mean 0, covariance
    :math:`C/B`, :math:`C = \frac1N\sum_i g_ig_i^\top`). The curvature itself is random, so
    :math:`\delta_t = w_t-\hat w` obeys :math:`\delta_{t+1} = (I-\eta\hat H_B)\delta_t - \eta\zeta_B`,
    and since :math:`\delta_t` is independent of the new batch and has mean 0,

    .. math::  \Sigma &= \Sigma - \eta(H\Sigma+\Sigma H) + \eta^2\Bigl(1-\tfrac1B\Bigr)H\Sigma H\\
               &\quad + \frac{\eta^2}{B}\,\frac1N\sum_i (x_i^\top\Sigma x_i)\,x_ix_i^\top + \frac{\eta^2}{B}C .

    The fourth-moment term is the multiplicative noise that :func:`stationary_covariance` leaves
    out. The equation is linear in :math:`\Sigma`; it is solved as a :math:`d^2\times d^2` system
    (so for small :math:`d`). It has a solution only when the linear map has spectral radius
    below 1, which happens at a smaller step than :math:`2/\lambda_{\max}`.
    """
    x, y, w_opt = _least_squares(x, y)
    eta = _checks.positive_float("learning_rate", learning_rate)
    b = _checks.positive_int("batch_size", batch_size)
    n, d = x.shape
    h = x.T @ x / n
    g = x * (x @ w_opt - y)[:, None]
    c = g.T @ g / n
    eye = np.eye(d)
    z = np.einsum("ni,nj->nij", x, x).reshape(n, d * d)
    # the map Sigma -> E[(I - eta H_B) Sigma (I - eta H_B)] on row-major vec(Sigma)
    lin = (np.kron(eye, eye) - eta * (np.kron(h, eye) + np.kron(eye, h))
           + eta**2 * (1 - 1 / b) * np.kron(h, h) + eta**2 / b * (z.T @ z / n))
    radius = np.abs(np.linalg.eigvals(lin)).max()
    if radius >= 1:
        raise ValueError(f"learning_rate={eta:g} with batch_size={b}: the second moment of SGD grows "
                         f"(spectral radius {radius:.4f} >= 1), so there is no stationary covariance")
    sigma = np.linalg.solve(np.eye(d * d) - lin, (eta**2 / b * c).reshape(-1)).reshape(d, d)
    return 0.5 * (sigma + sigma.T)


@functools.partial(jax.jit, static_argnames=("batch_size", "steps", "burn_in", "n_chains"))
def _least_squares_chains(key, x, y, w_opt, eta, batch_size, steps, burn_in, n_chains):
    n, d = x.shape

    def step(carry, k):
        w, acc = carry
        idx = jax.random.randint(jax.random.fold_in(key, k), (n_chains, batch_size), 0, n)
        xb = x[idx]                                                       # (chains, B, d)
        residual = jnp.einsum("cbd,cd->cb", xb, w) - y[idx]
        w = w - eta * jnp.einsum("cbd,cb->cd", xb, residual) / batch_size
        dw = w - w_opt
        keep = (k >= burn_in).astype(w.dtype)
        return (w, acc + keep * jnp.einsum("ci,cj->cij", dw, dw)), None

    init = (jnp.tile(w_opt, (n_chains, 1)), jnp.zeros((n_chains, d, d), x.dtype))
    (_, acc), _ = jax.lax.scan(step, init, jnp.arange(steps + burn_in))
    return acc / steps


def simulate_least_squares_sgd(
    key: jax.Array,
    x,
    y,
    learning_rate: float,
    batch_size: int,
    *,
    steps: int,
    n_chains: int,
    burn_in: int | None = None,
) -> SimulatedCovariance:
    r"""Stationary covariance of real minibatch SGD on least squares about its optimum, by simulation.

    ``n_chains`` chains start at the optimum :math:`\hat w`, draw minibatches of ``batch_size``
    rows with replacement, run ``burn_in`` steps (default: five relaxation times of the slowest
    direction) and average :math:`(w_t-\hat w)(w_t-\hat w)^\top` over ``steps`` more; standard
    errors from the spread across chains. The Monte-Carlo check of
    :func:`least_squares_stationary_covariance`; one compiled ``lax.scan``.
    """
    x, y, w_opt = _least_squares(x, y)
    eta = _checks.positive_float("learning_rate", learning_rate)
    b = _checks.batch_size("batch_size", batch_size, x.shape[0])
    steps = _checks.positive_int("steps", steps)
    n_chains = _checks.positive_int("n_chains", n_chains)
    if n_chains < 2:
        raise ValueError("n_chains must be at least 2 to estimate a standard error")
    if burn_in is None:
        burn_in = int(np.ceil(5 / (eta * np.linalg.eigvalsh(x.T @ x / x.shape[0]).min())))
    burn_in = _checks.nonnegative_int("burn_in", burn_in)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    per_chain = np.asarray(_least_squares_chains(key, f32(x), f32(y), f32(w_opt), jnp.float32(eta), b, steps,
                                                 burn_in, n_chains), np.float64)
    return SimulatedCovariance(per_chain.mean(0), per_chain.std(0, ddof=1) / np.sqrt(n_chains))
