"""sgdlab.augment: random shifts are circular rolls, uniform, fresh per call, and off in eval mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from sgdlab.augment import RandomShift
from sgdlab.models import MLP


def _shifts(x, out, max_shift):
    """The shift of each row of ``out`` relative to ``x`` (a NumPy search over the candidates)."""
    found = []
    for row, got in zip(np.asarray(x), np.asarray(out)):
        hits = [s for s in range(-max_shift, max_shift + 1) if np.array_equal(np.roll(row, s, axis=0), got)]
        assert len(hits) == 1, hits
        found.append(hits[0])
    return np.array(found)


def test_training_mode_rolls_each_row_by_a_uniform_shift():
    x = jax.random.normal(jax.random.key(0), (4000, 40))
    layer = RandomShift(3, rngs=nnx.Rngs(augment=1))
    s = _shifts(x, layer(x), 3)
    counts = np.bincount(s + 3, minlength=7)
    assert stats.chisquare(counts).pvalue > 1e-3, counts


def test_shifts_roll_the_length_axis_of_channelled_inputs():
    x = jnp.arange(2 * 10 * 3, dtype=jnp.float32).reshape(2, 10, 3)
    out = RandomShift(4, rngs=nnx.Rngs(0))(x)
    _shifts(x, out, 4)  # each row is np.roll(row, s, axis=0) for one s


def test_each_call_draws_fresh_shifts_and_eval_mode_is_identity():
    x = jax.random.normal(jax.random.key(1), (200, 40))
    layer = RandomShift(5, rngs=nnx.Rngs(0))
    first, second = layer(x), layer(x)
    assert not np.array_equal(first, second)
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)
    layer.train()
    assert not np.array_equal(layer(x), x)
    np.testing.assert_array_equal(RandomShift(0, rngs=nnx.Rngs(0))(x), x)


def test_same_seed_same_shifts_and_model_eval_switches_it_off():
    x = jax.random.normal(jax.random.key(2), (50, 40))
    a = RandomShift(5, rngs=nnx.Rngs(augment=7))(x)
    b = RandomShift(5, rngs=nnx.Rngs(augment=7))(x)
    np.testing.assert_array_equal(a, b)
    model = nnx.Sequential(RandomShift(5, rngs=nnx.Rngs(augment=3)), MLP((40, 10), rngs=nnx.Rngs(0)))
    model.eval()
    np.testing.assert_array_equal(model(x), model.layers[1](x))


def test_state_advances_inside_jit():
    x = jax.random.normal(jax.random.key(3), (100, 40))
    layer = RandomShift(5, rngs=nnx.Rngs(0))
    call = nnx.jit(lambda m, x: m(x))
    assert not np.array_equal(call(layer, x), call(layer, x))


def test_shift_range_is_state_so_ranges_share_one_structure():
    graphdefs = [nnx.split(RandomShift(m, rngs=nnx.Rngs(0)))[0] for m in (0, 4)]
    assert graphdefs[0] == graphdefs[1]
    layer = RandomShift(4, rngs=nnx.Rngs(0))
    assert int(layer.max_shift[...]) == 4 and not jax.tree.leaves(nnx.state(layer, nnx.Param))


@pytest.mark.parametrize("kwargs, name", [(dict(max_shift=-1), "max_shift"), (dict(max_shift=1.5), "max_shift"),
                                          (dict(max_shift=2, rngs=0), "rngs")])
def test_rejects_bad_arguments(kwargs, name):
    kwargs.setdefault("rngs", nnx.Rngs(0))
    with pytest.raises(ValueError, match=name):
        RandomShift(**kwargs)
