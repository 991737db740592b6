r"""The noisy quadratic model (NQM): exact expected risk of SGD, preconditioning, momentum and EMA.

The model of Zhang et al., *Which algorithmic choices matter at which batch sizes? Insights from
a noisy quadratic model* (NeurIPS 2019), in the eigenbasis of its Hessian:

.. math:: L(\theta) = \tfrac12\sum_i h_i\theta_i^2,\qquad
          g = H\theta + \varepsilon,\quad \operatorname{Cov}\varepsilon = C/B = \operatorname{diag}(c_i)/B,

a fresh noise draw at every step (the batch of size :math:`B` averages :math:`B` per-example
noises of covariance :math:`C`), and a start with :math:`\mathbb E\theta_{0,i}^2 = s_0`. The
preconditioned update is :math:`\theta\leftarrow\theta-\alpha H^{-\gamma}g` (the paper's
:math:`P = H^\gamma`; :math:`\gamma=0` is SGD). Each coordinate is then a linear recursion with
:math:`x_i = \alpha h_i^{1-\gamma}` and per-step noise variance :math:`n_i = \alpha^2h_i^{-2\gamma}c_i/B`:

* SGD: :math:`\theta' = (1-x)\theta - \eta`, :math:`\mathbb E\eta^2 = n`;
* heavy ball :math:`v' = \beta v - \alpha H^{-\gamma}g,\ \theta' = \theta + v'`:
  :math:`(\theta, v)' = A(\theta, v) - \eta(1, 1)` with :math:`A = \begin{pmatrix}1-x&\beta\\-x&\beta\end{pmatrix}`;
* an exponential moving average of the iterates :math:`\tilde\theta' = \mu\tilde\theta+(1-\mu)\theta'`,
  tracked as :math:`u = \tilde\theta/(1-\mu)`, :math:`u' = \mu u + \theta'`, started at
  :math:`u_0 = \theta_0/(1-\mu)`; its risk is :math:`\tfrac12 h(1-\mu)^2\mathbb E u^2`.

The second moments :math:`S = \mathbb E zz^\top` of the state :math:`z` obey the exact affine
recursion :math:`S' = ASA^\top + n\,\mathbf 1\mathbf 1^\top`; for heavy ball, on
:math:`p = (\mathbb E\theta^2, \mathbb Ev^2, \mathbb E\theta v)`, it reads :math:`p' = Tp + n(1,1,1)^\top` with

.. math:: T = \begin{pmatrix}(1-x)^2 & \beta^2 & 2\beta(1-x)\\ x^2 & \beta^2 & -2\beta x\\
          -x(1-x) & \beta^2 & \beta(1-2x)\end{pmatrix}

(the paper's eq. 21; the EMA's is its eq. 38). Everything here is exact, with no Monte Carlo:
:func:`risk` gives the expected loss at every step, :func:`steps_to_target` the fewest steps to a
target risk, by doubling (repeated squaring of the affine map) and bisection over the step count,
so millions of steps cost about 60 matrix products. No eigendecomposition is used (it fails at
repeated roots, e.g. heavy ball's critical damping), and the maps are stored as :math:`A = I + E`:
in float32, :math:`1 - x` loses the small :math:`x` of flat directions, :math:`E` keeps it.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _checks

__all__ = [
    "MAX_STEPS",
    "StepsToTarget",
    "risk",
    "steps_to_target",
    "noise_floor",
    "information_bound",
    "stationary_variance",
    "noisy_quadratic_loss",
]

_DOUBLINGS = 30
MAX_STEPS = 2**_DOUBLINGS  #: the search horizon of :func:`steps_to_target`; ``inf`` beyond it
_BLOCK = 128  # steps per block of :func:`risk`
_CHUNK_FLOATS = 2**24  # floats held per chunk of configurations (64 MB in float32)


# ----------------------------------------------------------------------------- validation


def _spectrum(h: Any, c: Any) -> tuple[np.ndarray, np.ndarray]:
    h = np.asarray(_checks.finite_array("h", h, ndim=1), dtype=float)
    c = np.asarray(_checks.finite_array("c", c, ndim=1), dtype=float)
    if np.any(h <= 0):
        raise ValueError("h must hold positive curvatures (the eigenvalues of H)")
    if c.shape != h.shape:
        raise ValueError(f"c must have the shape of h, {h.shape}, got {c.shape}")
    if np.any(c < 0):
        raise ValueError("c must hold non-negative noise variances (the diagonal of C)")
    return h, c


def _positive_array(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(_checks.finite_array(name, value), dtype=float)
    if np.any(arr <= 0):
        raise ValueError(f"{name} must hold positive numbers, got {value!r}")
    return arr


def _unit_interval(name: str, value: Any) -> float:
    v = _checks.positive_float(name, value, allow_zero=True)
    if not v < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return v


def _options(gamma: Any, momentum: Any, ema: Any, s0: Any) -> tuple[float, float, float, float]:
    gamma = _checks.positive_float("gamma", gamma, allow_zero=True)
    if gamma > 1:
        raise ValueError(f"gamma must lie in [0, 1] (1 is stochastic Newton), got {gamma!r}")
    return gamma, _unit_interval("momentum", momentum), _unit_interval("ema", ema), _checks.positive_float("s0", s0)


# ------------------------------------------------------------------ the affine map per coordinate
# A k x k matrix (k = 1, 2 or 3: the state z = (theta, [v], [u])) is a tuple of k rows, each a
# tuple of k arrays over coordinates (and configurations), so every product is elementwise and
# fuses. An affine map of second moments S -> (I + E) S (I + E)^T + N is the pair (E, N).


def _sum(terms):
    acc = terms[0]
    for t in terms[1:]:
        acc = acc + t
    return acc


def _matmul(a, b):
    k = len(a)
    return tuple(tuple(_sum([a[i][m] * b[m][j] for m in range(k)]) for j in range(k)) for i in range(k))


def _apply(e, n, s):
    """(I + E) S (I + E)^T + N for symmetric S and N, written so that a small E keeps its precision."""
    k = len(s)
    p = _matmul(e, s)
    out = [[None] * k for _ in range(k)]
    for i in range(k):
        for j in range(i, k):
            pet = _sum([p[i][m] * e[j][m] for m in range(k)])  # (E S E^T)_ij
            out[i][j] = out[j][i] = s[i][j] + (p[i][j] + p[j][i] + pet) + n[i][j]
    return tuple(map(tuple, out))


def _then(first, second):
    """The affine map ``second`` after ``first``: (I+E2)(I+E1) = I + E1 + E2 + E2 E1."""
    (e1, n1), (e2, n2) = first, second
    prod = _matmul(e2, e1)
    e = tuple(tuple(e1[i][j] + e2[i][j] + prod[i][j] for j in range(len(e1))) for i in range(len(e1)))
    return e, _apply(e2, n2, n1)


def _dynamics(x, noise, beta, mu, s0, has_v: bool, has_u: bool):
    """One step's map (E, N), the start S_0 and the readout (index, weight) for state (theta, [v], [u])."""
    zero, one = jnp.zeros_like(x), jnp.ones_like(x)
    rows = [[-x] + ([beta * one] if has_v else [])]  # theta' = (1 - x) theta + beta v - eta
    if has_v:
        rows.append([-x, (beta - 1) * one])  # v' = -x theta + beta v - eta
    if has_u:  # u' = mu u + theta'
        rows = [r + [zero] for r in rows]
        rows.append([1 - x] + ([beta * one] if has_v else []) + [(mu - 1) * one])
    k = len(rows)
    e = tuple(map(tuple, rows))
    n = tuple(tuple(noise for _ in range(k)) for _ in range(k))  # the same noise -eta enters every component
    g = [1.0] + [0.0] * has_v + [1 / (1 - mu)] * has_u  # theta_0^2 = s0, v_0 = 0, u_0 = theta_0 / (1 - mu)
    s_start = tuple(tuple(s0 * g[i] * g[j] * one for j in range(k)) for i in range(k))
    weight = (1 - mu) ** 2 if has_u else 1.0
    return (e, n), s_start, k - 1 if has_u else 0, weight


