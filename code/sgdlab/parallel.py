r"""Synchronous data parallelism with ``jax.sharding``: the meshes that ``fit`` and ``sweep`` run on.

Synchronous SGD on :math:`D` devices is large-batch SGD: each device computes the gradient of
its :math:`B/D` examples, the gradients are averaged (an all-reduce), and every device applies
the same update to its copy of the parameters,

.. math::  \hat g = \frac1D\sum_{d=1}^D \frac{D}{B}\sum_{i\in\mathcal B_d}\nabla\ell_i(w)
                  = \frac1B\sum_{i\in\mathcal B}\nabla\ell_i(w).

With JAX one writes the single-device program and says how its arrays are laid out: the batch
split along a ``data`` axis of a :class:`jax.sharding.Mesh`, the parameters replicated. XLA's
partitioner then runs each device's part and inserts the all-reduce of the gradient. The same
code runs on simulated CPU devices (``JAX_NUM_CPU_DEVICES=4`` before JAX starts; older JAX:
``XLA_FLAGS=--xla_force_host_platform_device_count=4``), on several GPUs, on a TPU slice, and on
several hosts after ``jax.distributed.initialize()`` (then ``jax.devices()`` lists every host's
devices and each host feeds its own part of the batch).

A sweep's runs are independent, so ``sweep(..., devices=...)`` needs no communication at all: its
runs are split along a ``runs`` axis (:func:`runs_mesh`), each device training its share. On a
CPU with several cores, ``JAX_NUM_CPU_DEVICES`` equal to the number of cores lets a sweep use
them all (one XLA CPU device computes a small network's step on one core).

The mesh's axis type is given explicitly (``Auto``: the partitioner propagates shardings),
because ``jax.make_mesh``'s default changed from ``Auto`` (JAX 0.7, Colab's) to ``Explicit``
(JAX 0.9 and later).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import _checks

__all__ = ["data_mesh", "runs_mesh", "batch_sharding", "runs_sharding", "replicated", "shard_batch"]

AXIS = "data"
RUNS = "runs"


def data_mesh(devices: int | Sequence[Any] | None = None) -> Mesh:
    """A one-dimensional mesh with axis ``"data"`` over ``devices`` (a count of the first
    ``jax.devices()``, a list of devices, or ``None`` for all of them)."""
    return _mesh(devices, AXIS)


def runs_mesh(devices: int | Sequence[Any] | None = None) -> Mesh:
    """A one-dimensional mesh with axis ``"runs"`` over ``devices`` (as in :func:`data_mesh`)."""
    return _mesh(devices, RUNS)


def _mesh(devices: int | Sequence[Any] | None, axis: str) -> Mesh:
    available = jax.devices()
    if devices is None:
        chosen = available
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        count = _checks.positive_int("devices", devices)
        if count > len(available):
            raise ValueError(f"devices={count} but only {len(available)} are available: {available}")
        chosen = available[:count]
    else:
        chosen = list(devices)
        if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
            raise ValueError("devices must be a positive count or a non-empty list of jax devices")
    axis_type = getattr(jax.sharding, "AxisType", None)
    if axis_type is None:  # JAX before 0.5.x: every mesh axis is automatic
        return Mesh(np.asarray(chosen), (axis,))
    return Mesh(np.asarray(chosen), (axis,), axis_types=(axis_type.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows split along the mesh's ``data`` axis; every other dimension whole."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def runs_sharding(mesh: Mesh) -> NamedSharding:
    """A sweep's per-run arrays split along their leading (run) axis over the mesh's ``runs`` axis."""
    return NamedSharding(mesh, PartitionSpec(RUNS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh (parameters, optimizer state, the dataset)."""
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: Any, sharding: NamedSharding | None) -> Any:
    """Inside a compiled step, lay the minibatch out along the ``data`` axis (no-op for ``None``)."""
    if sharding is None:
        return batch
    return jax.lax.with_sharding_constraint(batch, sharding)
