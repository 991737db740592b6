"""sgdlab.models: shapes, parameter counts, argument checks."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from sgdlab import models


def test_mlp_shapes_and_count():
    m = models.MLP((40, 100, 100, 10), rngs=nnx.Rngs(0))
    assert m(jnp.ones((3, 40))).shape == (3, 10)
    assert models.count_params(m) == 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10


def test_mlp_linear_model_is_affine():
    m = models.MLP((3, 2), rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(0), (5, 3))
    b, w = jax.tree.leaves(nnx.state(m.layers[0], nnx.Param))
    assert jnp.allclose(m(x), x @ w + b, atol=1e-6)


def test_cnn_shapes():
    m = models.CNN1D(rngs=nnx.Rngs(0))
    assert m(jnp.ones((4, 40))).shape == (4, 10)


@pytest.mark.parametrize("sizes, name", [((40,), "sizes"), ((40, 0, 10), "sizes"), ((40, 2.5), "sizes")])
def test_mlp_rejects_bad_sizes(sizes, name):
    with pytest.raises(ValueError, match=name):
        models.MLP(sizes, rngs=nnx.Rngs(0))


def test_cnn_rejects_bad_channels():
    with pytest.raises(ValueError, match="channels"):
        models.CNN1D(channels=0, rngs=nnx.Rngs(0))
