"""sgdlab.hyperparams: the floats of an Optax transformation lifted out of its structure."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from sgdlab import data, hyperparams, models, train

PARAMS = {"w": jnp.array([1.0, -2.0, 0.5])}


def updates(tx, grads=PARAMS):
    return tx.update(grads, tx.init(PARAMS), PARAMS)[0]["w"]


@pytest.mark.parametrize("make", [
    lambda a: optax.sgd(a, momentum=0.9),
    lambda a: optax.adamw(a, b1=0.8, weight_decay=1e-2),
    lambda a: optax.sgd(optax.warmup_cosine_decay_schedule(0.0, a, 10, 100)),
    lambda a: optax.chain(optax.clip_by_global_norm(a), optax.sgd(0.1)),
])
def test_same_kind_same_key_and_rebuild_reproduces_every_value(make):
    a, b = hyperparams.lift(make(0.1)), hyperparams.lift(make(0.05))
    assert a.key == b.key and a.values != b.values
    np.testing.assert_array_equal(updates(a.rebuild(a.values)), updates(make(0.1)))
    # b's values in a's structure give b's transformation
    np.testing.assert_allclose(updates(a.rebuild(b.values)), updates(make(0.05)), rtol=1e-6)


def test_different_options_are_different_structures():
    keys = {hyperparams.lift(tx).key for tx in (optax.sgd(0.1), optax.sgd(0.1, momentum=0.9),
                                                 optax.sgd(0.1, momentum=0.9, nesterov=True), optax.adam(0.1))}
    assert len(keys) == 4


def branching_sgd(lr):
    """A transformation that branches on its float in Python: it cannot take the float traced."""
    def update(g, state, params=None):
        scale = lr if lr < 1.0 else 1.0
        return jax.tree.map(lambda x: -scale * x, g), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def test_a_transformation_that_branches_on_a_float_is_compiled_as_it_is():
    lifted = hyperparams.lift(branching_sgd(0.1))
    assert not hyperparams.traceable(lifted, lambda tx: tx.update(PARAMS, tx.init(PARAMS), PARAMS))
    d, _ = data.teacher_student(jax.random.key(0), 64, (4, 3), n_test=16)
    model = models.MLP((4, 3), rngs=nnx.Rngs(0))
    a = train.fit(model, branching_sgd(0.1), d, steps=5, batch_size=8)
    b = train.fit(model, optax.sgd(0.1), d, steps=5, batch_size=8)
    np.testing.assert_allclose(a.history.batch_loss, b.history.batch_loss, rtol=1e-6)


def test_rebuild_checks_the_number_of_values():
    with pytest.raises(ValueError, match="2 values"):
        hyperparams.lift(optax.sgd(0.1, momentum=0.9)).rebuild([0.1])
