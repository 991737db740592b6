"""sgdlab.train and sgdlab.engine: fit and sweep against plain per-step loops, batch sources, Optax's
extra arguments, the model's whole state, metrics in the loop, divergence, compile-once, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from sgdlab import data, engine, losses, models, train


@pytest.fixture(scope="module")
def small():
    d, _ = data.teacher_student(jax.random.key(0), 256, (8, 16, 4), n_test=64)
    return d


def params_of(model):
    return nnx.state(model, nnx.Param)


def reference_sgd(model, tx, d, steps, batch_size, seed, replace=False):
    """Plain per-step Python loop with the engine's minibatches, for comparison with the compiled engine."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    state = tx.init(params)
    idx = data.minibatch_indices(train.seed_keys(seed)[0], d.n_train, batch_size, steps, replace=replace)

    def loss(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p, rest)(x), y).mean()

    for t in range(steps):
        g = jax.grad(loss)(params, d.x_train[idx[t]], d.y_train[idx[t]])
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
    return params


def assert_trees_close(a, b, rtol=2e-5, atol=2e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


@pytest.mark.parametrize("replace", [False, True])
def test_fit_equals_a_plain_sgd_loop(small, replace):
    model = models.MLP((8, 16, 4), rngs=nnx.Rngs(1))
    tx = optax.sgd(0.1, momentum=0.9)
    res = train.fit(model, tx, small, steps=37, batch_size=16, seed=3, eval_every=10, replace=replace)
    assert_trees_close(params_of(res.model), reference_sgd(model, tx, small, 37, 16, 3, replace=replace))
    assert list(res.history.step) == [0, 10, 20, 30, 37]
    trace = res.opt_state[0].trace  # the optimizer state after the last step
    assert any(float(jnp.abs(leaf).max()) > 0 for leaf in jax.tree.leaves(trace))
    assert res.history.batch_loss.shape == (37,)
    assert not res.diverged


def test_a_run_continued_from_its_optimizer_state_equals_the_uncut_run(small):
    # full-batch steps, so the data order (which restarts in the second call) does not matter
    model, n = models.MLP((8, 16, 4), rngs=nnx.Rngs(1)), small.n_train
    tx = optax.adam(0.01)
    uncut = train.fit(model, tx, small, steps=30, batch_size=n)
    first = train.fit(model, tx, small, steps=12, batch_size=n)
    second = train.fit(first.model, tx, small, steps=18, batch_size=n, opt_state=first.opt_state)
    assert_trees_close(params_of(second.model), params_of(uncut.model), rtol=1e-5, atol=1e-6)
    assert int(second.opt_state[0].count) == 30
    restarted = train.fit(first.model, tx, small, steps=18, batch_size=n)   # Adam's moments start again
    assert np.abs(jax.tree.leaves(params_of(restarted.model))[0] - jax.tree.leaves(params_of(uncut.model))[0]).max() > 1e-4
    with pytest.raises(ValueError, match="opt_state"):
        train.fit(model, optax.sgd(0.1), small, steps=2, batch_size=8, opt_state=first.opt_state)


def test_a_new_optimizer_of_the_same_kind_reuses_the_program_and_its_values(small):
    model = models.MLP((8, 16, 4), rngs=nnx.Rngs(1))
    first = train.fit(model, optax.sgd(0.1, momentum=0.5), small, steps=20, batch_size=16, eval_every=10)
    built = train.programs_built()
    second = train.fit(model, optax.sgd(0.03, momentum=0.8), small, steps=20, batch_size=16, eval_every=10)
    assert train.programs_built() == built, "a new learning rate and momentum must not build a new program"
    # ... and the program really uses the new values
    assert_trees_close(params_of(second.model), reference_sgd(model, optax.sgd(0.03, momentum=0.8), small, 20, 16, 0))
    assert not np.allclose(first.history["train_loss"], second.history["train_loss"])


def test_fit_history_matches_direct_evaluation_and_leaves_model_untouched(small):
    model = models.MLP((8, 16, 4), rngs=nnx.Rngs(1))
    before = jax.tree.map(jnp.copy, params_of(model))
    res = train.fit(model, optax.sgd(0.2), small, steps=50, batch_size=32, eval_every=25)
    logits = res.model(small.x_test)
    p = jax.nn.softmax(logits)
    assert res.history.final("test_acc") == pytest.approx(float((jnp.argmax(logits, -1) == small.y_test).mean()), abs=1e-6)
    assert res.history.final("test_loss") == pytest.approx(
        float(optax.softmax_cross_entropy_with_integer_labels(logits, small.y_test).mean()), rel=1e-5)
    soft = float(np.mean(1 - np.asarray(p)[np.arange(len(small.y_test)), np.asarray(small.y_test)]))
    assert res.history.final("test_soft_error") == pytest.approx(soft, rel=1e-5)
    assert res.history["train_loss"][-1] < res.history["train_loss"][0]
    for a, b in zip(jax.tree.leaves(params_of(model)), jax.tree.leaves(before)):
        np.testing.assert_array_equal(a, b)


def test_fit_is_reproducible_and_chunking_does_not_change_the_batches(small):
    def run(eval_every):
        return train.fit(models.MLP((8, 16, 4), rngs=nnx.Rngs(2)), optax.sgd(0.1), small, steps=30, batch_size=8,
                         seed=9, eval_every=eval_every)

    np.testing.assert_array_equal(run(7).history.batch_loss, run(7).history.batch_loss)
    np.testing.assert_allclose(run(7).history.batch_loss, run(30).history.batch_loss, rtol=1e-6)


def test_data_order_key_is_independent_of_the_initialisation_key():
    # nnx.Rngs(s) draws from fold_in(key(s), n); the data order must come from another root
    for s in range(3):
        order = np.asarray(jax.random.bits(train.seed_keys(s)[0], (64,)))
        for n in range(50):
            init = np.asarray(jax.random.bits(jax.random.fold_in(jax.random.key(s), n), (64,)))
            assert not np.array_equal(order, init)
    model = models.MLP((40, 100, 10), rngs=nnx.Rngs(0))
    kernel = np.asarray(model.layers[0].kernel.value).ravel()[:4000]
    perm = np.asarray(data.minibatch_indices(train.seed_keys(0)[0], 4000, 32, 125)).ravel()
    # the symptom: the first epoch equal to argsort of the first kernel's initial values
    assert np.mean(perm == np.argsort(kernel)) < 0.01


def test_fit_regression_with_mse_and_a_callable_loss():
    d, w = data.linear_regression(jax.random.key(0), 512, 4, noise_std=0.0, n_test=64)
    res = train.fit(models.MLP((4, 1), rngs=nnx.Rngs(0)), optax.sgd(0.1), d, steps=400, batch_size=32, loss="mse")
    assert res.history.final("test_loss") < 1e-6
    assert "test_acc" not in res.history.metrics
    bias, kernel = jax.tree.leaves(nnx.state(res.model.layers[0], nnx.Param))
    np.testing.assert_allclose(kernel[:, 0], w, atol=1e-3)
    own = train.fit(models.MLP((4, 1), rngs=nnx.Rngs(0)), optax.sgd(0.1), d, steps=400, batch_size=32,
                    loss=losses.squared_error)
    np.testing.assert_allclose(own.history["test_loss"], res.history["test_loss"], rtol=1e-6)


def test_fit_reports_divergence(small):
    with pytest.warns(train.DivergenceWarning, match="diverged"):
        res = train.fit(models.MLP((8, 16, 4), rngs=nnx.Rngs(0)), optax.sgd(1e6), small, steps=200,
                        batch_size=16, eval_every=20)
    assert res.diverged and res.diverged_at is not None and res.diverged_at < 200
    assert np.all(np.isfinite(res.history["train_loss"]))
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(params_of(res.model)))


