"""sgdlab.averaging against a plain loop, closed forms and Monte Carlo."""

import jax
import numpy as np
import pytest

from sgdlab import averaging
from sgdlab.coursework import ch04


def _loop(xs, beta):
    """Independent reference: the four recursions written as a Python loop over a short stream."""
    n = 1 / (1 - beta)
    m = mc = mean = np.zeros(xs.shape[1:])
    out = {k: [] for k in averaging.KINDS}
    for t, x in enumerate(xs, start=1):
        m = beta * m + (1 - beta) * x
        r = 1 / min(n, t)
        mc = (1 - r) * mc + r * x
        mean = mean + (x - mean) / t
        out["ema"].append(m)
        out["adam"].append(m / (1 - beta**t))
        out["mcallester"].append(mc)
        out["mean"].append(mean)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.97])
def test_running_averages_match_loop(beta):
    xs = np.random.default_rng(0).normal(1.0, 2.0, size=(60, 3))
    got = averaging.running_averages(xs, beta)
    want = _loop(xs, beta)
    for kind in averaging.KINDS:
        np.testing.assert_allclose(np.asarray(got[kind]), want[kind], rtol=1e-5, atol=1e-5, err_msg=kind)


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.95, 0.7])
def test_weights_are_what_the_code_computes(beta):
    t = 30
    probe = averaging.running_averages(np.eye(t), beta)
    for kind in averaging.KINDS:
        np.testing.assert_allclose(np.asarray(probe[kind])[-1], averaging.average_weights(t, beta, kind), atol=1e-6)


def test_closed_forms_of_the_moments():
    beta, mu, sigma = 0.9, 2.0, 0.7
    for t in (1, 3, 10, 100):
        m, _ = averaging.ema_moments(t, beta, mu, sigma, "ema")
        assert m == pytest.approx((1 - beta**t) * mu)
        m, v = averaging.ema_moments(t, beta, mu, sigma, "adam")
        assert m == pytest.approx(mu)
        assert v == pytest.approx(sigma**2 * (1 - beta) * (1 + beta**t) / ((1 + beta) * (1 - beta**t)))
        _, v = averaging.ema_moments(t, beta, mu, sigma, "mean")
        assert v == pytest.approx(sigma**2 / t)
    # long run: as noisy as a mean of 2N - 1 samples
    _, v = averaging.ema_moments(2000, beta, mu, sigma, "adam")
    assert v == pytest.approx(sigma**2 / (2 * 10 - 1), rel=1e-6)


def test_mcallester_is_the_exact_mean_up_to_n():
    xs = np.random.default_rng(1).normal(size=50)
    out = averaging.running_averages(xs, 1 - 1 / 20)
    np.testing.assert_allclose(np.asarray(out["mcallester"])[:20], np.cumsum(xs[:20]) / np.arange(1, 21), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(out["mcallester"])[40], xs[:41].mean())


def test_monte_carlo_moments_within_standard_errors():
    beta, mu, sigma, chains = 0.95, 1.0, 0.5, 20000
    draws = mu + sigma * jax.random.normal(jax.random.key(3), (200, chains))
    est = {k: np.asarray(v) for k, v in averaging.running_averages(draws, beta).items()}
    for kind in averaging.KINDS:
        for t in (1, 5, 20, 200):
            sample = est[kind][t - 1].astype(float)
            m, v = averaging.ema_moments(t, beta, mu, sigma, kind)
            assert abs(sample.mean() - m) < 5 * np.sqrt(v / chains), (kind, t)
            # the sample variance of normal data has standard error v * sqrt(2 / (n - 1))
            assert abs(sample.var(ddof=1) - v) < 5 * v * np.sqrt(2 / (chains - 1)), (kind, t)


def test_validation():
    with pytest.raises(ValueError, match="beta"):
        averaging.running_averages(np.ones(5), 1.0)
    with pytest.raises(ValueError, match="xs"):
        averaging.running_averages(np.array([1.0, np.nan]), 0.5)
    with pytest.raises(ValueError, match="kind"):
        averaging.average_weights(5, 0.5, "median")
    with pytest.raises(ValueError, match="t "):
        averaging.average_weights(0, 0.5)
    with pytest.raises(ValueError, match="std"):
        averaging.ema_moments(5, 0.5, 0.0, -1.0)


def test_coursework_check_adam_ema():
    def good(xs, beta):
        xs = np.asarray(xs, np.float64)
        m, out = 0.0, []
        for t, x in enumerate(xs, start=1):
            m = beta * m + (1 - beta) * x
            out.append(m / (1 - beta**t))
        return np.array(out)

    def uncorrected(xs, beta):
        return good(xs, beta) * (1 - beta ** np.arange(1, len(xs) + 1))

    def package(xs, beta):
        return np.asarray(averaging.running_averages(np.asarray(xs, np.float32), beta)["adam"])

    def stub(xs, beta):
        raise NotImplementedError

    assert ch04.check_adam_corrected_ema(good)
    assert not ch04.check_adam_corrected_ema(uncorrected)
    assert not ch04.check_adam_corrected_ema(stub)
    refused = ch04.check_adam_corrected_ema(package)
    assert not refused and "package" in repr(refused)
    # the reference of the check agrees with the package's scan
    xs = np.random.default_rng(0).normal(size=30)
    np.testing.assert_allclose(good(xs, 0.9), np.asarray(averaging.running_averages(xs.astype(np.float32), 0.9)["adam"]),
                               rtol=1e-4, atol=1e-5)
