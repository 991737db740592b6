"""sgdlab.parallel, fit(devices=) and sweep(devices=): on 4 simulated CPU devices the sharded runs are the single-device runs.

The device count is fixed when JAX starts, so the check runs in a fresh Python process with
``JAX_NUM_CPU_DEVICES=4`` (and the older ``XLA_FLAGS`` spelling for JAX before 0.5).
"""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax
    from flax import nnx
    from sgdlab import data, engine, models, parallel, train

    assert len(jax.devices()) == 4, jax.devices()
    d, _ = data.teacher_student(jax.random.key(0), 512, (8, 32, 4), n_test=64)
    model = models.MLP((8, 32, 4), rngs=nnx.Rngs(1))
    tx = optax.sgd(0.1, momentum=0.9)
    one = train.fit(model, tx, d, steps=40, batch_size=32, eval_every=20)
    four = train.fit(model, tx, d, steps=40, batch_size=32, eval_every=20, devices=4)
    for a, b in zip(jax.tree.leaves(nnx.state(one.model, nnx.Param)), jax.tree.leaves(nnx.state(four.model, nnx.Param))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.history["test_loss"], four.history["test_loss"], rtol=1e-5)
    # each device holds a quarter of the batch
    mesh = parallel.data_mesh(4)
    batch = jax.jit(lambda x: parallel.shard_batch(x, parallel.batch_sharding(mesh)))(d.x_train[:32])
    assert sorted(s.data.shape for s in batch.addressable_shards) == [(8, 8)] * 4
    assert len({s.device for s in batch.addressable_shards}) == 4
    try:
        train.fit(model, tx, d, steps=4, batch_size=30, devices=4)
    except ValueError as e:
        assert "multiple of the number of devices" in str(e)
    else:
        raise AssertionError("batch 30 on 4 devices must be refused")
    # a sweep's 6 runs per batch size spread over 4 devices (padded to 8): the same runs, the same divergence
    kw = dict(steps=lambda b: 2048 // b, batch_sizes=[16, 32], grid={"learning_rate": [0.05, 0.1, 30.0]},
              seeds=[0, 1], eval_every=20, keep_params=True)
    momentum_sgd = lambda learning_rate: optax.sgd(learning_rate, momentum=0.9)
    mlp = lambda rngs: models.MLP((8, 32, 4), rngs=rngs)
    single = train.sweep(mlp, momentum_sgd, d, **kw)
    spread = train.sweep(mlp, momentum_sgd, d, devices=4, **kw)
    assert single.diverged.any() and (single.diverged == spread.diverged).all(), (single.diverged, spread.diverged)
    ok = ~single.diverged
    np.testing.assert_allclose(single.history["test_loss"][ok], spread.history["test_loss"][ok], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(spread.params)):
        assert a.shape == b.shape == (6,) + a.shape[1:], (a.shape, b.shape)
        np.testing.assert_allclose(a[ok[0].ravel()], b[ok[0].ravel()], rtol=1e-5, atol=1e-6)
    leaf = jax.tree.leaves(train.sweep(mlp, momentum_sgd, d, devices=4, keep_params=True, steps=2, batch_sizes=16,
                                       grid={"learning_rate": [0.1] * 4}, seeds=[0, 1]).params[0])[0]
    assert len({s.device for s in leaf.addressable_shards}) == 4 and leaf.addressable_shards[0].data.shape[0] == 2
    print("sharded run equals the single-device run")
""")


def test_sharded_fit_and_sweep_equal_single_device_runs():
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "4", "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu", "SGDLAB_NO_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "sharded run equals" in proc.stdout


def test_data_mesh_validates_devices():
    from sgdlab import parallel

    with pytest.raises(ValueError, match="devices"):
        parallel.data_mesh(10_000)
    with pytest.raises(ValueError, match="devices"):
        parallel.data_mesh(["cpu"])
    assert parallel.data_mesh(1).axis_names == ("data",)
    assert parallel.runs_mesh(1).axis_names == ("runs",)