@pytest.mark.parametrize("kwargs, name", [
    (dict(steps=0), "steps"), (dict(batch_size=0), "batch_size"), (dict(batch_size=10_000), "batch_size"),
    (dict(eval_every=0), "eval_every"), (dict(loss="hinge"), "loss"), (dict(seed=-1), "seed"),
    (dict(weights=np.ones(3)), "weights"), (dict(metrics={"a": 1.0}), "metrics"), (dict(eval_params=3), "eval_params"),
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
    with pytest.raises(ValueError, match="eval_data"):
        train.fit(models.MLP((8, 4), rngs=nnx.Rngs(0)), optax.sgd(0.1), lambda k, b: (small.x_train[:b], small.y_train[:b]),
                  steps=5, batch_size=4)


# ------------------------------------------------------------------ Optax's extra arguments

def test_opaque_sam_step_is_the_hand_computed_update(small):
    lr, rho = 0.1, 0.05
    model = models.MLP((8, 16, 4), rngs=nnx.Rngs(3))
    sam = optax.contrib.sam(optax.sgd(lr), optax.chain(optax.contrib.normalize(), optax.sgd(rho)), opaque_mode=True)
    res = train.fit(model, sam, small, steps=1, batch_size=32, seed=5)
    assert list(res.history.step) == [0, 1]  # one SAM step is one step
    graphdef, w, rest = nnx.split(model, nnx.Param, ...)
    idx = data.minibatch_indices(train.seed_keys(5)[0], small.n_train, 32, 1)[0]
    x, y = small.x_train[idx], small.y_train[idx]

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p, rest)(x), y).mean()

    g = jax.grad(loss)(w)
    norm = optax.global_norm(g)
    w_adv = jax.tree.map(lambda p, gi: p + rho * gi / norm, w, g)
    want = jax.tree.map(lambda p, gi: p - lr * gi, w, jax.grad(loss)(w_adv))
    assert_trees_close(params_of(res.model), want, rtol=1e-5, atol=1e-6)


