"""sgdlab.train: fit and sweep against a reference SGD loop, divergence, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from sgdlab import data, models, train


@pytest.fixture(scope="module")
def small():
    d, _ = data.teacher_student(jax.random.key(0), 256, (8, 16, 4), n_test=64)
    return d


def reference_sgd(model, tx, d, steps, batch_size, seed, replace=False):
    """Plain per-step loop with the same minibatches, for comparison with the compiled engine."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    state = tx.init(params)
    idx = data.minibatch_indices(jax.random.key(seed), d.n_train, batch_size, steps, replace=replace)

    def loss(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p, rest)(x), y).mean()

    for t in range(steps):
        g = jax.grad(loss)(params, d.x_train[idx[t]], d.y_train[idx[t]])
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
    return params


@pytest.mark.parametrize("replace", [False, True])
def test_fit_equals_a_plain_sgd_loop(small, replace):
    model = models.MLP((8, 16, 4), rngs=nnx.Rngs(1))
    tx = optax.sgd(0.1, momentum=0.9)
    res = train.fit(model, tx, small, steps=37, batch_size=16, seed=3, eval_every=10, replace=replace)
    ref = reference_sgd(model, tx, small, 37, 16, 3, replace=replace)
    got = nnx.state(res.model, nnx.Param)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert list(res.history.step) == [0, 10, 20, 30, 37]
    # the returned optimizer state is the one after the last step: the momentum trace is not zero
    trace = res.opt_state[0].trace
    assert any(float(jnp.abs(leaf).max()) > 0 for leaf in jax.tree.leaves(trace))
    assert res.history.batch_loss.shape == (37,)
    assert not res.diverged


def test_fit_history_matches_direct_evaluation_and_leaves_model_untouched(small):
    model = models.MLP((8, 16, 4), rngs=nnx.Rngs(1))
    before = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
    res = train.fit(model, optax.sgd(0.2), small, steps=50, batch_size=32, eval_every=25)
    logits = res.model(small.x_test)
    acc = float((jnp.argmax(logits, -1) == small.y_test).mean())
    loss = float(optax.softmax_cross_entropy_with_integer_labels(logits, small.y_test).mean())
    assert res.history.final("test_acc") == pytest.approx(acc, abs=1e-6)
    assert res.history.final("test_loss") == pytest.approx(loss, rel=1e-5)
    assert res.history["train_loss"][-1] < res.history["train_loss"][0]
    for a, b in zip(jax.tree.leaves(nnx.state(model, nnx.Param)), jax.tree.leaves(before)):
        np.testing.assert_array_equal(a, b)


def test_fit_is_reproducible(small):
    run = lambda: train.fit(models.MLP((8, 16, 4), rngs=nnx.Rngs(2)), optax.sgd(0.1), small, steps=30, batch_size=8, seed=9)  # noqa: E731
    np.testing.assert_array_equal(run().history.batch_loss, run().history.batch_loss)


def test_fit_regression_with_mse():
    d, w = data.linear_regression(jax.random.key(0), 512, 4, noise_std=0.0, n_test=64)
    res = train.fit(models.MLP((4, 1), rngs=nnx.Rngs(0)), optax.sgd(0.1), d, steps=400, batch_size=32, loss="mse")
    assert res.history.final("test_loss") < 1e-6
    assert "test_acc" not in res.history.metrics
    bias, kernel = jax.tree.leaves(nnx.state(res.model.layers[0], nnx.Param))
    np.testing.assert_allclose(kernel[:, 0], w, atol=1e-3)


def test_fit_reports_divergence(small):
    with pytest.warns(train.DivergenceWarning, match="diverged"):
        res = train.fit(models.MLP((8, 16, 4), rngs=nnx.Rngs(0)), optax.sgd(1e6), small, steps=200,
                        batch_size=16, eval_every=20)
    assert res.diverged and res.diverged_at is not None and res.diverged_at < 200
    assert np.all(np.isfinite(res.history["train_loss"]))
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(nnx.state(res.model, nnx.Param)))


@pytest.mark.parametrize("kwargs, name", [
    (dict(steps=0), "steps"), (dict(batch_size=0), "batch_size"), (dict(batch_size=10_000), "batch_size"),
    (dict(eval_every=0), "eval_every"), (dict(loss="hinge"), "loss"), (dict(seed=-1), "seed"),
])
def test_fit_rejects_bad_arguments(small, kwargs, name):
    args = dict(steps=10, batch_size=8) | kwargs
    with pytest.raises(ValueError, match=name):
        train.fit(models.MLP((8, 4), rngs=nnx.Rngs(0)), optax.sgd(0.1), small, **args)


