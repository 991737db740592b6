"""sgdlab.timing: shapes and validation only (timings themselves belong to benchmarks)."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from sgdlab import data, models, timing


def test_time_per_step_returns_positive_seconds():
    d, _ = data.teacher_student(jax.random.key(0), 64, (4, 8, 3), n_test=8)
    sec = timing.time_per_step(models.MLP((4, 8, 3), rngs=nnx.Rngs(0)), optax.sgd(0.1), d, [1, 8], steps=5,
                               repeats=2, min_seconds=0.01)
    assert sec.shape == (2,) and np.all(sec > 0)
    with pytest.raises(ValueError, match="batch_sizes"):
        timing.time_per_step(models.MLP((4, 3), rngs=nnx.Rngs(0)), optax.sgd(0.1), d, [100])
    with pytest.raises(ValueError, match="min_seconds"):
        timing.time_per_step(models.MLP((4, 3), rngs=nnx.Rngs(0)), optax.sgd(0.1), d, [4], min_seconds=0)
