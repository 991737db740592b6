"""Wilson et al.'s construction: the design matrix, the two closed-form limits, and training."""

import jax
import numpy as np
import optax
import pytest

from sgdlab import wilson
from sgdlab.coursework import ch05


def test_features_layout():
    y = np.array([1.0, -1.0, 1.0])
    x = wilson.features(y)
    assert x.shape == (3, 18)
    np.testing.assert_array_equal(x[:, 0], y)
    np.testing.assert_array_equal(x[:, 1:3], 1.0)
    np.testing.assert_array_equal(x[0, 3:8], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(x[1, 8:13], [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(x[2, 13:18], [1, 0, 0, 0, 0])
    # each private block belongs to one example only
    np.testing.assert_array_equal((x[:, 3:] != 0).sum(axis=0) <= 1, True)


def test_sign_direction_is_an_eigen_direction():
    d = wilson.dataset(jax.random.key(0), 50, 0.7)
    x, y = np.asarray(d.x_train, float), np.asarray(d.y_train, float)
    s = np.sign(x.T @ y)
    np.testing.assert_allclose(x @ s, 4 * y)
    np.testing.assert_allclose(wilson.adaptive_solution(x, y)[:3], [0.25, 0.25, 0.25])


def test_closed_form_test_errors():
    p = 0.7
    d = wilson.dataset(jax.random.key(1), 60, p, n_test=4000)
    x, y = np.asarray(d.x_train), np.asarray(d.y_train)
    negatives = float(np.mean(np.asarray(d.y_test) == -1))
    assert wilson.test_error(wilson.min_norm_solution(x, y), d) == 0.0
    assert wilson.test_error(wilson.adaptive_solution(x, y), d) == pytest.approx(negatives)
    # the fraction of negatives is 1 - p up to sampling error
    assert abs(negatives - (1 - p)) < 4 * np.sqrt(p * (1 - p) / 4000)


@pytest.mark.parametrize("name", ["gd", "adagrad", "rmsprop", "adam"])
def test_training_reaches_the_closed_form_limits(name):
    d = wilson.dataset(jax.random.key(2), 40, 0.7)
    x, y = np.asarray(d.x_train, float), np.asarray(d.y_train, float)
    tx, steps, limit = {
        "gd": (optax.sgd(0.2), 20000, wilson.min_norm_solution(x, y)),
        "adagrad": (optax.adagrad(0.1, initial_accumulator_value=0.0), 5000, wilson.adaptive_solution(x, y)),
        "rmsprop": (optax.rmsprop(0.003), 5000, wilson.adaptive_solution(x, y)),
        "adam": (optax.adam(0.01), 5000, wilson.adaptive_solution(x, y)),
    }[name]
    w, losses = wilson.train(tx, d, steps)
    assert losses[-1] < 1e-4
    np.testing.assert_allclose(w[:3], limit[:3], atol=0.02)
    assert wilson.test_error(w, d) == wilson.test_error(limit, d)


def test_default_adagrad_accumulator_hides_the_effect():
    d = wilson.dataset(jax.random.key(3), 40, 0.7)
    w, _ = wilson.train(optax.adagrad(0.1), d, 5000)  # initial accumulator 0.1
    assert wilson.test_error(w, d) == 0.0


def test_validation():
    with pytest.raises(ValueError, match="p "):
        wilson.dataset(jax.random.key(0), 10, 0.4)
    with pytest.raises(ValueError, match="y"):
        wilson.features(np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="d "):
        wilson.features(np.array([1.0, -1.0]), d=10)
    with pytest.raises(ValueError, match="steps"):
        wilson.train(optax.sgd(0.1), wilson.dataset(jax.random.key(0), 5, 0.7), 0)
    with pytest.raises(ValueError, match="optimizer"):
        wilson.train("sgd", wilson.dataset(jax.random.key(0), 5, 0.7), 10)


def test_coursework_check_wilson_features():
    def stub(y):
        raise NotImplementedError

    def by_rows(y, five_for="negative"):
        y = np.asarray(y, dtype=float)
        x = np.zeros((y.size, 6 * y.size))
        for i, label in enumerate(y):
            x[i, :3] = label, 1.0, 1.0
            wide = (label == -1) if five_for == "negative" else (label == 1)
            x[i, 3 + 5 * i: 3 + 5 * i + (5 if wide else 1)] = 1.0
        return x

    def calls_the_package(y):
        return wilson.features(y)

    assert ch05.check_wilson_features(by_rows)
    assert not ch05.check_wilson_features(lambda y: by_rows(y, five_for="positive"))
    assert not ch05.check_wilson_features(stub)
    refused = ch05.check_wilson_features(calls_the_package)
    assert not refused and "package's own" in repr(refused)


def test_coursework_check_adagrad_test_error():
    def measured(problem, a0, steps):
        w, _ = wilson.train(optax.adagrad(0.1, initial_accumulator_value=a0), problem, steps)
        return wilson.test_error(w, problem)

    def always_zero(problem, a0, steps):
        return 0.0

    assert ch05.check_adagrad_test_error(measured)
    assert not ch05.check_adagrad_test_error(always_zero)
