"""sgdlab.mnist1d_jax: the on-device MNIST-1D generator against the reference ``mnist1d`` generator."""

import random

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from sgdlab import mnist1d_jax
from sgdlab.mnist1d_jax import mnist1d_sample

# one family-wise significance level for every statistical test of this file
ALPHA = 1e-3


@pytest.fixture(scope="module")
def reference():
    """The reference default data set (5,000 samples, seed 42) and its raw samples before
    standardisation, recorded by wrapping ``transform``; global RNG states restored."""
    import mnist1d.data as md

    raw = []
    transform = md.transform

    def recording(x, t, args):
        out = transform(x, t, args)
        raw.append(out[0])
        return out

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(md, "transform", recording)
            ds = md.make_dataset()
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = np.concatenate([ds["x"], ds["x_test"]])
    y = np.concatenate([ds["y"], ds["y_test"]])
    return {"x": x, "y": y, "raw": np.stack(raw)}


@pytest.fixture(scope="module")
def generated():
    x, y = mnist1d_sample(jax.random.key(2026), 50_000)
    return {"x": np.asarray(x, np.float64), "y": np.asarray(y)}


def test_standardisation_constants_are_those_of_the_reference_default_data_set(reference):
    raw = reference["raw"]
    assert raw.shape == (5000, 40)
    np.testing.assert_allclose(raw.mean(), mnist1d_jax.RAW_MEAN, rtol=1e-12)
    np.testing.assert_allclose(raw.std(), mnist1d_jax.RAW_STD, rtol=1e-12)
    # the reference's standardised values are these raw values under (x - mean) / std
    ours = (raw.ravel() - mnist1d_jax.RAW_MEAN) / mnist1d_jax.RAW_STD
    np.testing.assert_allclose(np.sort(ours), np.sort(reference["x"].ravel()), atol=1e-10)


def test_transform_reproduces_the_reference_given_the_same_draws():
    """Replay the reference's own random draws through the batched transform: equal to float32."""
    from mnist1d.data import get_dataset_args, get_templates
    from mnist1d.transform import transform

    args, templates = get_dataset_args(), get_templates()
    t = mnist1d_jax._tables()
    # the batched transform adds the iid noise after subsampling as L w, where the reference
    # adds z' before it: L w = M z' for w = L^{-1} M z'
    chol = t.iid_chol_t.T.astype(np.float64)
    subsample = t.subsample_t.T.astype(np.float64)
    refs, cols = [], {f: [] for f in mnist1d_jax.Draws._fields}
    state = np.random.get_state()
    try:
        for i in range(300):
            label = i % 10
            np.random.seed(i)
            refs.append(transform(templates["x"][label], templates["t"], args)[0])
            np.random.seed(i)  # the same draws, in the order transform makes them
            cols["y"].append(label)
            cols["p"].append(36 + int(np.random.rand() * 25))
            cols["scale"].append(1 + 0.4 * (np.random.rand() - 0.5))
            cols["k"].append(np.random.choice(48))
            cols["corr"].append(np.random.randn(72))
            cols["iid"].append(np.linalg.solve(chol, subsample @ np.random.randn(72)))
            cols["shear"].append(0.75 * (np.random.rand() - 0.5))
    finally:
        np.random.set_state(state)
    dtypes = {"y": jnp.int32, "p": jnp.int32, "k": jnp.int32}
    draws = mnist1d_jax.Draws(**{f: jnp.asarray(np.stack(v), dtypes.get(f, jnp.float32))
                                 for f, v in cols.items()})
    assert len(set(cols["p"])) > 20 and len(set(cols["k"])) > 40
    np.testing.assert_allclose(np.asarray(mnist1d_jax._transform(draws)), np.stack(refs), atol=2e-6)


def test_float32_table_keeps_the_reference_zero_pattern():
    from mnist1d.data import get_templates
    from mnist1d.transform import interpolate

    t = mnist1d_jax._tables()
    for label, u in enumerate(get_templates()["x"]):
        for j, p in enumerate(range(36, 61)):
            exact = interpolate(np.concatenate([u + 1e-8, np.zeros(p)]), 72)
            np.testing.assert_array_equal(t.dilated[label, j] != 0, exact != 0)
            np.testing.assert_allclose(t.dilated[label, j], exact, rtol=1e-6)


