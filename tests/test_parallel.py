"""sgdlab.parallel and fit(devices=): on 4 simulated CPU devices the sharded run is the single-device run.

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
    print("sharded run equals the single-device run")
""")


def test_sharded_fit_equals_single_device_fit():
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
