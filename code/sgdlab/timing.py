"""Wall-clock cost of an SGD step on the device at hand, against batch size.

The cost of a step is flat while the batch is too small to fill the hardware and linear once
it is large enough (Grosse, CSC2541 lecture 7). :func:`time_per_step` measures that curve for
real, with the engine's own compiled steps (:func:`sgdlab.engine.train_steps`), compilation
excluded.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from . import _checks, engine, losses
from .data import Dataset, batch_source


def time_per_step(
    model: nnx.Module,
    optimizer: optax.GradientTransformation,
    data: Dataset,
    batch_sizes: Sequence[int],
    *,
    steps: int = 100,
    repeats: int = 5,
    min_seconds: float = 0.2,
    loss: str = "cross_entropy",
) -> np.ndarray:
    """Seconds per SGD step for each batch size: the median of ``repeats`` timings of at least ``min_seconds`` each.

    Each batch size is compiled and run once before timing, so the numbers exclude
    compilation. A timing calls the compiled ``steps``-step scan as many times as it takes to
    last ``min_seconds`` (so that the clock's resolution and one-off hiccups do not matter), and
    the median of several timings resists interference from other processes.
    """
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    source = batch_source(data)
    steps = _checks.positive_int("steps", steps)
    repeats = _checks.positive_int("repeats", repeats)
    min_seconds = _checks.positive_float("min_seconds", min_seconds)
    sizes = [source.check_batch_size("batch_sizes", b) for b in batch_sizes]
    if not sizes:
        raise ValueError("batch_sizes is empty")
    graphdef, params, model_state = engine.split_model(model)
    state = engine.TrainState(params, model_state, optimizer.init(params), jnp.zeros((), jnp.int32))
    step_fn = functools.partial(engine.train_step, graphdef=graphdef, tx=optimizer, loss_fn=losses.resolve(loss),
                                extra_args=engine.extra_arg_names(optimizer))
    unroll = min(steps, 8) if jax.default_backend() == "cpu" else 1
    key = jax.random.key(0)
    out = []
    for b in sizes:
        run = jax.jit(functools.partial(engine.train_steps, batch_size=b, length=steps, step_fn=step_fn, unroll=unroll))

        def call(run=run):
            return jax.block_until_ready(run(state, key, source=source))

        call()  # compile
        t0 = time.perf_counter()
        call()
        calls = max(1, math.ceil(min_seconds / max(time.perf_counter() - t0, 1e-9)))
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                call()
            samples.append((time.perf_counter() - t0) / calls)
        out.append(statistics.median(samples) / steps)
    return np.asarray(out)