def test_gaussian_filter_matrix_is_scipy_reflect_mode():
    """``filter_t`` against NumPy: a 17-tap Gaussian (sigma 2, radius 8) on a 'symmetric' pad."""
    z = np.random.default_rng(0).normal(size=(5, 72))
    taps = np.exp(-0.5 * (np.arange(-8, 9) / 2.0) ** 2)
    taps /= taps.sum()
    padded = np.pad(z, ((0, 0), (8, 8)), mode="symmetric")
    expected = np.stack([np.convolve(row, taps, mode="valid") for row in padded])
    np.testing.assert_allclose(z @ mnist1d_jax._tables().filter_t, expected, atol=1e-6)


def test_draws_cover_the_reference_ranges():
    d = jax.jit(mnist1d_jax._draw, static_argnums=1)(jax.random.key(0), 20_000)
    assert set(np.unique(d.p)) == set(range(36, 61))
    assert set(np.unique(d.k)) == set(range(48))
    assert 0.8 <= float(d.scale.min()) and float(d.scale.max()) <= 1.2
    assert -0.375 <= float(d.shear.min()) and float(d.shear.max()) <= 0.375


def _zscores_per_class(gen, ref):
    """z-scores of the differences of per-class, per-position means and standard deviations."""
    z_mean, z_std = [], []
    for c in range(10):
        a, b = gen["x"][gen["y"] == c], ref["x"][ref["y"] == c]
        se = [np.sqrt(v.var(0, ddof=1) / len(v)) for v in (a, b)]
        z_mean.append((a.mean(0) - b.mean(0)) / np.hypot(*se))
        # delta method: Var(s) ~ (m4 - s^4) / (4 s^2 n), m4 the fourth central moment
        sd = [v.std(0, ddof=1) for v in (a, b)]
        se = [np.sqrt((((v - v.mean(0)) ** 4).mean(0) - s**4) / (4 * s**2 * len(v)))
              for v, s in zip((a, b), sd)]
        z_std.append((sd[0] - sd[1]) / np.hypot(*se))
    return np.stack(z_mean), np.stack(z_std)


def test_per_class_means_and_stds_match_the_reference(generated, reference):
    z_mean, z_std = _zscores_per_class(generated, reference)
    assert z_mean.shape == z_std.shape == (10, 40)
    # 800 two-sided comparisons, Bonferroni at family-wise ALPHA: |z| < 4.97
    crit = stats.norm.isf(ALPHA / (2 * 2 * z_mean.size))
    assert np.abs(z_mean).max() < crit, np.abs(z_mean).max()
    assert np.abs(z_std).max() < crit, np.abs(z_std).max()


def test_per_class_comparison_can_fail(generated, reference):
    """Power: rolling every generated sample one step further is already detected."""
    shifted = {"x": np.roll(generated["x"], 1, axis=1), "y": generated["y"]}
    z_mean, _ = _zscores_per_class(shifted, reference)
    assert np.abs(z_mean).max() > stats.norm.isf(ALPHA / (2 * 2 * z_mean.size))


def _held_out_accuracy(gen_x, gen_y, ref_x, ref_y, n_test=1000):
    """Train an MLP on (x, one-hot y) to tell reference (1) from generated (0); held-out accuracy."""
    def features(x, y):
        return jnp.concatenate([jnp.asarray(x, jnp.float32), jax.nn.one_hot(y, 10)], axis=1)

    n = min(len(ref_x), len(gen_x))
    f_ref, f_gen = features(ref_x[:n], ref_y[:n]), features(gen_x[:n], gen_y[:n])
    x_tr = jnp.concatenate([f_ref[n_test:], f_gen[n_test:]])
    t_tr = jnp.concatenate([jnp.ones(n - n_test), jnp.zeros(n - n_test)])
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"w1": jax.random.normal(k1, (50, 128)) / np.sqrt(50), "b1": jnp.zeros(128),
              "w2": jax.random.normal(k2, (128,)) / np.sqrt(128), "b2": jnp.zeros(())}

    def logit(p, x):
        return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss(p):
        return optax.sigmoid_binary_cross_entropy(logit(p, x_tr), t_tr).mean()

    tx = optax.adam(3e-3)

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=400)
    correct = int((logit(params, f_ref[:n_test]) > 0).sum() + (logit(params, f_gen[:n_test]) <= 0).sum())
    return correct, 2 * n_test


