"""sgdlab.swa: the running average equals the hand-computed mean of the collected iterates, the
updates are those of the wrapped optimizer, and train.fit evaluates the average via eval_params."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from sgdlab import data, losses, models, swa, train


def noisy_quadratic_gradient(w, t, key, h):
    return {"w": h * w["w"] + jax.random.normal(jax.random.fold_in(key, t), w["w"].shape)}


@pytest.mark.parametrize("start, every", [(0, 1), (5, 1), (7, 4)])
def test_average_is_the_mean_of_the_collected_iterates(start, every):
    h = jnp.array([1.0, 0.3, 0.05])
    w0 = {"w": jnp.array([2.0, -1.0, 3.0])}
    steps = 30
    tx = swa.swa(optax.sgd(0.2, momentum=0.5), start=start, every=every)
    params, state, trace = train.optimize(tx, w0, noisy_quadratic_gradient, steps=steps, args=(jax.random.key(0), h))
    iterates = np.asarray(trace["w"])                      # w_1 .. w_T
    t = np.arange(1, steps + 1)
    chosen = iterates[(t >= start) & ((t - start) % every == 0)]
    np.testing.assert_allclose(np.asarray(state.average["w"]), chosen.mean(0), rtol=1e-5, atol=1e-6)
    assert int(state.count) == len(chosen)
    np.testing.assert_allclose(np.asarray(swa.swa_params(params, state)["w"]), chosen.mean(0), rtol=1e-5, atol=1e-6)
    # the wrapped optimizer's trajectory is untouched
    plain, _, _ = train.optimize(optax.sgd(0.2, momentum=0.5), w0, noisy_quadratic_gradient, steps=steps,
                                 args=(jax.random.key(0), h))
    np.testing.assert_allclose(np.asarray(params["w"]), np.asarray(plain["w"]), rtol=1e-6)


def test_swa_params_before_collection_and_inside_a_chain():
    w = {"w": jnp.ones(3)}
    tx = optax.chain(optax.clip_by_global_norm(1.0), swa.swa(optax.sgd(0.1), start=100))
    state = tx.init(w)
    _, state = tx.update({"w": jnp.ones(3)}, state, w)
    np.testing.assert_array_equal(np.asarray(swa.swa_params(w, state)["w"]), np.ones(3))
    with pytest.raises(ValueError, match="SWAState"):
        swa.swa_params(w, optax.sgd(0.1).init(w))
    with pytest.raises(ValueError, match="every"):
        swa.swa(optax.sgd(0.1), start=0, every=0)
    with pytest.raises(ValueError, match="params"):
        swa.swa(optax.sgd(0.1), start=0).update({"w": jnp.ones(3)}, state[1], None)


def test_fit_evaluates_the_average_through_eval_params():
    mnist = data.mnist1d(n_train=256, n_test=64)
    model = models.MLP((40, 8, 10), rngs=nnx.Rngs(0))
    tx = swa.swa(optax.sgd(0.3), start=10, every=5)
    res = train.fit(model, tx, mnist, steps=40, batch_size=16, eval_every=40, eval_params=swa.swa_params)
    average = swa.swa_params(nnx.state(res.model, nnx.Param), res.opt_state)
    graphdef, _, rest = nnx.split(res.model, nnx.Param, ...)
    at_average = nnx.merge(graphdef, average, rest)
    want = float(losses.cross_entropy(at_average(mnist.x_test), mnist.y_test).mean())
    assert float(res.history["test_loss"][-1]) == pytest.approx(want, rel=1e-5)
    at_iterate = float(losses.cross_entropy(res.model(mnist.x_test), mnist.y_test).mean())
    assert abs(at_iterate - want) > 1e-4  # the average is another point than the last iterate
    assert int(res.opt_state.count) == 7  # steps 10, 15, ..., 40


@pytest.mark.parametrize("outside", [True, False])
def test_swa_and_opaque_sam_wrap_each_other(outside):
    # swa around opaque SAM passes only grad_fn (SAM accepts no value); SAM around swa: swa_params finds it
    mnist = data.mnist1d(n_train=256, n_test=64)
    model = models.MLP((40, 8, 10), rngs=nnx.Rngs(0))
    adversary = optax.chain(optax.contrib.normalize(), optax.sgd(0.05))
    if outside:
        tx = swa.swa(optax.contrib.sam(optax.sgd(0.3), adversary, opaque_mode=True), start=10, every=5)
    else:
        tx = optax.contrib.sam(swa.swa(optax.sgd(0.3), start=10, every=5), adversary, opaque_mode=True)
    res = train.fit(model, tx, mnist, steps=40, batch_size=16, eval_every=40, eval_params=swa.swa_params)
    found = swa._find(res.opt_state)
    assert found is not None and int(found.count) == 7
    average = swa.swa_params(nnx.state(res.model, nnx.Param), res.opt_state)
    graphdef, _, rest = nnx.split(res.model, nnx.Param, ...)
    want = float(losses.cross_entropy(nnx.merge(graphdef, average, rest)(mnist.x_test), mnist.y_test).mean())
    assert float(res.history["test_loss"][-1]) == pytest.approx(want, rel=1e-5)
