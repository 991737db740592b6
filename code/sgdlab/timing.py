"""Wall-clock cost of an SGD step on the device at hand, against batch size.

The cost of a step is flat while the batch is too small to fill the hardware and linear once
it is large enough (Grosse, CSC2541 lecture 7). :func:`time_per_step` measures that curve for
real, with the same compiled chunk that :func:`sgdlab.train.fit` runs, compilation excluded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import numpy as np
import optax
from flax import nnx

from . import _checks
from .data import Dataset, _validate_dataset
from .train import _chunk_fn, _constant


def time_per_step(
    model: nnx.Module,
    optimizer: optax.GradientTransformation,
    data: Dataset,
    batch_sizes: Sequence[int],
    *,
    steps: int = 200,
    repeats: int = 3,
    loss: str = "cross_entropy",
) -> np.ndarray:
    """Seconds per SGD step for each batch size: the best of ``repeats`` timed runs of ``steps`` steps.

    Each batch size is compiled and run once before timing, so the numbers exclude
    compilation. The best of several repeats is the usual estimate of the cost without
    interference from other processes.
    """
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
    data = _validate_dataset(data)
    steps = _checks.positive_int("steps", steps)
    repeats = _checks.positive_int("repeats", repeats)
    sizes = [_checks.batch_size("batch_sizes", b, data.n_train) for b in batch_sizes]
    if not sizes:
        raise ValueError("batch_sizes is empty")
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    state = optimizer.init(params)
    key = jax.random.key(0)
    out = []
    for b in sizes:
        run = _chunk_fn(graphdef, _constant(optimizer), loss, b, False, steps, data.n_train, False, evaluate=False)
        jax.block_until_ready(run(params, state, rest, key, None, 0, data))
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(run(params, state, rest, key, None, 0, data))
            best = min(best, time.perf_counter() - t0)
        out.append(best / steps)
    return np.asarray(out)
