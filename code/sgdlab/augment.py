r"""Data augmentation as a model layer: random shifts of sequences, on in training, off in evaluation.

:class:`RandomShift` is the first layer of a model, as dropout is a middle one: it draws its
randomness from its own ``nnx.Rngs`` stream, the training engine carries that stream's count
from step to step with the rest of the model's state, and ``model.eval()`` (which the engine
applies for every evaluation) turns it into the identity. Flax NNX has no augmentation layer,
hence this one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from . import _checks


class ShiftRange(nnx.Variable):
    """The largest shift of :class:`RandomShift`: model state, not a parameter, so that models
    that differ only in their shift range share one compiled training program."""


class RandomShift(nnx.Module):
    r"""Roll each sequence of a batch by its own random shift, in training mode only.

    For inputs of shape ``(batch, length, ...)`` the output is
    :math:`\tilde x_{i,j} = x_{i,\,(j - s_i) \bmod L}` with :math:`s_i` uniform on
    :math:`\{-m, \dots, m\}`, ``m = max_shift``, independent across examples and calls (a
    circular shift, as ``jnp.roll``). The shifts come from the stream ``rng_collection`` of
    ``rngs`` (``"augment"``; an ``nnx.Rngs`` without that stream falls back to its default
    one). With ``deterministic=True``, set by ``model.eval()``, the layer returns its input.
    ``m`` is held as a :class:`ShiftRange` variable (a traced value inside the training program),
    so ``max_shift=0`` (the identity) and ``max_shift=4`` compile to the same program.
    """

    def __init__(self, max_shift: int, *, rngs: nnx.Rngs, rng_collection: str = "augment",
                 deterministic: bool = False):
        max_shift = _checks.nonnegative_int("max_shift", max_shift)
        self.max_shift = ShiftRange(jnp.asarray(max_shift, jnp.int32))
        if not isinstance(rngs, nnx.Rngs):
            raise ValueError(f"rngs must be an nnx.Rngs, got {type(rngs).__name__}")
        self.rngs = rngs
        self.rng_collection = rng_collection
        self.deterministic = deterministic

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.deterministic:
            return x
        key = self.rngs[self.rng_collection]()
        m = self.max_shift[...]
        shifts = jax.random.randint(key, (x.shape[0],), -m, m + 1)
        return jax.vmap(lambda row, s: jnp.roll(row, s, axis=0))(x, shifts)
