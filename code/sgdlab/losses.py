r"""Per-example losses and error measures, and the full-batch loss of a model as a function of a vector.

Every function maps model outputs and targets of a batch to one value per example, so that a
minibatch loss is their mean and per-example gradients are a ``vmap`` away.

* :func:`cross_entropy` — softmax cross-entropy with integer labels,
  :math:`\ell = -\log\operatorname{softmax}(f(x))_y`;
* :func:`squared_error` — :math:`\tfrac12\|f(x)-y\|^2`;
* :func:`soft_error` — :math:`1-\operatorname{softmax}(f(x))_y`, the smooth test error of
  Nakkiran, Neyshabur & Sedghi (*The deep bootstrap*, ICLR 2021);
* :func:`zero_one` — :math:`\mathbf 1[\arg\max f(x)\ne y]`.

:func:`per_example_loss` resolves a loss given by name (``"cross_entropy"``, ``"mse"``) or as a
callable; :func:`flat_loss` turns a model and a dataset into :math:`w\mapsto L(w)` on a flat
parameter vector, for Hessians and descent-lemma checks.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

from . import _checks

LOSSES = ("cross_entropy", "mse")

PerExampleLoss = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Softmax cross-entropy of each example, :math:`-\log\operatorname{softmax}(f(x))_y` (Optax's)."""
    return optax.softmax_cross_entropy_with_integer_labels(outputs, labels)


def squared_error(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    r"""Half the squared error of each example, :math:`\tfrac12\|f(x)-y\|^2` summed over output dimensions."""
    return 0.5 * jnp.sum((outputs - targets).reshape(outputs.shape[0], -1) ** 2, axis=-1)


def soft_error(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Soft classification error of each example, :math:`1-\operatorname{softmax}(f(x))_y`.

    Its mean over a test set is the metric of Nakkiran et al. (2021): like the 0-1 error it lies
    in :math:`[0, 1]`, but it changes smoothly with the weights, so small differences between
    two training procedures are measurable with fewer test examples.
    """
    p = jax.nn.softmax(outputs, axis=-1)
    return 1.0 - jnp.take_along_axis(p, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]


def zero_one(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """0-1 error of each example: 1 where the arg-max class is not the label."""
    return (jnp.argmax(outputs, axis=-1) != labels).astype(jnp.float32)


_BY_NAME: dict[str, PerExampleLoss] = {"cross_entropy": cross_entropy, "mse": squared_error}


def resolve(loss: str | PerExampleLoss) -> PerExampleLoss:
    """The per-example loss function for ``loss``: a name in :data:`LOSSES` or a callable ``(outputs, targets) -> (batch,)``."""
    if callable(loss):
        return loss
    _checks.one_of("loss", loss, LOSSES)
    return _BY_NAME[loss]


def per_example_loss(outputs: jax.Array, targets: jax.Array, loss: str | PerExampleLoss = "cross_entropy") -> jax.Array:
    r"""Loss of each example under ``loss`` (see :func:`resolve`); the minibatch loss is its mean."""
    return resolve(loss)(outputs, targets)


def flat_loss(model: nnx.Module, x, y, *, loss: str | PerExampleLoss = "cross_entropy") -> tuple[Callable, jax.Array, Callable]:
    r"""The full-batch loss :math:`L(w)=\frac1N\sum_i\ell_i(w)` as a function of a flat parameter vector.

    Returns ``(loss_fn, w, unravel)``: ``loss_fn(w)`` is jitted, ``w`` is the model's current
    parameters flattened with :func:`jax.flatten_util.ravel_pytree` (the column order of
    :func:`sgdlab.noise.per_example_grads`), and ``unravel`` maps a flat vector back to the
    ``nnx.Param`` state.
    """
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
    fn = resolve(loss)
    x, y = map(jnp.asarray, _checks.examples(x, y))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    w, unravel = ravel_pytree(params)

    @jax.jit
    def loss_fn(w):
        out = nnx.merge(graphdef, unravel(w), rest)(x)
        return fn(out, y).mean()

    return loss_fn, w, unravel