def test_polyak_sgd_receives_the_minibatch_loss(small):
    model = models.MLP((8, 16, 4), rngs=nnx.Rngs(3))
    res = train.fit(model, optax.polyak_sgd(max_learning_rate=1.0), small, steps=1, batch_size=32, seed=1)
    graphdef, w, rest = nnx.split(model, nnx.Param, ...)
    idx = data.minibatch_indices(train.seed_keys(1)[0], small.n_train, 32, 1)[0]

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p, rest)(small.x_train[idx]),
                                                               small.y_train[idx]).mean()

    value, g = jax.value_and_grad(loss)(w)
    step = min(float(value) / float(optax.global_norm(g)) ** 2, 1.0)  # Loizou et al.'s SPS_max, f* = 0
    assert_trees_close(params_of(res.model), jax.tree.map(lambda p, gi: p - step * gi, w, g), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ the model's whole state

class DropoutMLP(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(8, 32, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(32, 4, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(jax.nn.relu(self.hidden(x))))


def test_dropout_draws_a_new_mask_every_step_and_evaluation_turns_it_off(small):
    model = DropoutMLP(nnx.Rngs(0))
    # learning rate 0 and the whole training set as the batch: only the dropout mask changes the loss
    res = train.fit(model, optax.sgd(0.0), small, steps=6, batch_size=small.n_train, eval_every=3)
    assert len(np.unique(res.history.batch_loss)) == 6
    copy = nnx.clone(model)
    copy.eval()
    full = float(optax.softmax_cross_entropy_with_integer_labels(copy(small.x_train), small.y_train).mean())
    np.testing.assert_allclose(res.history["train_loss"], full, rtol=1e-5)


class BatchNormMLP(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(8, 16, rngs=rngs)
        self.norm = nnx.BatchNorm(16, rngs=rngs)
        self.out = nnx.Linear(16, 4, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.norm(self.hidden(x))))


def test_batch_statistics_advance(small):
    model = BatchNormMLP(nnx.Rngs(0))
    res = train.fit(model, optax.sgd(0.1), small, steps=20, batch_size=32)
    before = np.asarray(model.norm.mean.value)
    after = np.asarray(res.model.norm.mean.value)
    assert np.all(before == 0) and np.abs(after).max() > 1e-3


# ------------------------------------------------------------------ batch sources

def test_fresh_samples_are_a_pure_function_of_key_and_step(small):
    def sample(key, b):
        x = jax.random.normal(key, (b, 8))
        return x, (x[:, 0] > 0).astype(jnp.int32) + 2 * (x[:, 1] > 0).astype(jnp.int32)

    def run(eval_every):
        return train.fit(models.MLP((8, 16, 4), rngs=nnx.Rngs(0)), optax.sgd(0.1), sample, steps=40, batch_size=16,
                         eval_every=eval_every, eval_data=small)

    a, b = run(40), run(9)
    np.testing.assert_allclose(a.history.batch_loss, b.history.batch_loss, rtol=1e-6)
    source = data.FreshSamples(sample)
    plan = source.plan(train.seed_keys(0)[0], jnp.int32(3), 2, 16)
    x3, _ = source.batch(plan[0], 16)
    np.testing.assert_array_equal(x3, sample(jax.random.fold_in(train.seed_keys(0)[0], 3), 16)[0])


def test_weighted_rows_are_drawn_with_their_probabilities(small):
    w = np.zeros(small.n_train)
    w[:4] = [1.0, 2.0, 3.0, 4.0]
    source = data.Minibatches.checked(small, weights=w)
    idx = np.asarray(source.plan(jax.random.key(0), jnp.int32(0), 500, 40)).ravel()
    counts = np.bincount(idx, minlength=small.n_train)
    assert counts[4:].sum() == 0
    n = idx.size
    p = w[:4] / w.sum()
    se = np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(counts[:4] - n * p) < 4 * se)


# ------------------------------------------------------------------ metrics and evaluation points

def test_metrics_in_the_loop_and_eval_params(small):
    def sq_norm(probe):
        return sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(probe.params))

    def batch_loss(probe):
        x, y = probe.sample(probe.key, 64)
        return probe.loss_fn(probe.params, x, y)

    res = train.fit(models.MLP((8, 16, 4), rngs=nnx.Rngs(0)), optax.sgd(0.1), small, steps=20, batch_size=16,
                    eval_every=10, metrics={"sq_norm": sq_norm, "batch": batch_loss})
    host = sum(float(jnp.sum(leaf**2)) for leaf in jax.tree.leaves(params_of(res.model)))
    assert res.history.final("sq_norm") == pytest.approx(host, rel=1e-5)
    assert abs(res.history.final("batch") - res.history.final("train_loss")) < 0.5
    zero = train.fit(models.MLP((8, 16, 4), rngs=nnx.Rngs(0)), optax.sgd(0.1), small, steps=10, batch_size=16,
                     eval_params=lambda p, s: jax.tree.map(jnp.zeros_like, p))
    np.testing.assert_allclose(zero.history["test_loss"], np.log(4.0), rtol=1e-6)  # zero weights: uniform outputs


# ------------------------------------------------------------------ sweep

def test_sweep_runs_equal_individual_fits(small):
    make = lambda rngs: models.MLP((8, 16, 4), rngs=rngs)  # noqa: E731
    res = train.sweep(make, optax.sgd, small, steps=24, batch_sizes=[8, 32],
                      grid={"learning_rate": [0.05, 0.3], "momentum": [0.0, 0.5]}, seeds=[0, 4], eval_every=12)
    assert list(res.axes) == ["batch_size", "learning_rate", "momentum", "seed"]
    assert res.history["test_loss"].shape == (2, 2, 2, 2, 3) and res.shape == (2, 2, 2, 2)
    # runs that differ from each other in every axis stand for the whole grid
    for bi, li, mi, si in [(0, 0, 0, 0), (0, 1, 1, 1), (1, 1, 0, 0)]:
        b, lr, mom, s = [8, 32][bi], [0.05, 0.3][li], [0.0, 0.5][mi], [0, 4][si]
        single = train.fit(make(nnx.Rngs(s)), optax.sgd(lr, momentum=mom), small, steps=24, batch_size=b,
                           seed=s, eval_every=12)
        np.testing.assert_allclose(res.history["test_loss"][bi, li, mi, si], single.history["test_loss"],
                                   rtol=1e-4, atol=1e-6)
    assert not res.diverged.any()


def test_sweep_over_any_names_with_per_batch_budgets(small):
    def mcallester(N, lr_prime):  # McAllester's parameterisation: eta' = N eta, beta = 1 - 1/N
        return optax.sgd(lr_prime / N, momentum=1 - 1 / N)

    res = train.sweep(lambda rngs: models.MLP((8, 4), rngs=rngs), mcallester, small, steps=lambda b: 256 // b,
                      batch_sizes=[8, 32], grid={"N": [1.0, 4.0], "lr_prime": [0.1]}, eval_every=lambda b: 64 // b)
    assert res.history.step.tolist() == [[0, 8, 16, 24, 32], [0, 2, 4, 6, 8]]
    single = train.fit(models.MLP((8, 4), rngs=nnx.Rngs(0)), mcallester(4.0, 0.1), small, steps=8, batch_size=32,
                       eval_every=2)
    np.testing.assert_allclose(res.history["train_loss"][1, 1, 0, 0], single.history["train_loss"], rtol=1e-4)
    assert res.history.final("train_loss").shape == (2, 2, 1, 1)
    with pytest.raises(ValueError, match="'lr'"):
        train.sweep(lambda rngs: models.MLP((8, 4), rngs=rngs), mcallester, small, steps=4, batch_sizes=8,
                    grid={"N": [1.0], "lr": [0.1]})


def test_sweep_marks_diverged_runs_says_so_once_and_keeps_the_rest(small, capsys, recwarn):
    res = train.sweep(lambda rngs: models.MLP((8, 16, 4), rngs=rngs), optax.sgd, small, steps=60, batch_sizes=16,
                      grid={"learning_rate": [0.1, 1e6]}, eval_every=20)
    assert not [w for w in recwarn if issubclass(w.category, train.DivergenceWarning)]
    said = [line for line in capsys.readouterr().out.splitlines() if "runs diverged" in line]
    assert len(said) == 1 and said[0].startswith("sweep: 1 of 2 runs diverged")
    assert res.diverged.tolist() == [[[False], [True]]]
    assert np.all(np.isfinite(res.history["train_loss"][0, 0, 0]))
    assert np.isnan(res.history["train_loss"][0, 1, 0, -1])
    best = res.best("train_loss")
    assert best.choice["learning_rate"].tolist() == [0.1]
    assert res.steps_to("train_loss", 1e9, over="learning_rate").shape == (1, 1)


def test_best_and_steps_to_against_brute_force():
    rng = np.random.default_rng(0)
    shape = (2, 3, 4, 5, 6)  # batch, a, b, seed, eval
    metric = rng.random(shape)
    step = np.tile(np.arange(6) * 10, (2, 1))
    diverged = np.zeros(shape[:-1], bool)
    diverged[0, 1, 2, 3] = True
    res = train.SweepResult(axes={"batch_size": np.array([1, 2]), "a": np.arange(3.0), "b": np.arange(4.0) / 10,
                                  "seed": np.arange(5)},
                            history=train.History(step, {"m": metric}, np.zeros(0)), diverged=diverged,
                            diverged_at=np.zeros(shape[:-1], int), seconds=0.0)
    best = res.best("m", over="b")
    for bi in range(2):
        for ai in range(3):
            scores = [np.inf if diverged[bi, ai, j].any() else metric[bi, ai, j, :, -1].mean() for j in range(4)]
            j = int(np.argmin(scores))
            assert best.choice["b"][bi, ai] == pytest.approx(j / 10)
            np.testing.assert_allclose(best.value[bi, ai], metric[bi, ai, j, :, -1])
    first = res.steps_to("m", 0.2)
    for i in np.ndindex(shape[:-1]):
        hit = np.nonzero(metric[i] <= 0.2)[0]
        assert first[i] == (step[0, hit[0]] if hit.size else np.inf)
    both = res.steps_to("m", 0.5, over=("a", "b"), return_choice=True)
    assert both.value.shape == (2, 5) and set(both.choice) == {"a", "b"}
    with pytest.raises(ValueError, match="seed"):
        res.best("m", over="seed")


@pytest.mark.parametrize("kwargs, name", [
    (dict(grid={}), "grid"), (dict(grid={"learning_rate": []}), "learning_rate"),
    (dict(grid={"learning_rate": [np.nan]}), "learning_rate"), (dict(grid={"lr": [0.1]}), "'lr'"),
    (dict(batch_sizes=[0]), "batch_sizes"), (dict(batch_sizes=[]), "batch_sizes"), (dict(seeds=[]), "seeds"),
    (dict(steps=lambda b: 0), "steps"),
])
def test_sweep_rejects_bad_arguments(small, kwargs, name):
    args = dict(steps=5, batch_sizes=[4], grid={"learning_rate": [0.1]}) | kwargs
    with pytest.raises(ValueError, match=name):
        train.sweep(lambda rngs: models.MLP((8, 4), rngs=rngs), optax.sgd, small, **args)


# ------------------------------------------------------------------ optimize

def _quadratic_gradient(w, t, h, key):
    return h @ w + 0.1 * jax.random.normal(jax.random.fold_in(key, t), w.shape)


def test_optimize_equals_a_python_loop_and_compiles_once():
    h = jnp.array([[2.0, 0.3], [0.3, 0.5]])
    w0, key = jnp.array([1.0, -1.0]), jax.random.key(4)
    # heavy ball: Adam's bias correction 1 - 0.999^t loses about 1e-4 of relative precision in
    # float32 at small t, so two correct float32 evaluations of Adam differ by more than 1e-5
    for lr in (0.1, 0.2):
        tx = optax.sgd(lr, momentum=0.9, nesterov=True)
        w, _, traj = train.optimize(tx, w0, _quadratic_gradient, steps=15, args=(h, key))
        if lr == 0.1:
            built = train.programs_built()
        p, s, ref = w0, tx.init(w0), []
        for t in range(15):
            u, s = tx.update(_quadratic_gradient(p, t, h, key), s, p)
            p = optax.apply_updates(p, u)
            ref.append(p)
        np.testing.assert_allclose(traj, np.stack(ref), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(w, p, rtol=1e-5, atol=1e-6)
    assert train.programs_built() == built
    with pytest.raises(ValueError, match="steps"):
        train.optimize(optax.sgd(0.1), w0, _quadratic_gradient, steps=0, args=(h, key))


def test_fit_trains_the_cnn_on_mnist1d_like_sequences():
    # ten noisy bumps at class-dependent positions: a task a 1-D CNN learns in a few steps
    key_x, key_y = jax.random.split(jax.random.key(0))
    y = jax.random.randint(key_y, (320,), 0, 10)
    pos = jnp.arange(40)[None, :]
    x = jnp.exp(-0.5 * ((pos - 2 - 4 * y[:, None]) / 1.5) ** 2) + 0.1 * jax.random.normal(key_x, (320, 40))
    d = data.Dataset(x[:256], y[:256].astype(jnp.int32), x[256:], y[256:].astype(jnp.int32))
    res = train.fit(models.CNN1D(channels=8, rngs=nnx.Rngs(0)), optax.adam(3e-3), d, steps=150, batch_size=32)
    assert res.history["train_loss"][-1] < 0.5 * res.history["train_loss"][0]


def test_engine_step_is_pure_and_jittable(small):
    model = models.MLP((8, 4), rngs=nnx.Rngs(0))
    graphdef, params, rest = engine.split_model(model)
    tx = optax.sgd(0.1)
    state = engine.TrainState(params, rest, tx.init(params), jnp.zeros((), jnp.int32))
    step = jax.jit(lambda s, b: engine.train_step(s, b, graphdef=graphdef, tx=tx))
    new, value = step(state, (small.x_train[:8], small.y_train[:8]))
    assert int(new.step) == 1 and np.isfinite(float(value))
    again, _ = step(state, (small.x_train[:8], small.y_train[:8]))
    assert_trees_close(new.params, again.params, rtol=0, atol=0)
