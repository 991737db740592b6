"""Small Flax NNX models for the book's experiments.

* :class:`MLP` — fully connected ReLU network; ``MLP((d, k))`` is a linear model.
* :class:`CNN1D` — a small 1-D convolutional network for MNIST-1D (Greydanus 2020).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from . import _checks

# Flax >= 0.12 wants sub-module lists wrapped in nnx.List; older releases take a plain list.
_LayerList = getattr(nnx, "List", list)


class MLP(nnx.Module):
    """Multi-layer perceptron ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Hidden layers use ``activation`` (ReLU by default); the last layer is linear, so the output
    is logits for classification or a prediction for regression. Weights use Flax's default
    LeCun-normal initialisation, biases start at zero.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        rngs: nnx.Rngs,
        activation: Callable[[jax.Array], jax.Array] = nnx.relu,
    ):
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output width, got {sizes!r}")
        for i, s in enumerate(sizes):
            _checks.positive_int(f"sizes[{i}]", s)
        self.sizes = sizes
        self.activation = activation
        self.layers = _LayerList([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


class CNN1D(nnx.Module):
    """1-D CNN for sequences of shape ``(batch, length)``: three stride-2 convolutions, then a linear head.

    The layout follows the small CNN of the MNIST-1D paper (Greydanus 2020): ``channels``
    filters of width 5 per layer, ReLU, global flattening, ``n_classes`` logits.
    """

    def __init__(self, length: int = 40, n_classes: int = 10, channels: int = 32, *, rngs: nnx.Rngs):
        length = _checks.positive_int("length", length)
        n_classes = _checks.positive_int("n_classes", n_classes)
        channels = _checks.positive_int("channels", channels)
        self.conv1 = nnx.Conv(1, channels, kernel_size=5, strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(channels, channels, kernel_size=3, strides=2, rngs=rngs)
        self.conv3 = nnx.Conv(channels, channels, kernel_size=3, strides=2, rngs=rngs)
        out_len = length
        for _ in range(3):
            out_len = -(-out_len // 2)
        self.head = nnx.Linear(out_len * channels, n_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x[..., None]
        h = nnx.relu(self.conv1(h))
        h = nnx.relu(self.conv2(h))
        h = nnx.relu(self.conv3(h))
        return self.head(h.reshape(h.shape[0], -1))


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (``nnx.Param`` leaves) in ``model``."""
    params = nnx.state(model, nnx.Param)
    return int(sum(jnp.size(p) for p in jax.tree.leaves(params)))