def test_classifier_cannot_tell_generated_from_reference(generated, reference):
    correct, total = _held_out_accuracy(generated["x"], generated["y"], reference["x"], reference["y"])
    # for any fixed classifier, the held-out correct count on 1,000 + 1,000 fresh samples of one
    # distribution has mean 1,000 and variance at most that of Binomial(2000, 1/2)
    p_value = stats.binomtest(correct, total, 0.5, alternative="greater").pvalue
    assert p_value > ALPHA, (correct, total, p_value)


def test_classifier_detects_a_small_difference(generated, reference):
    """Power: 10 % more amplitude is caught (so the test above can fail)."""
    correct, total = _held_out_accuracy(1.1 * generated["x"], generated["y"],
                                        reference["x"], reference["y"])
    assert stats.binomtest(correct, total, 0.5, alternative="greater").pvalue < ALPHA, correct


def test_same_key_same_samples_shapes_and_dtypes():
    x, y = mnist1d_sample(jax.random.key(7), 300)
    x2, y2 = mnist1d_sample(jax.random.key(7), 300)
    x3, _ = mnist1d_sample(jax.random.key(8), 300)
    assert x.shape == (300, 40) and y.shape == (300,)
    assert x.dtype == jnp.float32 and y.dtype == jnp.int32
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.allclose(x, x3)
    jitted_x, _ = jax.jit(mnist1d_sample, static_argnums=1)(jax.random.key(7), 300)
    np.testing.assert_allclose(jitted_x, x, atol=1e-6)


def test_labels_are_uniform_over_ten_classes(generated):
    counts = np.bincount(generated["y"], minlength=10)
    assert len(counts) == 10
    assert stats.chisquare(counts).pvalue > ALPHA, counts


@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10", None])
def test_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n"):
        mnist1d_sample(jax.random.key(0), n)


def test_first_epoch_on_a_generated_sample_is_online_learning():
    """Chapter 13's theorem: in its first epoch (without replacement) SGD on n generated examples
    has the law of SGD on fresh samples; the gap opens only once examples repeat."""
    import optax
    from flax import nnx

    from sgdlab import data, train
    from sgdlab.models import MLP

    n, batch, runs = 160, 16, 16  # one epoch = 10 steps
    x_test, y_test = mnist1d_sample(jax.random.key(99), 2000)
    kw = dict(steps=30, batch_size=batch, eval_every=10, progress=False)
    real = np.stack([
        train.fit(MLP((40, 10), rngs=nnx.Rngs(s)), optax.sgd(0.1),
                  data.Dataset(*mnist1d_sample(jax.random.key(1000 + s), n), x_test, y_test),
                  seed=s, **kw).history["test_loss"]
        for s in range(runs)])
    ideal = train.sweep(lambda rngs: MLP((40, 10), rngs=rngs), optax.sgd, mnist1d_sample,
                        batch_sizes=batch, grid={"learning_rate": [0.1]}, seeds=range(runs),
                        eval_data=data.Dataset(x_test[:10], y_test[:10], x_test, y_test),
                        **{k: v for k, v in kw.items() if k != "batch_size"}).history["test_loss"][0, 0]
    gap = real - ideal  # (run, evaluation); run s starts both worlds from the same weights
    mean, se = gap.mean(0), gap.std(0, ddof=1) / np.sqrt(runs)
    assert abs(mean[1]) < 4 * se[1], (mean[1], se[1])  # step 10, the end of the first epoch
    assert mean[-1] > 4 * se[-1], (mean[-1], se[-1])  # by the third epoch the gap is open
