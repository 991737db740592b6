r"""The pure core of training: a train state, one SGD step, many steps in one ``lax.scan``, an evaluation.

Nothing here validates or touches the host: every function is pure, so it can be ``jax.jit``-ed,
``jax.vmap``-ed over runs (a sweep) and sharded over devices. :mod:`sgdlab.train` is the host
edge that checks arguments, compiles these functions once and reports results.

A Flax NNX model is split at the edge (``nnx.split(model, nnx.Param, ...)``) into a graph
definition and two state pytrees: the trainable parameters and *everything else* the model
holds (dropout RNG counts, batch-norm statistics). The :class:`TrainState` carries both, so a
dropout layer draws a new mask every step and batch statistics advance.

One step on a minibatch :math:`(x, y)` of size :math:`B`:

.. math::  L_B(w) = \frac1B\sum_{i=1}^B \ell\big(f_w(x_i), y_i\big),\qquad g = \nabla L_B(w),

           (u, s) \leftarrow \mathrm{update}(g, s, w),\qquad w \leftarrow w + u,

where ``update`` is any Optax transformation. It receives Optax's extra arguments
``value`` (the minibatch loss :math:`L_B(w)`) and ``grad_fn`` (``grad_fn(w', i)`` is
:math:`\nabla L_B(w')` on the *same* minibatch), when it accepts them: that is what
``optax.contrib.sam(..., opaque_mode=True)`` (two gradients per step, Foret et al. 2021) and
``optax.polyak_sgd`` (the step needs the loss value, Loizou et al. 2021) need.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from .losses import PerExampleLoss, cross_entropy, soft_error, zero_one
from .parallel import shard_batch

__all__ = ["TrainState", "Probe", "split_model", "merge", "extra_arg_names", "train_step", "train_steps", "evaluate",
           "optimize"]


class TrainState(NamedTuple):
    """Everything a run carries from step to step; a pytree.

    ``params``: the model's ``nnx.Param`` state; ``model_state``: the rest of its NNX state
    (RNG counts, batch statistics); ``opt_state``: the Optax state; ``step``: steps taken.
    """

    params: Any
    model_state: Any
    opt_state: Any
    step: jax.Array


def split_model(model: nnx.Module) -> tuple[Any, Any, Any]:
    """``(graphdef, params, model_state)``: the model's parameters apart from the rest of its state."""
    return nnx.split(model, nnx.Param, ...)


def merge(graphdef: Any, params: Any, model_state: Any) -> nnx.Module:
    """``nnx.merge`` for use inside a transformation that lets the model mutate its state (dropout RNGs).

    Flax (0.11 and later) reuses a State's ``Variable`` objects when merging, and a Variable may
    only be updated in the trace that created it; ``jax.tree.map`` makes fresh ones in the current trace.
    """
    fresh = jax.tree.map(lambda v: v, model_state)
    return nnx.merge(graphdef, params, fresh)


def extra_arg_names(tx: optax.GradientTransformation) -> frozenset[str]:
    """Which of Optax's extra arguments (``value``, ``grad_fn``) ``tx.update`` accepts.

    A plain ``GradientTransformation`` accepts none; ``optax.chain`` and most extra-args
    transformations accept any keyword; ``optax.contrib.sam`` in opaque mode only ``grad_fn``.
    """
    if not isinstance(tx, optax.GradientTransformationExtraArgs):
        return frozenset()
    params = inspect.signature(tx.update).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return frozenset({"value", "grad_fn"})
    return frozenset({"value", "grad_fn"} & {p.name for p in params})


def train_step(
    state: TrainState,
    batch: tuple[jax.Array, jax.Array],
    *,
    graphdef: Any,
    tx: optax.GradientTransformation,
    loss_fn: PerExampleLoss = cross_entropy,
    extra_args: frozenset[str] = frozenset({"value", "grad_fn"}),
    batch_sharding: Any = None,
) -> tuple[TrainState, jax.Array]:
    """One step of minibatch training; returns the new state and the minibatch loss before the step.

    With ``batch_sharding`` (:func:`sgdlab.parallel.batch_sharding`) the minibatch is split over the
    devices of a mesh and XLA averages the gradient across them: synchronous data parallelism.
    """
    x, y = shard_batch(batch, batch_sharding)

    def batch_loss(params, model_state):
        model = merge(graphdef, params, model_state)
        value = loss_fn(model(x), y).mean()
        return value, nnx.split(model, nnx.Param, ...)[2]  # the model state after the call

    (value, model_state), grads = jax.value_and_grad(batch_loss, has_aux=True)(state.params, state.model_state)

    def grad_fn(params, _index):  # the gradient at other weights, on the same minibatch
        return jax.grad(lambda p: batch_loss(p, state.model_state)[0])(params)

    extra = {"value": value, "grad_fn": grad_fn}
    updates, opt_state = tx.update(grads, state.opt_state, state.params, **{k: extra[k] for k in extra_args})
    params = optax.apply_updates(state.params, updates)
    return TrainState(params, model_state, opt_state, state.step + 1), value


