"""sgdlab.data: MNIST-1D through the reference generator and its cache; synthetic data; index streams."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgdlab import data


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SGDLAB_CACHE", str(tmp_path))
    return tmp_path


def test_mnist1d_matches_reference_generator_and_is_cached(cache):
    from mnist1d.data import get_dataset_args, make_dataset

    d = data.mnist1d(n_train=150, n_test=50, seed=3)
    assert d.x_train.shape == (150, 40) and d.x_test.shape == (50, 40)
    assert d.y_train.dtype == jnp.int32 and set(np.unique(d.y_train)) <= set(range(10))
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = 200, 1.0, 3
    ref = make_dataset(args)
    np.testing.assert_allclose(np.concatenate([d.x_train, d.x_test]), ref["x"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([d.y_train, d.y_test]), ref["y"])
    files = list(cache.glob("mnist1d-*.npz"))
    assert len(files) == 1
    again = data.mnist1d(n_train=150, n_test=50, seed=3)
    np.testing.assert_array_equal(again.x_train, d.x_train)


def test_mnist1d_leaves_global_rngs_alone(cache):
    import random

    np.random.seed(123)
    random.seed(7)
    data.mnist1d(n_train=20, n_test=10, cache=False)
    assert np.random.randint(1 << 30) == np.random.RandomState(123).randint(1 << 30)
    assert random.random() == random.Random(7).random()


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_train=0), "n_train"), (dict(n_test=-1), "n_test"), (dict(seed=-2), "seed"),
    (dict(noise_scale=float("nan")), "noise_scale"),
])
def test_mnist1d_rejects_bad_arguments(kwargs, name, cache):
    with pytest.raises(ValueError, match=name):
        data.mnist1d(**kwargs)


def test_linear_regression_noise_level():
    d, w = data.linear_regression(jax.random.key(0), 20000, 5, noise_std=0.3, n_test=10)
    resid = d.y_train[:, 0] - d.x_train @ w
    # the sample variance of 20,000 Gaussian residuals has relative s.e. sqrt(2/n) = 1 %
    assert abs(float(resid.var()) / 0.09 - 1) < 5 * np.sqrt(2 / 20000)
    with pytest.raises(ValueError, match="feature_scales"):
        data.linear_regression(jax.random.key(0), 10, 3, feature_scales=jnp.ones(4))


def test_teacher_student_labels_come_from_teacher():
    d, teacher = data.teacher_student(jax.random.key(0), 300, (8, 16, 4), n_test=20)
    np.testing.assert_array_equal(np.argmax(teacher(d.x_train), -1), d.y_train)
    assert len(np.unique(d.y_train)) > 1


def test_minibatch_indices_without_replacement_walk_epochs():
    idx = np.asarray(data.minibatch_indices(jax.random.key(0), 10, 3, 9))
    assert idx.shape == (9, 3)
    for epoch in range(3):
        seen = idx[3 * epoch : 3 * epoch + 3].ravel()
        assert len(set(seen.tolist())) == 9 and seen.max() < 10
    assert not np.array_equal(idx[:3], idx[3:6])


def test_minibatch_indices_chunks_equal_the_uncut_stream():
    full = data.minibatch_indices(jax.random.key(5), 50, 7, 40)
    parts = [data.minibatch_indices(jax.random.key(5), 50, 7, 13, start=s) for s in (0, 13, 26)]
    np.testing.assert_array_equal(np.concatenate(parts)[:39], full[:39])
    jitted = jax.jit(lambda s: data.minibatch_indices(jax.random.key(5), 50, 7, 5, start=s))
    np.testing.assert_array_equal(jitted(11), full[11:16])
    with_rep = data.minibatch_indices(jax.random.key(5), 50, 7, 10, replace=True)
    np.testing.assert_array_equal(data.minibatch_indices(jax.random.key(5), 50, 7, 4, replace=True, start=3), with_rep[3:7])


def test_minibatch_indices_are_uniform():
    # every example equally often in the first slot over many epochs: chi-square test
    idx = np.asarray(data.minibatch_indices(jax.random.key(1), 20, 4, 5 * 2000))
    counts = np.bincount(idx[::5, 0], minlength=20)
    expected = 2000 / 20
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 43.8  # 19 dof, P = 0.001


@pytest.mark.parametrize("args, name", [((0, 1, 1), "n"), ((10, 11, 1), "batch_size"), ((10, 0, 1), "batch_size"),
                                        ((10, 2, 0), "steps")])
def test_minibatch_indices_rejects_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        data.minibatch_indices(jax.random.key(0), *args)
