r"""Stochastic weight averaging (Izmailov, Podoprikhin, Garipov, Vetrov & Wilson 2018) as an Optax wrapper.

SWA runs SGD with a constant or cyclic learning rate in the tail of training and keeps the
running mean of the iterates :math:`w_t` collected every ``every`` steps from step ``start`` on,

.. math::  \bar w \leftarrow \bar w + \frac{w - \bar w}{n + 1},\qquad n \leftarrow n + 1,

where :math:`n` counts the iterates averaged so far (their Algorithm 1; with a cyclic schedule of
period :math:`c`, ``every = c`` collects the iterate at the end of each cycle, where the rate is
lowest). The network is then evaluated, and its batch-norm statistics recomputed if it has any,
at :math:`\bar w`, not at the last iterate.

:func:`swa` wraps any Optax transformation: the updates pass through unchanged and the average
lives in the optimizer state, so it travels with the training state through
:func:`sgdlab.train.fit` and :func:`sgdlab.train.sweep`; :func:`swa_params` reads it out, which
is what their ``eval_params=`` takes. The step uses ``optax.incremental_update`` with step
size :math:`1/(n+1)`. Why by hand: ``optax.ema`` averages the *updates*, not the weights, with
a fixed decay; Optax has no equal-weight average of iterates over a schedule.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import _checks, engine

__all__ = ["SWAState", "swa", "swa_params"]


class SWAState(NamedTuple):
    """The wrapped optimizer's state, the average :math:`\\bar w`, how many iterates it holds, and the step."""

    inner: Any
    average: Any
    count: jax.Array
    step: jax.Array


def swa(inner: optax.GradientTransformation, *, start: int, every: int = 1) -> optax.GradientTransformationExtraArgs:
    r"""Wrap ``inner`` so that its state also keeps the mean of the iterates :math:`w_t` for :math:`t \ge` ``start``.

    After update :math:`t = 1, 2, \dots` (the iterate :math:`w_t` it produces) the iterate joins the
    average when :math:`t \ge` ``start`` and :math:`(t - \text{start})` is a multiple of ``every``.
    The updates returned are those of ``inner``, so training is unchanged; ``update`` needs
    ``params``. Optax's extra arguments (``value``, ``grad_fn``) are passed on to ``inner`` when
    it accepts them (opaque ``optax.contrib.sam`` takes only ``grad_fn``).
    Read the average with :func:`swa_params`.
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise ValueError(f"inner must be an optax.GradientTransformation, got {type(inner).__name__}")
    start = _checks.nonnegative_int("start", start)
    every = _checks.positive_int("every", every)
    accepted = engine.extra_arg_names(inner)
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        return SWAState(inner.init(params), jax.tree.map(jnp.asarray, params), jnp.zeros((), jnp.int32),
                        jnp.zeros((), jnp.int32))

    def update_fn(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError("swa needs params in update(updates, state, params) to average the iterates")
        passed = {name: value for name, value in extra_args.items() if name in accepted}
        updates, inner_state = inner.update(updates, state.inner, params, **passed)
        step = state.step + 1
        new_params = optax.apply_updates(params, updates)
        collect = (step >= start) & ((step - start) % every == 0)
        averaged = optax.incremental_update(new_params, state.average, 1.0 / (state.count + 1).astype(jnp.float32))
        average = jax.tree.map(lambda a, old: jnp.where(collect, a, old), averaged, state.average)
        count = state.count + collect.astype(jnp.int32)
        return updates, SWAState(inner_state, average, count, step)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _find(state: Any) -> SWAState | None:
    """The first :class:`SWAState` in ``state``, searched as a pytree (chains, SAM's state, ...)."""
    is_swa = lambda node: isinstance(node, SWAState)  # noqa: E731
    return next((node for node in jax.tree.leaves(state, is_leaf=is_swa) if is_swa(node)), None)


def swa_params(params: Any, opt_state: Any) -> Any:
    r"""The average :math:`\bar w` held by a :func:`swa` state inside ``opt_state`` (e.g. in an ``optax.chain``).

    Before any iterate has been collected it returns ``params``. Pure JAX: pass it as
    ``eval_params=swa_params`` to :func:`sgdlab.train.fit` to evaluate the averaged weights.
    """
    found = _find(opt_state)
    if found is None:
        raise ValueError("opt_state holds no SWAState: build the optimizer with sgdlab.swa.swa(...)")
    return jax.tree.map(lambda a, p: jnp.where(found.count > 0, a, p).astype(p.dtype), found.average, params)