def train_steps(
    state: TrainState,
    key: jax.Array,
    *,
    source: Any,
    batch_size: int,
    length: int,
    step_fn: Callable[[TrainState, tuple[jax.Array, jax.Array]], tuple[TrainState, jax.Array]],
    unroll: int = 1,
) -> tuple[TrainState, jax.Array]:
    """``length`` steps in one ``lax.scan``; the batch of step ``t`` is drawn from ``source`` with ``key`` and ``t``.

    ``step_fn`` is :func:`train_step` with its keyword arguments bound. Returns the final state
    and the minibatch losses of the steps, shape ``(length,)``.
    """
    plan = source.plan(key, state.step, length, batch_size)

    def body(state, planned):
        return step_fn(state, source.batch(planned, batch_size))

    return jax.lax.scan(body, state, plan, unroll=unroll)


def optimize(
    tx: optax.GradientTransformation,
    params: Any,
    gradient: Callable[..., Any],
    *,
    steps: int,
    args: tuple = (),
    trace: Callable[..., Any] | None = None,
) -> tuple[Any, Any, Any]:
    r"""Iterate an Optax transformation on a gradient oracle: ``steps`` updates in one ``lax.scan``.

    At step :math:`t = 0, 1, \dots` the gradient is ``gradient(params, t, *args)``: an exact
    gradient, a noisy one (draw with ``jax.random.fold_in(key, t)`` from a key in ``args``), or a
    minibatch gradient of a toy problem written out by hand. Returns the final parameters, the
    final optimizer state and ``trace(params, *args)`` after every step, stacked (default: the
    parameters, so that the result is the trajectory :math:`w_1,\dots,w_T`).
    """
    record = (lambda p, *_: p) if trace is None else trace

    def body(carry, t):
        p, s = carry
        updates, s = tx.update(gradient(p, t, *args), s, p)
        p = optax.apply_updates(p, updates)
        return (p, s), record(p, *args)

    (params, state), traced = jax.lax.scan(body, (params, tx.init(params)), jnp.arange(steps))
    return params, state, traced


class Probe(NamedTuple):
    """What a metric function ``fn(probe) -> scalar`` sees at an evaluation, inside the compiled program.

    ``model``: the model at the evaluated point (in evaluation mode); ``params``: its parameters;
    ``opt_state`` and ``step`` of the run; ``key``: a fresh key for this evaluation; ``data``: the
    evaluation :class:`~sgdlab.data.Dataset`; ``loss_fn(params, x, y)``: the mean training loss
    (training mode, the current model state); ``sample(key, batch_size)``: a batch from the
    training source drawn independently (with replacement), e.g. for gradient-noise estimates.
    """

    model: nnx.Module
    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    data: Any
    loss_fn: Callable[[Any, jax.Array, jax.Array], jax.Array]
    sample: Callable[[jax.Array, int], tuple[jax.Array, jax.Array]]


def _standard_metrics(model, data, loss_fn, classification: bool) -> dict[str, jax.Array]:
    out = {}
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        outputs = model(x)
        out[f"{split}_loss"] = loss_fn(outputs, y).mean()
        if classification:
            out[f"{split}_acc"] = 1.0 - zero_one(outputs, y).mean()
            out[f"{split}_soft_error"] = soft_error(outputs, y).mean()
    return out


def evaluate(
    state: TrainState,
    key: jax.Array,
    *,
    graphdef: Any,
    eval_graphdef: Any,
    data: Any,
    source: Any,
    loss_fn: PerExampleLoss = cross_entropy,
    metrics: dict[str, Callable[[Probe], jax.Array]] | None = None,
    eval_params: Callable[[Any, Any], Any] | None = None,
) -> dict[str, jax.Array]:
    """Loss (and, for integer labels, accuracy and soft error) on ``data``'s train and test sets, and ``metrics``.

    ``eval_params(params, opt_state)`` picks the point to evaluate (default: the iterate), e.g.
    a weight average held in the optimizer state.
    """
    params = state.params if eval_params is None else eval_params(state.params, state.opt_state)
    model = nnx.merge(eval_graphdef, params, state.model_state)
    classification = jnp.issubdtype(data.y_test.dtype, jnp.integer)
    out = _standard_metrics(model, data, loss_fn, bool(classification))

    def train_loss(p, x, y):
        return loss_fn(merge(graphdef, p, state.model_state)(x), y).mean()

    probe = Probe(model, params, state.opt_state, state.step, key, data, train_loss, source.draw)
    for i, (name, fn) in enumerate((metrics or {}).items()):
        out[name] = jnp.asarray(fn(probe._replace(key=jax.random.fold_in(key, i))), jnp.float32)
    return out