def test_fit_rejects_nan_data_and_wrong_types(small):
    bad = small._replace(x_train=small.x_train.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="data.x_train"):
        train.fit(models.MLP((8, 4), rngs=nnx.Rngs(0)), optax.sgd(0.1), bad, steps=5, batch_size=4)
    with pytest.raises(ValueError, match="optimizer"):
        train.fit(models.MLP((8, 4), rngs=nnx.Rngs(0)), 0.1, small, steps=5, batch_size=4)
    with pytest.raises(ValueError, match="model"):
        train.fit("mlp", optax.sgd(0.1), small, steps=5, batch_size=4)


def test_sweep_runs_equal_individual_fits(small):
    make = lambda rngs: models.MLP((8, 16, 4), rngs=rngs)  # noqa: E731
    res = train.sweep(make, lambda lr: optax.sgd(lr, momentum=0.5), small, steps=24, batch_sizes=[8, 32],
                      learning_rates=[0.05, 0.3], seeds=[0, 4], eval_every=12)
    assert res.history["test_loss"].shape == (2, 2, 2, 3)
    # three runs that differ from each other in every axis stand for the whole grid
    for bi, li, si in [(0, 0, 0), (0, 1, 1), (1, 1, 0)]:
        b, lr, s = [8, 32][bi], [0.05, 0.3][li], [0, 4][si]
        single = train.fit(make(nnx.Rngs(s)), optax.sgd(lr, momentum=0.5), small, steps=24, batch_size=b,
                           seed=s, eval_every=12)
        np.testing.assert_allclose(res.history["test_loss"][bi, li, si], single.history["test_loss"],
                                   rtol=1e-4, atol=1e-6)
    assert not res.diverged.any()
    assert res.best_learning_rate("test_loss").shape == (2,)


def test_sweep_marks_diverged_runs_and_keeps_the_rest(small):
    with pytest.warns(train.DivergenceWarning):
        res = train.sweep(lambda rngs: models.MLP((8, 16, 4), rngs=rngs), lambda lr: optax.sgd(lr), small,
                          steps=60, batch_sizes=16, learning_rates=[0.1, 1e6], eval_every=20)
    assert res.diverged.tolist() == [[[False], [True]]]
    assert np.all(np.isfinite(res.history["train_loss"][0, 0, 0]))
    assert np.isnan(res.history["train_loss"][0, 1, 0, -1])
    assert res.best_learning_rate() == pytest.approx([0.1])


@pytest.mark.parametrize("kwargs, name", [
    (dict(learning_rates=[]), "learning_rates"), (dict(learning_rates=[-0.1]), "learning_rates"),
    (dict(batch_sizes=[0]), "batch_sizes"), (dict(batch_sizes=[]), "batch_sizes"), (dict(seeds=[]), "seeds"),
])
def test_sweep_rejects_bad_arguments(small, kwargs, name):
    args = dict(steps=5, batch_sizes=[4], learning_rates=[0.1]) | kwargs
    with pytest.raises(ValueError, match=name):
        train.sweep(lambda rngs: models.MLP((8, 4), rngs=rngs), lambda lr: optax.sgd(lr), small, **args)


def test_fit_trains_the_cnn_on_mnist1d_like_sequences():
    # ten noisy bumps at class-dependent positions: a task a 1-D CNN learns in a few steps
    key_x, key_y = jax.random.split(jax.random.key(0))
    y = jax.random.randint(key_y, (320,), 0, 10)
    pos = jnp.arange(40)[None, :]
    x = jnp.exp(-0.5 * ((pos - 2 - 4 * y[:, None]) / 1.5) ** 2) + 0.1 * jax.random.normal(key_x, (320, 40))
    d = data.Dataset(x[:256], y[:256].astype(jnp.int32), x[256:], y[256:].astype(jnp.int32))
    res = train.fit(models.CNN1D(channels=8, rngs=nnx.Rngs(0)), optax.adam(3e-3), d, steps=150, batch_size=32)
    assert res.history["train_loss"][-1] < 0.5 * res.history["train_loss"][0]