def _coordinates(h, c, lr, bs, gamma):
    x = lr * h ** (1 - gamma)
    noise = lr**2 * h ** (-2 * gamma) * c / bs
    return x, noise


def _stable(x, beta):
    return jnp.all(x < 2 * (1 + beta), axis=-1)


# --------------------------------------------------------------------------------- risk


@functools.partial(jax.jit, static_argnames=("steps", "has_v", "has_u", "chunk"))
def _risk_curves(h, c, lrs, bss, gamma, beta, mu, s0, *, steps, has_v, has_u, chunk):
    half_h = 0.5 * h
    block = min(_BLOCK, steps + 1)
    n_blocks = -(-(steps + 1) // block)

    def one(config):
        lr, bs = config
        x, noise = _coordinates(h, c, lr, bs, gamma)
        step, s, r, w = _dynamics(x, noise, beta, mu, s0, has_v, has_u)
        # maps from a block's start to each of its first `block` steps, and the jump to the next
        ident = jax.tree.map(jnp.zeros_like, step)

        def grow(m, _):
            return _then(m, step), m

        jump, (e_in, n_in) = jax.lax.scan(grow, ident, None, length=block)

        def run(s, _):
            inside = jax.vmap(_apply, in_axes=(0, 0, None))(e_in, n_in, s)
            return _apply(*jump, s), w * (inside[r][r] * half_h).sum(axis=-1)

        _, out = jax.lax.scan(run, s, None, length=n_blocks)
        return out.reshape(-1)[: steps + 1]

    return jax.lax.map(one, (lrs, bss), batch_size=chunk)


def risk(
    h: Any, c: Any, *, learning_rate: Any, batch_size: Any, steps: int,
    gamma: float = 0.0, momentum: float = 0.0, ema: float = 0.0, s0: float = 1.0,
) -> np.ndarray:
    r"""Expected loss :math:`\mathbb E L(\theta_t)` of the NQM for :math:`t = 0, 1, \dots,` ``steps``, exactly.

    ``h`` and ``c`` (shape ``(d,)``) are the curvatures :math:`h_i` and per-example noise
    variances :math:`c_i`; ``learning_rate`` :math:`\alpha` and ``batch_size`` :math:`B` are numbers
    or arrays that broadcast together; the result has shape ``broadcast_shape + (steps + 1,)``.
    The update is :math:`\theta\leftarrow\theta-\alpha H^{-\gamma}g` (``gamma``), with heavy-ball
    ``momentum`` :math:`\beta` (:math:`v\leftarrow\beta v-\alpha H^{-\gamma}g,\ \theta\leftarrow\theta+v`)
    and/or the loss of an EMA of the iterates with decay ``ema`` :math:`\mu`; ``s0`` is
    :math:`\mathbb E\theta_{0,i}^2`. Per coordinate, for plain SGD,

    .. math:: \mathbb E L_i(t) = (1-x_i)^{2t}\,\tfrac12h_is_0 + \bigl(1-(1-x_i)^{2t}\bigr)
              \frac{\alpha c_ih_i^{-\gamma}}{2B(2-x_i)},\qquad x_i = \alpha h_i^{1-\gamma};

    the code runs the exact second-moment recursion of the module docstring in blocks of
    128 steps (each step from the block's start by a precomputed map), so float32 rounding does
    not accumulate step by step. Unstable settings (:math:`x_i\ge2`, or :math:`x_i\ge2(1+\beta)` with
    momentum) grow without bound, to ``inf`` or ``nan`` once float32 overflows. Zhang et al. (NeurIPS 2019), Section 3 and Appendix A.
    """
    h, c = _spectrum(h, c)
    lr = _positive_array("learning_rate", learning_rate)
    bs = _positive_array("batch_size", batch_size)
    steps = _checks.nonnegative_int("steps", steps)
    gamma, beta, mu, s0 = _options(gamma, momentum, ema, s0)
    try:
        shape = np.broadcast_shapes(lr.shape, bs.shape)
    except ValueError:
        raise ValueError(f"learning_rate {lr.shape} and batch_size {bs.shape} do not broadcast") from None
    lrs, bss = (np.broadcast_to(a, shape).reshape(-1) for a in (lr, bs))
    k = 1 + (beta > 0) + (mu > 0)
    per_config = min(_BLOCK, steps + 1) * k * k * h.size
    chunk = max(1, min(lrs.size, _CHUNK_FLOATS // per_config))
    out = _risk_curves(jnp.asarray(h, jnp.float32), jnp.asarray(c, jnp.float32),
                       jnp.asarray(lrs, jnp.float32), jnp.asarray(bss, jnp.float32),
                       jnp.float32(gamma), jnp.float32(beta), jnp.float32(mu), jnp.float32(s0),
                       steps=steps, has_v=beta > 0, has_u=mu > 0, chunk=chunk)
    return np.asarray(out, dtype=float).reshape(shape + (steps + 1,))


# ------------------------------------------------------------------------ steps to target


class StepsToTarget(NamedTuple):
    """What :func:`steps_to_target` returns.

    ``steps[b]``: the fewest steps to the target at batch size ``b``, minimised over the
    learning rates (``inf`` if no rate reaches it); ``learning_rate[b]``: the rate that achieves
    it (the smallest such rate; NaN where none does); ``steps_per_rate[b, l]``: the steps of
    every rate (``inf`` for rates that diverge or never reach the target).
    """

    steps: np.ndarray
    learning_rate: np.ndarray
    steps_per_rate: np.ndarray


@functools.partial(jax.jit, static_argnames=("has_v", "has_u", "chunk"))
def _first_steps(h, c, target, lrs, bss, gamma, beta, mu, s0, *, has_v, has_u, chunk):
    half_h = 0.5 * h
    powers = 2 ** jnp.arange(_DOUBLINGS, dtype=jnp.int32)

    def one(config):
        lr, bs = config
        x, noise = _coordinates(h, c, lr, bs, gamma)
        step, s_start, r, w = _dynamics(x, noise, beta, mu, s0, has_v, has_u)

        def loss(s):
            return w * (s[r][r] * half_h).sum(axis=-1)

        def double(m, _):  # the map of 2^k steps, and the risk at step 2^k
            return _then(m, m), (m, loss(_apply(*m, s_start)))

        _, ((e_tab, n_tab), at_powers) = jax.lax.scan(double, step, None, length=_DOUBLINGS)
        below = at_powers <= target
        j = jnp.where(below.any(), jnp.argmax(below), _DOUBLINGS)  # first power of two below the target

        def bisect(carry, inputs):  # binary lifting: the last step above the target in [2^(j-1), 2^j)
            t, s = carry
            e, n, k = inputs
            cand = _apply(e, n, s)
            go = (k < j) & (loss(cand) > target)
            return (jnp.where(go, t + powers[k], t), jax.tree.map(lambda a, b: jnp.where(go, a, b), cand, s)), None

        (t, _), _ = jax.lax.scan(bisect, (jnp.int32(0), s_start), (e_tab, n_tab, jnp.arange(_DOUBLINGS)),
                                 reverse=True)
        found = jnp.where(loss(s_start) <= target, 0.0, (t + 1).astype(jnp.float32))
        return jnp.where((j < _DOUBLINGS) & _stable(x, beta), found, jnp.inf)

    return jax.lax.map(one, (lrs, bss), batch_size=chunk)


def steps_to_target(
    h: Any, c: Any, target: float, *, batch_sizes: Any, learning_rates: Any,
    gamma: float = 0.0, momentum: float = 0.0, ema: float = 0.0, s0: float = 1.0,
) -> StepsToTarget:
    r"""Fewest steps to an expected loss :math:`\le` ``target``, per batch size, at the best constant rate.

    For every batch size :math:`B` in ``batch_sizes`` and rate :math:`\alpha` in ``learning_rates``
    (both 1-D), the first step :math:`t` with :math:`\mathbb E L(\theta_t)\le` ``target`` in the NQM of
    :func:`risk` (same ``gamma``, ``momentum``, ``ema``, ``s0``); then the minimum over the rates,
    as in Zhang et al. (2019) and Shallue et al. (2019). Rates that make any coordinate unstable
    (:math:`\alpha h_i^{1-\gamma}\ge2`, or :math:`\ge2(1+\beta)` with momentum) never reach it, and
    neither do settings that need more than :data:`MAX_STEPS` :math:`=2^{30}` steps.

    The search is exact arithmetic on the second moments, never a step-by-step run: 30 squarings
    of the one-step affine map give the maps of :math:`2^k` steps and the risk at every power of
    two; the first power of two at or below the target brackets the answer, and binary lifting
    (bisection over the bits of :math:`t`) finds :math:`t` with :math:`\mathbb E L_{t-1} >` ``target``
    :math:`\ge\mathbb E L_t` inside the bracket. That is the first such step whenever the risk does not
    dip below the target and climb back between two powers of two; it always does for plain SGD
    from a start above every noise floor, where the risk decreases monotonically.
    Returns :class:`StepsToTarget`.
    """
    h, c = _spectrum(h, c)
    target = _checks.positive_float("target", target)
    bs = np.asarray(_checks.finite_array("batch_sizes", batch_sizes, ndim=1), dtype=float)
    lr = np.asarray(_checks.finite_array("learning_rates", learning_rates, ndim=1), dtype=float)
    if np.any(bs <= 0):
        raise ValueError("batch_sizes must be positive")
    if np.any(lr <= 0):
        raise ValueError("learning_rates must be positive")
    gamma, beta, mu, s0 = _options(gamma, momentum, ema, s0)
    grid_b, grid_l = (a.reshape(-1) for a in np.meshgrid(bs, lr, indexing="ij"))
    k = 1 + (beta > 0) + (mu > 0)
    chunk = max(1, min(grid_b.size, _CHUNK_FLOATS // (_DOUBLINGS * 2 * k * k * h.size)))
    per_rate = _first_steps(jnp.asarray(h, jnp.float32), jnp.asarray(c, jnp.float32), jnp.float32(target),
                            jnp.asarray(grid_l, jnp.float32), jnp.asarray(grid_b, jnp.float32),
                            jnp.float32(gamma), jnp.float32(beta), jnp.float32(mu), jnp.float32(s0),
                            has_v=beta > 0, has_u=mu > 0, chunk=chunk)
    per_rate = np.asarray(per_rate, dtype=float).reshape(bs.size, lr.size)
    best = np.argmin(per_rate, axis=1)
    steps = per_rate[np.arange(bs.size), best]
    return StepsToTarget(steps, np.where(np.isfinite(steps), lr[best], np.nan), per_rate)


# ------------------------------------------------------------------------- closed forms


def noise_floor(
    h: Any, c: Any, *, learning_rate: float, batch_size: float,
    gamma: float = 0.0, momentum: float = 0.0, ema: float = 0.0,
) -> np.ndarray:
    r"""Stationary expected loss per coordinate, :math:`\lim_t\mathbb E L_i(\theta_t)`, in closed form.

    With :math:`x_i = \alpha h_i^{1-\gamma}` (stable settings only):

    .. math:: \text{SGD: } \frac{\alpha c_ih_i^{-\gamma}}{2B(2-x_i)},\qquad
              \text{heavy ball: } \frac{(1+\beta)\,\alpha c_ih_i^{-\gamma}}{2B(1-\beta)(2+2\beta-x_i)},

    and the EMA of the iterates multiplies SGD's floor by
    :math:`\frac{(1-\mu)(1+(1-x_i)\mu)}{(1+\mu)(1-(1-x_i)\mu)} < 1` (Zhang et al. 2019, eqs. 6, 22 and
    the EMA appendix; the lecture slide drops the :math:`1/B`). Momentum and EMA together have no
    closed form here: read the floor off :func:`risk` at a large step instead.
    """
    h, c = _spectrum(h, c)
    lr = _checks.positive_float("learning_rate", learning_rate)
    bs = _checks.positive_float("batch_size", batch_size)
    gamma, beta, mu, _ = _options(gamma, momentum, ema, 1.0)
    if beta > 0 and mu > 0:
        raise ValueError("noise_floor has closed forms for momentum or ema, not both")
    x = lr * h ** (1 - gamma)
    if np.any(x >= 2 * (1 + beta)):
        raise ValueError("learning_rate is unstable for the largest curvature: no stationary state")
    floor = (1 + beta) * lr * c * h**-gamma / (2 * bs * (1 - beta) * (2 * (1 + beta) - x))
    if mu > 0:
        floor = floor * (1 - mu) * (1 + (1 - x) * mu) / ((1 + mu) * (1 - (1 - x) * mu))
    return floor


def information_bound(h: Any, c: Any, n_samples: Any) -> np.ndarray:
    r"""The expected loss of the best estimate from ``n_samples`` examples: :math:`\sum_i c_i/(2nh_i)`.

    Each example's gradient :math:`H\theta + \varepsilon` tells :math:`\theta^\star` up to noise of
    covariance :math:`H^{-1}CH^{-1}`; the mean of :math:`n` of them (the maximum-likelihood
    estimate for Gaussian noise, which attains the Cramér–Rao bound) has risk
    :math:`\frac12\operatorname{tr}(H\,H^{-1}CH^{-1})/n = \sum_i c_i/(2nh_i)`, which is :math:`d/(2n)`
    for :math:`C = H`. SGD after :math:`t` steps has used :math:`n = tB` examples, so it needs at least
    :math:`d/(2\,\text{target}\,B)` steps (Zhang et al. 2019; Grosse, CSC2541 lecture 7).
    """
    h, c = _spectrum(h, c)
    n = _positive_array("n_samples", n_samples)
    return (c / h).sum() / (2 * n)


# ------------------------------------------------------- one coordinate and a Monte-Carlo check


def stationary_variance(alpha: float, beta: float, lam: float, noise_var: float) -> float:
    r"""Stationary :math:`\mathbb E w^2` of heavy ball on :math:`\frac12\lambda w^2` with gradient noise of variance :math:`\sigma^2`.

    With noisy gradients :math:`g_t = \lambda w_t + \sigma\xi_t`, :math:`\xi_t` i.i.d. standard
    normal, and :math:`0<\alpha\lambda<2(1+\beta)` (the stability condition), the iterates settle
    into a stationary distribution with

    .. math:: \mathbb E w^2 = \frac{\alpha\sigma^2(1+\beta)}{\lambda(1-\beta)\,\bigl(2(1+\beta)-\alpha\lambda\bigr)}
              \;\xrightarrow{\;\alpha\to0\;}\; \frac{\alpha\sigma^2}{2\lambda(1-\beta)} = \frac{\alpha'\sigma^2}{2\lambda},

    with :math:`\alpha' = \alpha/(1-\beta)`; :math:`\beta=0` is SGD's :math:`\alpha\sigma^2/(\lambda(2-\alpha\lambda))`.
    (The solution of the discrete Lyapunov equation of the 2x2 recursion; see e.g. Zhang et
    al., *Which algorithmic choices matter at which batch sizes?*, NeurIPS 2019.)
    """
    alpha = _checks.positive_float("alpha", alpha)
    beta = _unit_interval("beta", beta)
    lam = _checks.positive_float("lam", lam)
    noise_var = _checks.positive_float("noise_var", noise_var, allow_zero=True)
    if not alpha * lam < 2 * (1 + beta):
        raise ValueError(f"alpha*lam={alpha * lam:.4g} must be below 2(1+beta)={2 * (1 + beta):.4g} for a stationary state")
    return float(alpha * noise_var * (1 + beta) / (lam * (1 - beta) * (2 * (1 + beta) - alpha * lam)))


def noisy_quadratic_loss(
    key: jax.Array, alpha: float, beta: float, lambdas: Any, noise_std: float, w0: Any, *, steps: int, n_chains: int
) -> np.ndarray:
    r"""Mean loss over ``n_chains`` independent runs of ``optax.sgd(alpha, momentum=beta)`` with noisy gradients.

    The gradient at :math:`w` is :math:`\Lambda w + \sigma\xi` with :math:`\xi\sim N(0, I)`
    fresh at every step and in every chain. Returns :math:`\frac{1}{K}\sum_k f(w_t^{(k)})`
    for :math:`t = 0..\text{steps}` (shape ``(steps + 1,)``): all chains and steps in one
    compiled ``vmap`` of a ``lax.scan``.
    """
    alpha = _checks.positive_float("alpha", alpha)
    beta = _unit_interval("beta", beta)
    lam = np.asarray(_checks.finite_array("lambdas", lambdas, ndim=1), dtype=float)
    if np.any(lam <= 0):
        raise ValueError("lambdas must all be positive (a strictly convex quadratic)")
    noise_std = _checks.positive_float("noise_std", noise_std, allow_zero=True)
    w0 = _checks.finite_array("w0", w0, ndim=1)
    if w0.shape != lam.shape:
        raise ValueError(f"w0 must have shape {lam.shape} like lambdas, got {w0.shape}")
    steps = _checks.positive_int("steps", steps)
    n_chains = _checks.positive_int("n_chains", n_chains)
    out = _chains_loss(key, jnp.float32(alpha), jnp.float32(beta), jnp.asarray(lam, jnp.float32),
                       jnp.float32(noise_std), jnp.asarray(w0, jnp.float32), steps=steps, n_chains=n_chains)
    return np.asarray(out)


@functools.partial(jax.jit, static_argnames=("steps", "n_chains"))
def _chains_loss(key, alpha, beta, lam, noise_std, w0, *, steps, n_chains):
    tx = optax.sgd(alpha, momentum=beta)  # alpha and beta are traced: new values reuse the program

    def chain(k):
        def step(carry, kt):
            w, state = carry
            updates, state = tx.update(lam * w + noise_std * jax.random.normal(kt, w.shape), state, w)
            w = optax.apply_updates(w, updates)
            return (w, state), 0.5 * jnp.sum(lam * w * w)

        _, losses = jax.lax.scan(step, (w0, tx.init(w0)), jax.random.split(k, steps))
        return losses

    losses = jax.vmap(chain)(jax.random.split(key, n_chains)).mean(axis=0)
    return jnp.concatenate([0.5 * jnp.sum(lam * w0 * w0)[None], losses])
