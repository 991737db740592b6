"""sgdlab.optim.delayed: asynchronous SGD with a fixed staleness, against the delayed recursion."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sgdlab import train
from sgdlab.optim.delayed import delayed, stability_limit


def _gradient(w, _t, lam):
    return lam * w


@pytest.mark.parametrize("tau", [1, 3])
def test_delayed_sgd_is_the_delayed_recursion(tau):
    eta, lam, steps = 0.1, jnp.array([1.0, 3.0]), 30
    w0 = jnp.array([1.0, -2.0])
    _, _, path = train.optimize(delayed(optax.sgd(eta), tau), w0, _gradient, steps=steps, args=(lam,))
    ws = [np.asarray(w0, float)]
    for t in range(steps):
        step = eta * np.asarray(lam) * ws[t - tau] if t >= tau else 0.0
        ws.append(ws[t] - step)
    np.testing.assert_allclose(path, np.stack(ws[1:]), rtol=1e-5, atol=1e-6)


def test_inner_state_waits_for_the_first_gradient():
    tx = delayed(optax.sgd(0.1, momentum=0.9), 2)
    state = tx.init(jnp.zeros(1))
    for g in (1.0, 2.0):
        u, state = tx.update(jnp.array([g]), state)
        assert float(u[0]) == 0.0
    u, state = tx.update(jnp.array([5.0]), state)
    assert float(u[0]) == pytest.approx(-0.1 * 1.0)  # the first gradient, momentum trace fresh
    assert delayed(optax.sgd(0.1), 0) is not None


@pytest.mark.parametrize("tau", [0, 1, 2, 5])
def test_stability_limit_is_where_the_characteristic_roots_leave_the_unit_disc(tau):
    limit = stability_limit(tau)

    def radius(x):
        coeffs = np.zeros(tau + 2)
        coeffs[0], coeffs[1], coeffs[-1] = 1.0, -1.0, x  # z^(tau+1) - z^tau + x
        if tau == 0:
            coeffs = np.array([1.0, x - 1.0])
        return np.abs(np.roots(coeffs)).max()

    assert radius(limit * 0.99) < 1 < radius(limit * 1.01)


def test_validation():
    with pytest.raises(ValueError, match="delay"):
        delayed(optax.sgd(0.1), -1)
    with pytest.raises(ValueError, match="inner"):
        delayed(0.1, 2)
