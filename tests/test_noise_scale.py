"""sgdlab.noise_scale: the two-batch estimators are unbiased (Monte Carlo on per-example gradients),
the noise scales match their definitions, and the steps/examples fit recovers known constants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgdlab import noise_scale


def per_example_grads(n=100, d=6, seed=0):
    """Per-example gradients x_i (x_i^T w - y_i) of least squares at a point w away from the optimum."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.linspace(0.5, 2.0, d)
    y = x @ rng.normal(size=d) + 0.5 * rng.normal(size=n)
    w = rng.normal(size=d)
    return x * (x @ w - y)[:, None]


def draw_sq_norms(grads, b, draws, replace, rng):
    n = grads.shape[0]
    if replace:
        idx = rng.integers(0, n, size=(draws, b))
    else:
        idx = np.argsort(rng.random((draws, n)), axis=1)[:, :b]
    return np.sum(grads[idx].mean(1) ** 2, axis=1)


def exact(grads):
    g = grads.mean(0)
    return g @ g, np.mean(np.sum((grads - g) ** 2, axis=1))


@pytest.mark.parametrize("replace", [True, False])
def test_two_batch_estimates_are_unbiased(replace):
    grads = per_example_grads()
    n, draws = grads.shape[0], 40000
    b_small, b_big = 20, 90
    rng = np.random.default_rng(1)
    small = draw_sq_norms(grads, b_small, draws, replace, rng)
    big = draw_sq_norms(grads, b_big, draws, replace, rng)
    g2, tr = noise_scale.two_batch_estimates(small, big, b_small, b_big, n_train=None if replace else n)
    g2, tr = np.asarray(g2, np.float64), np.asarray(tr, np.float64)
    want_g2, want_tr = exact(grads)
    for est, want in ((g2, want_g2), (tr, want_tr)):
        se = est.std(ddof=1) / np.sqrt(draws)
        assert abs(est.mean() - want) < 4 * se
    if not replace:
        # without the finite-population correction |G|^2 is biased when b_big is near n
        g2_naive, _ = noise_scale.two_batch_estimates(small, big, b_small, b_big)
        g2_naive = np.asarray(g2_naive, np.float64)
        assert abs(g2_naive.mean() - want_g2) > 10 * g2_naive.std(ddof=1) / np.sqrt(draws)


def test_mccandlish_appendix_a_form_elementwise_and_under_jit():
    small, big = jnp.array([3.0, 2.5, 7.0]), jnp.array([1.2, 1.0, 1.5])
    g2, tr = jax.jit(lambda s, b: noise_scale.two_batch_estimates(s, b, 8, 64))(small, big)
    np.testing.assert_allclose(g2, (64 * big - 8 * small) / (64 - 8), rtol=1e-6)
    np.testing.assert_allclose(tr, (small - big) / (1 / 8 - 1 / 64), rtol=1e-6)


def test_noise_scales_from_exact_quantities():
    grads = per_example_grads()
    g = grads.mean(0)
    sigma = np.cov(grads.T, bias=True)
    g2, tr = exact(grads)
    assert float(noise_scale.b_simple(tr, g2)) == pytest.approx(tr / g2, rel=1e-6)
    # with H a multiple of the identity B_noise is B_simple
    assert float(noise_scale.b_noise(3.0 * np.eye(6), sigma, g)) == pytest.approx(tr / g2, rel=1e-5)
    h = np.diag(np.arange(1.0, 7.0))
    assert float(noise_scale.b_noise(h, sigma, g)) == pytest.approx(np.trace(h @ sigma) / (g @ h @ g), rel=1e-5)


def test_fit_recovers_known_constants():
    s_min, e_min = 1200.0, 6.0e4
    b = np.array([4, 16, 64, 256, 1024, 4096], float)
    steps = s_min + e_min / b
    examples = b * steps
    np.testing.assert_allclose(noise_scale.fit_steps_examples(steps, examples), (s_min, e_min), rtol=1e-8)
    # the fitted pairs satisfy the hyperbola, and a run that never arrived (inf) is ignored
    steps_inf = np.append(steps, np.inf)
    examples_inf = np.append(examples, np.inf)
    s_fit, e_fit = noise_scale.fit_steps_examples(steps_inf, examples_inf)
    np.testing.assert_allclose((steps / s_fit - 1) * (examples / e_fit - 1), 1.0, rtol=1e-7)
    # noisy steps (5 % lognormal) still give both constants within 15 %
    rng = np.random.default_rng(0)
    noisy = steps * np.exp(0.05 * rng.normal(size=steps.shape))
    got = noise_scale.fit_steps_examples(noisy, b * noisy)
    np.testing.assert_allclose(got, (s_min, e_min), rtol=0.15)


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="b_big"):
        noise_scale.two_batch_estimates(1.0, 0.5, 8, 8)
    with pytest.raises(ValueError, match="n_train"):
        noise_scale.two_batch_estimates(1.0, 0.5, 8, 64, n_train=32)
    with pytest.raises(ValueError, match="steps"):
        noise_scale.fit_steps_examples([1.0], [2.0])
    with pytest.raises(ValueError, match="NaN"):
        noise_scale.fit_steps_examples([1.0, np.nan], [2.0, 3.0])
    with pytest.raises(ValueError, match="grad"):
        noise_scale.b_noise(np.eye(3), np.eye(3), np.ones(2))
