r"""Wilson et al.'s (2017) problem on which adaptive methods generalise badly and gradient descent does not.

*The marginal value of adaptive gradient methods in machine learning* (NeurIPS 2017, §3.3)
builds a binary least-squares problem :math:`\min_w \frac{1}{2n}\|Xw-y\|^2` with more
features than examples. Each label is :math:`y_i = +1` with probability :math:`p>\frac12`,
else :math:`-1`. Example :math:`i` has

* :math:`x_{i1} = y_i` (a feature that reveals the label),
* :math:`x_{i2} = x_{i3} = 1` (two constant features),
* a private block of five coordinates :math:`4+5(i-1),\dots,8+5(i-1)` (1-based) of which the
  first one is 1 if :math:`y_i=1` and all five are 1 if :math:`y_i=-1`; all else is 0.

So :math:`d` needs only :math:`3+5n` coordinates; the paper takes :math:`d = 6n`, and so do we
(the spare columns are zero and never move). A fresh test example's private block sits on
coordinates no training example uses; every method here starts at :math:`w=0` and never moves
those weights (their gradient is zero), so the test features keep only :math:`(y, 1, 1)` and
the prediction is :math:`\operatorname{sign}(y\,w_1 + w_2 + w_3)`.

The facts the chapter checks:

* :math:`s = \operatorname{sign}(X^\top y)` satisfies :math:`Xs = 4y`. Wilson et al. show that
  AdaGrad, RMSProp and Adam started at 0 then keep :math:`w_t \propto s` and converge to
  :math:`w = s/4`, which predicts :math:`\operatorname{sign}((y+2)/4) = +1` for every test point
  (when there are more positive labels than negative, so :math:`s_2=s_3=+1`): test error
  :math:`\approx 1-p`.
* Gradient descent from 0 converges to the minimum-norm interpolant :math:`X^\top(XX^\top)^{-1}y`,
  which classifies the test points correctly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _checks
from . import train as sgd_train
from .data import Dataset

BLOCK = 5


def features(y: np.ndarray, d: int | None = None) -> np.ndarray:
    """Wilson et al.'s design matrix for labels ``y`` in {-1, +1}: shape ``(n, d)``.

    By default ``d = 6n`` as in the paper (``3 + 5n`` when ``n < 3``, the fewest columns that fit).
    """
    y = np.asarray(_checks.finite_array("y", y, ndim=1))
    if not np.all(np.isin(y, (-1, 1))):
        raise ValueError("y must hold only the labels -1 and +1")
    n = y.size
    d = max(6 * n, 3 + BLOCK * n) if d is None else _checks.positive_int("d", d)
    if d < 3 + BLOCK * n:
        raise ValueError(f"d must be at least 3 + 5n = {3 + BLOCK * n}, got {d}")
    x = np.zeros((n, d), np.float32)
    x[:, 0] = y
    x[:, 1:3] = 1.0
    for i, label in enumerate(y):  # building the design matrix, not a training loop
        start = 3 + BLOCK * i
        x[i, start : start + (1 if label == 1 else BLOCK)] = 1.0
    return x


def dataset(key: jax.Array, n: int, p: float = 0.7, *, n_test: int = 1000) -> Dataset:
    """Draw training labels and features of Wilson et al.'s problem and a test set (float32 arrays).

    Test rows keep only the coordinates a trained model can use: :math:`(y, 1, 1, 0, \\dots)`.
    """
    n = _checks.positive_int("n", n)
    n_test = _checks.positive_int("n_test", n_test)
    p = _checks.fraction("p", p)
    if p <= 0.5:
        raise ValueError(f"p must exceed 1/2, got {p!r}")
    k_train, k_test = jax.random.split(key)
    y = np.where(np.asarray(jax.random.bernoulli(k_train, p, (n,))), 1.0, -1.0).astype(np.float32)
    y_test = np.where(np.asarray(jax.random.bernoulli(k_test, p, (n_test,))), 1.0, -1.0).astype(np.float32)
    x = features(y)
    x_test = np.zeros((n_test, x.shape[1]), np.float32)
    x_test[:, 0], x_test[:, 1:3] = y_test, 1.0
    return Dataset(jnp.asarray(x), jnp.asarray(y), jnp.asarray(x_test), jnp.asarray(y_test))


def min_norm_solution(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""The minimum-norm interpolant :math:`X^\top(XX^\top)^{-1}y`, where gradient descent from 0 converges."""
    x = np.asarray(_checks.finite_array("x", x, ndim=2), dtype=float)
    y = np.asarray(_checks.finite_array("y", y, ndim=1), dtype=float)
    if x.shape[0] != y.size:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.size} entries")
    return x.T @ np.linalg.solve(x @ x.T, y)


def adaptive_solution(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""The limit of AdaGrad, RMSProp and Adam from 0: :math:`s/c` with :math:`s=\operatorname{sign}(X^\top y)`, :math:`Xs = cy`.

    Raises ``ValueError`` if :math:`Xs` is not a multiple of :math:`y` (Wilson et al.'s condition).
    """
    x = np.asarray(_checks.finite_array("x", x, ndim=2), dtype=float)
    y = np.asarray(_checks.finite_array("y", y, ndim=1), dtype=float)
    s = np.sign(x.T @ y)
    c = (x @ s) / y
    if not np.allclose(c, c[0]):
        raise ValueError("X sign(X^T y) is not a multiple of y: no common adaptive limit")
    return s / c[0]


def test_error(w: np.ndarray, data: Dataset) -> float:
    """Fraction of test points with :math:`\\operatorname{sign}(x^\\top w) \\ne y` (a score of exactly 0 counts as an error)."""
    w = np.asarray(w, dtype=float)
    scores = np.asarray(data.x_test, dtype=float) @ w
    return float(np.mean(np.sign(scores) != np.asarray(data.y_test)))


def _loss(w, x, y):
    r = x @ w - y
    return 0.5 * jnp.dot(r, r) / x.shape[0]


def _gradient(w, _t, x, y):
    return jax.grad(_loss)(w, x, y)


def train(optimizer: optax.GradientTransformation, data: Dataset, steps: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Full-batch training from :math:`w=0` on :math:`\frac{1}{2n}\|Xw-y\|^2` (:func:`sgdlab.train.optimize`).

    Returns the final weights and the training loss after every step (shape ``(steps,)``).
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    steps = _checks.positive_int("steps", steps)
    x, y = data.x_train, data.y_train
    w, _, losses = sgd_train.optimize(optimizer, jnp.zeros(x.shape[1], x.dtype), _gradient, steps=steps,
                                      args=(x, y), trace=_loss)
    return np.asarray(w), np.asarray(losses)
