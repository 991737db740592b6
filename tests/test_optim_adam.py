"""sgdlab.optim.adam against Optax's own optimizers and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from sgdlab import data, models, train
from sgdlab.coursework import ch05
from sgdlab.optim.adam import adam, adamw, mcallester_adam, rmsprop


def _stream(key, steps=200):
    """Random gradient stream for a small pytree of parameters, with scales from 1e-3 to 10."""
    k1, k2, k3 = jax.random.split(key, 3)
    scales = jnp.geomspace(1e-3, 10.0, 6)
    return {
        "w": jax.random.normal(k1, (steps, 3, 6)) * scales + 0.3 * scales,
        "b": jax.random.normal(k2, (steps, 6)) * 2.0,
        "c": jax.random.normal(k3, (steps,)) * 1e-2,
    }


def _updates(tx, stream):
    """Every update of ``tx`` on a gradient stream (time along axis 0 of each leaf)."""
    params = jax.tree.map(lambda g: jnp.zeros_like(g[0]), stream)

    def step(state, g):
        u, state = tx.update(g, state, params)
        return state, u

    return jax.lax.scan(step, tx.init(params), stream)[1]


def _close(a, b, tol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@pytest.mark.parametrize("lr,b1,b2,eps", [(1e-3, 0.9, 0.999, 1e-8), (0.1, 0.5, 0.9, 1e-6), (1.0, 0.0, 0.99, 1e-3)])
def test_adam_matches_optax(lr, b1, b2, eps):
    stream = _stream(jax.random.key(0))
    mine = _updates(adam(lr, b1, b2, eps), stream)
    theirs = _updates(optax.adam(lr, b1=b1, b2=b2, eps=eps), stream)
    # updates are O(lr): compare at 1e-6 relative to the step size
    _close(jax.tree.map(lambda u: u / lr, mine), jax.tree.map(lambda u: u / lr, theirs), 1e-6)


@pytest.mark.parametrize("decay,eps,inside", [(0.9, 1e-8, True), (0.99, 1e-4, True), (0.9, 1e-8, False), (0.5, 1e-3, False)])
def test_rmsprop_matches_optax(decay, eps, inside):
    lr = 0.01
    stream = _stream(jax.random.key(1))
    mine = _updates(rmsprop(lr, decay, eps, eps_in_sqrt=inside), stream)
    theirs = _updates(optax.rmsprop(lr, decay=decay, eps=eps, eps_in_sqrt=inside), stream)
    _close(jax.tree.map(lambda u: u / lr, mine), jax.tree.map(lambda u: u / lr, theirs), 1e-5)


def test_where_eps_goes_matters_for_tiny_gradients():
    g = {"x": jnp.full((5,), 1e-5)}
    inside = _updates(rmsprop(1.0, 0.9, 1e-8, eps_in_sqrt=True), g)["x"]
    outside = _updates(rmsprop(1.0, 0.9, 1e-8, eps_in_sqrt=False), g)["x"]
    assert not np.allclose(inside, outside, rtol=1e-2)


@pytest.mark.parametrize("g", [3.0, -0.01, 250.0])
def test_constant_gradient_gives_steps_of_size_alpha(g):
    lr = 0.05
    updates = _updates(adam(lr), {"x": jnp.full((100,), g)})["x"]
    # float32: 1 - b2**t loses about 6e-8 / (1 - b2) = 6e-5 relative accuracy at t = 1, 2, ...
    np.testing.assert_allclose(np.asarray(updates), -lr * np.sign(g) * abs(g) / (abs(g) + 1e-8), rtol=1e-4)


def _mcallester_reference(gs, lr, n_g, n_s, eps):
    mu = s = 0.0
    out = []
    for t, g in enumerate(gs, start=1):
        rg, rs = 1 / min(t, n_g), 1 / min(t, n_s)
        mu = (1 - rg) * mu + rg * g
        s = (1 - rs) * s + rs * g * g
        out.append(-lr * mu / (np.sqrt(s) + eps))
    return np.array(out)


@pytest.mark.parametrize("n_g,n_s", [(10.0, 1000.0), (3.0, 7.0), (1.0, 1.0)])
def test_mcallester_adam_matches_its_definition(n_g, n_s):
    gs = np.random.default_rng(2).normal(0.5, 2.0, size=80)
    got = _updates(mcallester_adam(0.1, n_g, n_s, 1e-8), {"x": jnp.asarray(gs, jnp.float32)})["x"]
    np.testing.assert_allclose(np.asarray(got), _mcallester_reference(gs, 0.1, n_g, n_s, 1e-8), rtol=1e-4, atol=1e-7)


def test_mcallester_adam_early_steps_use_exact_means():
    gs = np.random.default_rng(3).normal(size=10)
    got = np.asarray(_updates(mcallester_adam(1.0, 50, 50, 0.0), {"x": jnp.asarray(gs, jnp.float32)})["x"])
    t = np.arange(1, 11)
    want = -(np.cumsum(gs) / t) / np.sqrt(np.cumsum(gs**2) / t)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_adam_trains_like_optax_inside_fit():
    d = data.mnist1d(400, 100)
    model = models.MLP((40, 16, 10), rngs=nnx.Rngs(0))
    a = train.fit(model, adam(3e-3), d, steps=60, batch_size=32, eval_every=30, progress=False)
    b = train.fit(model, optax.adam(3e-3), d, steps=60, batch_size=32, eval_every=30, progress=False)
    np.testing.assert_allclose(a.history["train_loss"], b.history["train_loss"], rtol=1e-4)


def test_traced_learning_rate_in_a_sweep():
    d = data.mnist1d(400, 100)
    res = train.sweep(lambda rngs: models.MLP((40, 16, 10), rngs=rngs), adam, d,
                      steps=20, batch_sizes=32, grid={"learning_rate": [1e-3, 1e-2]}, eval_every=20, progress=False)
    assert np.all(np.isfinite(res.history["train_loss"]))


def test_validation():
    with pytest.raises(ValueError, match="learning_rate"):
        adam(-1.0)
    with pytest.raises(ValueError, match="b1"):
        adam(0.1, b1=1.0)
    with pytest.raises(ValueError, match="b2"):
        adam(0.1, b2=1.5)
    with pytest.raises(ValueError, match="eps"):
        adam(0.1, eps=-1e-8)
    with pytest.raises(ValueError, match="decay"):
        rmsprop(0.1, decay=1.0)
    with pytest.raises(ValueError, match="n_g"):
        mcallester_adam(0.1, n_g=0.5)
    with pytest.raises(ValueError, match="n_s"):
        mcallester_adam(0.1, n_s=-3)


def test_exported_from_optim():
    import sgdlab.optim as optim

    assert optim.adam is adam and optim.rmsprop is rmsprop and optim.mcallester_adam is mcallester_adam


def test_coursework_check_adam_updates():
    def transcribed(grads, lr, b1, b2, eps, correct=True):
        m = v = 0.0
        out = []
        for t, g in enumerate(grads, start=1):
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            c1, c2 = (1 - b1**t, 1 - b2**t) if correct else (1.0, 1.0)
            out.append(-lr * (m / c1) / (np.sqrt(v / c2) + eps))
        return np.array(out)

    def calls_the_package(grads, lr, b1, b2, eps):
        return np.asarray(_updates(adam(lr, b1, b2, eps), {"x": jnp.asarray(grads, jnp.float32)})["x"])

    def stub(*args):
        raise NotImplementedError

    assert ch05.check_adam_updates(transcribed)
    assert not ch05.check_adam_updates(lambda *a: transcribed(*a, correct=False))
    assert not ch05.check_adam_updates(stub)
    refused = ch05.check_adam_updates(calls_the_package)
    assert not refused and "package's own" in repr(refused)


def test_rmsprop_eps_closed_forms_for_a_constant_tiny_gradient():
    g, steps = 1e-5, 300
    v = (1 - 0.9**steps) * g * g  # no bias correction: v_t = (1 - rho^t) g^2
    inside = _updates(rmsprop(1.0, 0.9, 1e-8, eps_in_sqrt=True), {"x": jnp.full((steps,), g)})["x"][-1]
    outside = _updates(rmsprop(1.0, 0.9, 1e-8, eps_in_sqrt=False), {"x": jnp.full((steps,), g)})["x"][-1]
    assert float(-inside) == pytest.approx(g / np.sqrt(v + 1e-8), rel=1e-4)
    assert float(-outside) == pytest.approx(g / (np.sqrt(v) + 1e-8), rel=1e-4)


def test_uncorrected_adam_steps_closed_form():
    from sgdlab import averaging

    t = np.arange(1, 101)
    m = np.asarray(averaging.running_averages(np.ones(100), 0.9)["ema"])
    v = np.asarray(averaging.running_averages(np.ones(100), 0.999)["ema"])
    np.testing.assert_allclose(m / np.sqrt(v), (1 - 0.9**t) / np.sqrt(1 - 0.999**t), rtol=1e-4)


@pytest.mark.parametrize("lr,wd", [(1e-3, 1e-4), (0.1, 0.05), (0.01, 0.0)])
def test_adamw_matches_optax(lr, wd):
    stream = _stream(jax.random.key(3))
    params = jax.tree.map(lambda g: jax.random.normal(jax.random.key(4), g.shape[1:]), stream)

    def updates(tx):
        def step(carry, g):
            p, state = carry
            u, state = tx.update(g, state, p)
            return (optax.apply_updates(p, u), state), u
        return jax.lax.scan(step, (params, tx.init(params)), stream)[1]

    mine, theirs = updates(adamw(lr, weight_decay=wd)), updates(optax.adamw(lr, weight_decay=wd))
    _close(jax.tree.map(lambda u: u / lr, mine), jax.tree.map(lambda u: u / lr, theirs), 1e-5)


def test_adamw_decays_a_weight_without_gradient_geometrically():
    # zero loss gradient: m = v = 0, so w_t = (1 - eta lambda)^t w_0 exactly
    lr, wd, w0 = 0.1, 0.5, 2.0
    tx = adamw(lr, weight_decay=wd)
    _, _, ws = train.optimize(tx, jnp.asarray(w0), lambda w, t: jnp.zeros_like(w), steps=50, trace=lambda w: w)
    np.testing.assert_allclose(np.asarray(ws), w0 * (1 - lr * wd) ** np.arange(1, 51), rtol=1e-5)
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.zeros(()), tx.init(jnp.zeros(())))
    with pytest.raises(ValueError, match="weight_decay"):
        adamw(0.1, weight_decay=-1.0)
