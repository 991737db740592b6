r"""SGD in the interpolation regime: randomized Kaczmarz and minibatch SGD on least squares.

When the data can be fitted exactly (a consistent linear system :math:`Aw = b`, an
over-parameterised model) the gradient of every example vanishes at the solution, so the
gradient noise vanishes there too and SGD with a *constant* step converges exponentially.

* :func:`kaczmarz` — the randomized Kaczmarz method (Strohmer & Vershynin 2009): pick row
  :math:`i` with probability :math:`\|a_i\|^2/\|A\|_F^2` and project onto :math:`a_i^\top x = b_i`.
  :func:`kaczmarz_rate` is its contraction factor :math:`1-\sigma_{\min}(A)^2/\|A\|_F^2`.
* :func:`minibatch_sgd` — Monte Carlo of minibatch SGD on :math:`\frac1{2n}\|Xw-y\|^2`;
  :func:`minibatch_risk` — its exact mean squared error, for consistent or noisy labels;
  :func:`expected_contraction` — the exact worst one-step contraction of that error.
* :func:`optimal_rate` and :func:`critical_batch` — Ma, Bassily & Belkin's (2018) optimal
  constant step :math:`\eta^*(m)` and critical batch size :math:`m^*`; :func:`constants` reads
  :math:`\beta, \lambda_1, \lambda_k` off a data matrix.
* :func:`gradient_covariance` — for Gaussian inputs, the law-of-total-covariance split of the
  per-example gradient covariance into label noise and batch noise (Grosse 2022, lecture 7).

The simulators are a small ``lax.scan`` over steps written here rather than
:func:`sgdlab.train.fit`, because a chapter runs thousands of chains of a ``d``-dimensional
linear model at once (``vmap`` over keys), where the engine's model state and evaluations would
cost more than the steps.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

__all__ = [
    "kaczmarz",
    "kaczmarz_rate",
    "minibatch_sgd",
    "minibatch_risk",
    "expected_contraction",
    "Constants",
    "constants",
    "optimal_rate",
    "critical_batch",
    "GradientCovariance",
    "gradient_covariance",
]


# --------------------------------------------------------------------------------------
# argument checks that let traced values through (so the public functions jit and vmap)
# --------------------------------------------------------------------------------------

def _traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def _matrix(name: str, value: Any) -> jax.Array:
    """A 2-D float array; finiteness is checked only on concrete values (not under jit/vmap)."""
    if _traced(value):
        if value.ndim != 2:
            raise ValueError(f"{name} must have 2 dimensions, got shape {value.shape}")
        return value.astype(jnp.float32)
    return jnp.asarray(_checks.finite_array(name, value, ndim=2), jnp.float32)


def _vector(name: str, value: Any, size: int) -> jax.Array:
    arr = value if _traced(value) else _checks.finite_array(name, value, ndim=1)
    if arr.ndim != 1 or arr.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")
    return jnp.asarray(arr, jnp.float32)


def _key(key: Any) -> jax.Array:
    if not isinstance(key, jax.Array):
        raise ValueError(f"key must be a JAX PRNG key (jax.random.key(seed)), got {type(key).__name__}")
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if (typed and key.shape != ()) or (not typed and key.shape != (2,)):
        raise ValueError(f"key must be a single PRNG key, got shape {key.shape}; vmap over a batch of keys")
    return key


def _schedule(learning_rate: Any, schedule: Any, steps: int) -> jax.Array:
    """Per-step learning rates ``learning_rate * schedule[t]`` as a ``(steps,)`` array."""
    lr = _checks.positive_float("learning_rate", learning_rate)
    if schedule is None:
        return jnp.full((steps,), lr, jnp.float32)
    factors = _checks.finite_array("schedule", schedule, ndim=1)
    if factors.shape != (steps,):
        raise ValueError(f"schedule must have shape ({steps},), one factor per step, got {factors.shape}")
    if np.any(factors < 0):
        raise ValueError("schedule must be non-negative")
    return jnp.asarray(lr * factors, jnp.float32)


# --------------------------------------------------------------------------------------
# the shared Monte-Carlo core: SGD on least squares with weighted row sampling
# --------------------------------------------------------------------------------------

@jax.jit
def _weighted_sgd(x, y, w0, key, lrs, probs, weights, batch_template):
    r"""Iterates of :math:`w \leftarrow w - \frac{\eta_t}{m}\sum_{j} c_{i_j} x_{i_j}(x_{i_j}^\top w - y_{i_j})`.

    Rows are drawn with replacement with probabilities proportional to ``probs``; ``c = weights``;
    the batch size ``m`` is the length of ``batch_template`` (a static shape, so a new key or a
    new learning rate never recompiles). Returns ``(steps + 1, d)``.
    """
    m = batch_template.shape[0]
    steps = lrs.shape[0]
    # inverse-CDF sampling: O(log n) per draw (jax.random.categorical draws n Gumbels per draw)
    cdf = jnp.cumsum(probs)
    last = jnp.max(jnp.where(probs > 0, jnp.arange(probs.shape[0]), 0))
    u = jax.random.uniform(key, (steps, m)) * cdf[-1]
    rows = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), last)

    def step(w, inp):
        lr, idx = inp
        xb, yb, cb = x[idx], y[idx], weights[idx]
        w = w - lr / m * (xb.T @ (cb * (xb @ w - yb)))
        return w, w

    _, ws = jax.lax.scan(step, w0, (lrs, rows))
    return jnp.concatenate([w0[None], ws])


def kaczmarz(A: Any, b: Any, key: jax.Array, *, steps: int, x0: Any = None) -> jax.Array:
    r"""Randomized Kaczmarz iterates :math:`x_0, \dots, x_{\text{steps}}` for :math:`Ax = b`; shape ``(steps + 1, n)``.

    Each step picks row :math:`i` with probability :math:`p_i = \|a_i\|^2/\|A\|_F^2` and projects
    onto its hyperplane,

    .. math::  x_{k+1} = x_k + \frac{b_i - a_i^\top x_k}{\|a_i\|^2}\,a_i ,

    which is SGD with step 1 on the row loss :math:`\frac{(a_i^\top x-b_i)^2}{2\|a_i\|^2}` sampled
    with :math:`p_i` (Kaczmarz 1937; Strohmer & Vershynin 2009, who proved the rate of
    :func:`kaczmarz_rate`). ``x0`` defaults to zero. ``key`` is a single PRNG key and may be
    traced: ``jax.vmap(lambda k: kaczmarz(A, b, k, steps=T))(keys)`` runs many chains in one
    program, and a new key never recompiles. ``A`` and ``b`` may be traced too (finiteness is
    then not checked). An inconsistent ``b`` is allowed: the iterates then wander around the
    least-squares solution (Needell 2010).
    """
    A = _matrix("A", A)
    n_rows, n = A.shape
    b = _vector("b", b, n_rows)
    key = _key(key)
    steps = _checks.positive_int("steps", steps)
    x0 = jnp.zeros(n, jnp.float32) if x0 is None else _vector("x0", x0, n)
    sq = jnp.sum(A**2, axis=1)
    if not _traced(A) and not bool(jnp.any(sq > 0)):
        raise ValueError("A has no nonzero row: there is nothing to project onto")
    # a zero row has probability 0 and is never drawn; its weight is set finite anyway
    weights = jnp.where(sq > 0, 1.0 / jnp.where(sq > 0, sq, 1.0), 0.0)
    return _weighted_sgd(A, b, x0, key, jnp.ones(steps, jnp.float32), sq, weights, jnp.zeros(1))


def _singular_values(A: np.ndarray) -> np.ndarray:
    """Nonzero singular values of ``A`` (NumPy's rank tolerance), in float64."""
    s = np.linalg.svd(np.asarray(A, np.float64), compute_uv=False)
    tol = s.max() * max(A.shape) * np.finfo(np.float64).eps
    return s[s > tol]


def kaczmarz_rate(A: Any) -> float:
    r"""Strohmer and Vershynin's contraction factor :math:`\rho = 1 - \sigma_{\min}(A)^2/\|A\|_F^2`.

    For a consistent system, randomized Kaczmarz satisfies
    :math:`\mathbb E\|x_k - x^\star\|^2 \le \rho^k\|x_0 - x^\star\|^2` (Strohmer & Vershynin 2009,
    Thm 2), because one step gives exactly
    :math:`\mathbb E[\|e_{k+1}\|^2\mid e_k] = e_k^\top(I - A^\top A/\|A\|_F^2)\,e_k`. Here
    :math:`\sigma_{\min}` is the smallest *nonzero* singular value: for a full-column-rank ``A`` the
    usual one; otherwise the bound holds for the error within the row space of ``A`` (for example
    from ``x0 = 0`` towards the minimum-norm solution), the only part Kaczmarz ever changes.
    """
    A = _checks.finite_array("A", A, ndim=2)
    s = _singular_values(A)
    if s.size == 0:
        raise ValueError("A is zero: there is no rate")
    return float(1.0 - s.min() ** 2 / np.sum(s**2))


# --------------------------------------------------------------------------------------
# minibatch SGD on least squares: Monte Carlo and exact second moments
# --------------------------------------------------------------------------------------

def _least_squares(x: np.ndarray, y: np.ndarray, w0: np.ndarray) -> np.ndarray:
    """The minimiser of ``||Xw - y||^2`` nearest to ``w0`` (float64), where SGD from ``w0`` converges."""
    x64, y64, w064 = (np.asarray(a, np.float64) for a in (x, y, w0))
    return w064 + np.linalg.pinv(x64) @ (y64 - x64 @ w064)


def minibatch_sgd(
    X: Any,
    y: Any,
    key: jax.Array,
    *,
    batch_size: int,
    learning_rate: float,
    steps: int,
    schedule: Any = None,
    w0: Any = None,
) -> jax.Array:
    r"""Iterates of minibatch SGD on :math:`L(w) = \frac1{2n}\|Xw-y\|^2`; shape ``(steps + 1, d)``.

    Step :math:`t` draws :math:`m` rows uniformly *with replacement* (the sampling of Ma, Bassily &
    Belkin 2018) and applies :math:`w \leftarrow w - \frac{\eta_t}m\sum_j x_{i_j}(x_{i_j}^\top w - y_{i_j})`
    with :math:`\eta_t` = ``learning_rate * schedule[t]`` (``schedule`` defaults to ones). ``w0``
    defaults to zero. Vmap over keys for many chains; :func:`minibatch_risk` is the exact mean.
    """
    X = jnp.asarray(_checks.finite_array("X", X, ndim=2), jnp.float32)
    n, d = X.shape
    y = _vector("y", y, n)
    key = _key(key)
    m = _checks.batch_size("batch_size", batch_size, n)
    steps = _checks.positive_int("steps", steps)
    lrs = _schedule(learning_rate, schedule, steps)
    w0 = jnp.zeros(d, jnp.float32) if w0 is None else _vector("w0", w0, d)
    return _weighted_sgd(X, y, w0, key, lrs, jnp.ones(n), jnp.ones(n), jnp.zeros(m))


def _risk(x, r, e0, lrs, inv_m):
    r"""Exact :math:`\mathbb E\|e_t\|^2` from the recursion on :math:`\mu = \mathbb E e`, :math:`P = \mathbb E ee^\top`."""
    n = x.shape[0]
    h = x.T @ x / n

    def weighted_gram(v):  # (1/n) sum_i v_i x_i x_i^T
        return (x.T * v) @ x / n

    noise = weighted_gram(r**2)

    def step(carry, lr):
        mu, p = carry
        quad = jnp.einsum("ij,jk,ik->i", x, p, x)  # x_i^T P x_i
        per_example = weighted_gram(quad) - 2.0 * weighted_gram(r * (x @ mu)) + noise
        hp = h @ p
        p = p - lr * (hp + hp.T) + lr**2 * (inv_m * per_example + (1.0 - inv_m) * (hp @ h))
        # hp + hp.T is HP + PH only for a symmetric P, and the map A -> A - lr (HA - AH) grows an
        # antisymmetric rounding error by up to 1 + lr (lambda_1 - lambda_k) per step: symmetrise
        p = 0.5 * (p + p.T)
        mu = mu - lr * (h @ mu)
        return (mu, p), jnp.trace(p)

    _, tr = jax.lax.scan(step, (e0, jnp.outer(e0, e0)), lrs)
    return jnp.concatenate([jnp.sum(e0**2)[None], tr])


@jax.jit
def _risk_grid(x, r, e0, base, rates, inv_m):
    """``_risk`` vmapped over flat arrays of rates (multiplying the schedule ``base``) and 1/batch sizes."""
    return jax.vmap(lambda c, im: _risk(x, r, e0, c * base, im))(rates, inv_m)


def minibatch_risk(
    X: Any,
    y: Any,
    *,
    batch_size: Any,
    learning_rate: Any,
    steps: int,
    schedule: Any = None,
    w0: Any = None,
) -> np.ndarray:
    r"""Exact :math:`\mathbb E\|w_t - \hat w\|^2`, :math:`t = 0..\text{steps}`, of :func:`minibatch_sgd`.

    :math:`\hat w` is the least-squares solution nearest to ``w0`` (where SGD converges), with
    residuals :math:`r = y - X\hat w` (zero for a consistent system), :math:`H = X^\top X/n` and,
    for a weight vector :math:`v`, :math:`G(v) = \frac1n\sum_i v_i x_ix_i^\top`. The per-example
    gradient is :math:`x_i(x_i^\top e - r_i)` with :math:`e = w - \hat w`, so the mean
    :math:`\mu_t = \mathbb E e_t` and the second moment :math:`P_t = \mathbb E e_te_t^\top` obey exactly

    .. math::

       \mu_{t+1} &= (I - \eta_t H)\mu_t,\\
       P_{t+1} &= P_t - \eta_t(HP_t + P_tH)\\
               &\quad + \eta_t^2\Bigl[\tfrac1m\bigl(G(x_i^\top P_tx_i)
                 - 2G(r_i\,x_i^\top\mu_t) + G(r_i^2)\bigr) + \bigl(1-\tfrac1m\bigr)HP_tH\Bigr],

    and :math:`\mathbb E\|e_t\|^2 = \operatorname{tr}P_t`. ``learning_rate`` and ``batch_size``
    may be arrays (they broadcast against each other): every pair is one run, all computed in one
    vmapped program, with the result of shape ``broadcast_shape + (steps + 1,)``. ``schedule``
    multiplies the rate per step as in :func:`minibatch_sgd`.
    """
    X = _checks.finite_array("X", X, ndim=2)
    n, d = X.shape
    y = np.asarray(_vector("y", y, n))
    steps = _checks.positive_int("steps", steps)
    rates = _checks.finite_array("learning_rate", learning_rate)
    sizes = _checks.finite_array("batch_size", batch_size)
    if np.any(rates <= 0):
        raise ValueError("learning_rate must be positive")
    if np.any(sizes < 1) or np.any(sizes != np.round(sizes)):
        raise ValueError("batch_size must hold integers >= 1")
    if np.any(sizes > n):
        raise ValueError(f"batch_size must not exceed the number of examples ({n})")
    base = _schedule(1.0, schedule, steps)
    w0 = np.zeros(d) if w0 is None else np.asarray(_vector("w0", w0, d))
    w_hat = _least_squares(X, y, w0)
    r = np.asarray(y, np.float64) - np.asarray(X, np.float64) @ w_hat
    shape = np.broadcast_shapes(rates.shape, sizes.shape)
    flat_rates = np.broadcast_to(rates, shape).reshape(-1).astype(np.float32)
    flat_inv = (1.0 / np.broadcast_to(sizes, shape).reshape(-1)).astype(np.float32)
    out = _risk_grid(jnp.asarray(X, jnp.float32), jnp.asarray(r, jnp.float32),
                     jnp.asarray(w0 - w_hat, jnp.float32), base, flat_rates, flat_inv)
    return np.asarray(out, np.float64).reshape(shape + (steps + 1,))


@jax.jit
def _contraction(lam, s_range, rates, inv_m):
    """Largest eigenvalue of M in the eigenbasis of H's range, vmapped over (rate, 1/batch size)."""
    def one(lr, im):
        m_range = (jnp.eye(lam.shape[0]) - 2 * lr * jnp.diag(lam)
                   + lr**2 * (im * s_range + (1 - im) * jnp.diag(lam**2)))
        return jnp.linalg.eigvalsh(m_range)[-1]

    return jax.vmap(one)(rates, inv_m)


def expected_contraction(X: Any, *, learning_rate: Any, batch_size: Any) -> np.ndarray:
    r"""Worst one-step contraction :math:`\max_e \mathbb E\|e'\|^2/\|e\|^2` of minibatch SGD with clean labels.

    With :math:`y = Xw^\star`, one step of :func:`minibatch_sgd` maps the error :math:`e` to
    :math:`e' = (I - \eta H_m)e`, :math:`H_m` the batch's mean of :math:`x_ix_i^\top`, and

    .. math::  \mathbb E\|e'\|^2 = e^\top M e,\qquad
               S = \tfrac1n\textstyle\sum_i \|x_i\|^2 x_ix_i^\top,

               M = I - 2\eta H + \eta^2\Bigl[\tfrac1m S + \bigl(1-\tfrac1m\bigr)H^2\Bigr].

    The result is the largest eigenvalue of :math:`M` on the range of :math:`H` (the error outside
    it never changes). Ma, Bassily & Belkin (2018) bound :math:`S \preceq \beta H`; when every row
    has the same norm the bound is an equality and :math:`\eta^*(m)` of :func:`optimal_rate`
    minimises this contraction exactly. ``learning_rate`` and ``batch_size`` broadcast against
    each other (one vmapped program); the result has their broadcast shape.
    """
    X = np.asarray(_checks.finite_array("X", X, ndim=2), np.float64)
    rates = _checks.finite_array("learning_rate", learning_rate)
    sizes = _checks.finite_array("batch_size", batch_size)
    if np.any(rates <= 0):
        raise ValueError("learning_rate must be positive")
    if np.any(sizes < 1):
        raise ValueError("batch_size must be at least 1")
    n = X.shape[0]
    lam, vecs = np.linalg.eigh(X.T @ X / n)
    keep = lam > lam.max() * X.shape[1] * np.finfo(np.float64).eps
    if not keep.any():
        raise ValueError("X is zero: there is nothing to contract")
    q = vecs[:, keep]
    xq = X @ q
    s_range = (xq.T * np.sum(X**2, axis=1)) @ xq / n
    shape = np.broadcast_shapes(rates.shape, sizes.shape)
    flat_rates = np.broadcast_to(rates, shape).reshape(-1).astype(np.float32)
    flat_inv = (1.0 / np.broadcast_to(sizes, shape).reshape(-1)).astype(np.float32)
    out = _contraction(jnp.asarray(lam[keep], jnp.float32), jnp.asarray(s_range, jnp.float32),
                       flat_rates, flat_inv)
    return np.asarray(out, np.float64).reshape(shape)


# --------------------------------------------------------------------------------------
# Ma, Bassily & Belkin (2018): optimal step and critical batch size
# --------------------------------------------------------------------------------------

class Constants(NamedTuple):
    r"""The constants of Ma, Bassily & Belkin's analysis for a data matrix :math:`X`.

    ``beta`` :math:`=\max_i\|x_i\|^2`; ``lam_max`` :math:`=\lambda_1` and ``lam_min``
    :math:`=\lambda_k` are the largest and the smallest *nonzero* eigenvalues of
    :math:`H = \frac1n X^\top X`.
    """

    beta: float
    lam_max: float
    lam_min: float


def constants(X: Any) -> Constants:
    r""":math:`(\beta, \lambda_1, \lambda_k)` of a data matrix (rows are examples); see :class:`Constants`."""
    X = _checks.finite_array("X", X, ndim=2)
    s = _singular_values(X)
    if s.size == 0:
        raise ValueError("X is zero: it has no nonzero eigenvalue")
    n = X.shape[0]
    beta = float(np.max(np.sum(np.asarray(X, np.float64) ** 2, axis=1)))
    return Constants(beta, float(s.max() ** 2 / n), float(s.min() ** 2 / n))


def _spectrum(beta: Any, lam_max: Any, lam_min: Any) -> tuple[float, float, float]:
    beta = _checks.positive_float("beta", beta)
    lam_max = _checks.positive_float("lam_max", lam_max)
    lam_min = _checks.positive_float("lam_min", lam_min)
    if lam_min > lam_max:
        raise ValueError(f"lam_min={lam_min} must not exceed lam_max={lam_max}")
    if beta < lam_max * (1 - 1e-6):
        raise ValueError(f"beta={beta} must be at least lam_max={lam_max} (beta = max ||x_i||^2 >= lambda_1)")
    return beta, lam_max, lam_min


def critical_batch(beta: float, lam_max: float, lam_min: float) -> float:
    r"""Ma, Bassily & Belkin's critical batch size :math:`m^* = \beta/(\lambda_1 - \lambda_k) + 1`.

    Up to :math:`m^*` the optimal step grows almost linearly with the batch size (one step with
    batch :math:`m` is worth about :math:`m` steps with batch 1); beyond it, it saturates at the
    gradient-descent step :math:`2/(\lambda_1+\lambda_k)` (Ma, Bassily & Belkin 2018, Thm 3). Often
    :math:`m^* \approx \beta/\lambda_1`. Infinite when :math:`\lambda_1 = \lambda_k`.
    """
    beta, lam_max, lam_min = _spectrum(beta, lam_max, lam_min)
    if lam_max == lam_min:
        return float("inf")
    return beta / (lam_max - lam_min) + 1.0


def optimal_rate(batch_size: Any, beta: float, lam_max: float, lam_min: float) -> np.ndarray:
    r"""Ma, Bassily & Belkin's optimal constant step :math:`\eta^*(m)` for batch size :math:`m`.

    Minimising their bound :math:`\max_{\lambda\in\{\lambda_1,\lambda_k\}}
    1 - 2\eta\lambda + \eta^2\lambda(\beta + (m-1)\lambda)/m` on the contraction of
    :math:`\mathbb E\|w_t-w^\star\|^2` per step (Ma, Bassily & Belkin 2018, Thm 2 and 3) gives

    .. math::  \eta^*(m) = \frac{m}{\beta + (m-1)\lambda_k}\quad (m \le m^*),

               \eta^*(m) = \frac{2m}{\beta + (m-1)(\lambda_1+\lambda_k)}\quad (m > m^*),

    with :math:`\lambda_k` the smallest *nonzero* eigenvalue of :math:`H` and :math:`m^*` from
    :func:`critical_batch`. ``batch_size`` may be an array (the result has its shape).
    """
    beta, lam_max, lam_min = _spectrum(beta, lam_max, lam_min)
    m = np.asarray(_checks.finite_array("batch_size", batch_size), np.float64)
    if np.any(m < 1):
        raise ValueError("batch_size must be at least 1")
    m_star = critical_batch(beta, lam_max, lam_min)
    linear = m / (beta + (m - 1) * lam_min)
    saturated = 2 * m / (beta + (m - 1) * (lam_max + lam_min))
    return np.where(m <= m_star, linear, saturated)


# --------------------------------------------------------------------------------------
# stochastic linear regression: label noise and batch noise
# --------------------------------------------------------------------------------------

class GradientCovariance(NamedTuple):
    """The two parts of the per-example gradient covariance; ``total = label + batch``."""

    label: np.ndarray
    batch: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.label + self.batch


def gradient_covariance(cov_x: Any, w: Any, w_star: Any, *, noise_std: float) -> GradientCovariance:
    r"""Covariance of :math:`g = x(x^\top w - t)` for :math:`x\sim N(0,\Sigma)`, :math:`t = x^\top w^\star + \sigma_n\varepsilon`.

    By the law of total covariance (Grosse 2022, lecture 7), with :math:`v = w - w^\star`,

    .. math::  \operatorname{Cov} g = \underbrace{\mathbb E\operatorname{Cov}(g\mid x)}_{\sigma_n^2\Sigma}
               + \underbrace{\operatorname{Cov}(\mathbb E[g\mid x])}_{\operatorname{Cov}(xx^\top v)},

               \operatorname{Cov}(xx^\top v) = (v^\top\Sigma v)\,\Sigma + \Sigma vv^\top\Sigma ,

    the last by Isserlis' theorem for Gaussian :math:`x`. With clean labels
    (:math:`\sigma_n = 0`) both parts vanish at :math:`w = w^\star`. Returns the two matrices.
    """
    cov = np.asarray(_checks.finite_array("cov_x", cov_x, ndim=2), np.float64)
    d = cov.shape[0]
    if cov.shape != (d, d) or not np.allclose(cov, cov.T):
        raise ValueError(f"cov_x must be a symmetric square matrix, got shape {cov.shape}")
    if np.linalg.eigvalsh(cov).min() < -1e-12 * max(1.0, np.abs(cov).max()):
        raise ValueError("cov_x must be positive semi-definite")
    w = np.asarray(_vector("w", w, d), np.float64)
    w_star = np.asarray(_vector("w_star", w_star, d), np.float64)
    noise_std = _checks.positive_float("noise_std", noise_std, allow_zero=True)
    v = w - w_star
    cv = cov @ v
    return GradientCovariance(noise_std**2 * cov, float(v @ cv) * cov + np.outer(cv, cv))
