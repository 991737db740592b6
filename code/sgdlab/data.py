"""Datasets as plain arrays, and the minibatch index streams that SGD draws from them.

* :func:`mnist1d` — MNIST-1D (Greydanus 2020), made by the reference ``mnist1d`` package and
  cached on disk, because the reference generator makes only a few thousand samples a second.
* :func:`mnist1d_sample` — the same distribution drawn on the device by a jitted JAX function
  (:mod:`sgdlab.mnist1d_jax`), fast enough for a fresh batch at every step.
* :func:`linear_regression` and :func:`teacher_student` — synthetic problems with a known answer.
* :func:`minibatch_indices` — which examples each SGD step sees, with or without replacement.
* Batch sources for the training engine: :class:`Minibatches` (rows of a :class:`Dataset`: epochs
  of permutations, independent draws with replacement, or rows drawn with given probabilities)
  and :class:`FreshSamples` (a sampler that draws new examples every step). Both make the batch
  of step :math:`t` a pure function of ``(key, t)``, so a run cut into chunks sees the batches
  of the uncut run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from .mnist1d_jax import mnist1d_sample

__all__ = ["Dataset", "cache_dir", "mnist1d", "mnist1d_sample", "linear_regression", "teacher_student",
           "minibatch_indices", "Minibatches", "FreshSamples", "BatchSource", "batch_source"]


class Dataset(NamedTuple):
    """Train and test arrays. Being a ``NamedTuple`` it is a JAX pytree."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])


def cache_dir() -> Path:
    """Where generated datasets are cached: ``$SGDLAB_CACHE`` or ``~/.cache/sgdlab``."""
    root = os.environ.get("SGDLAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sgdlab")
    return Path(root)


def _validate_dataset(data: Dataset) -> Dataset:
    """Check a :class:`Dataset` for consistent shapes and finite values."""
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be an sgdlab.data.Dataset, got {type(data).__name__}")
    for split in ("train", "test"):
        x = _checks.finite_array(f"data.x_{split}", getattr(data, f"x_{split}"))
        y = _checks.finite_array(f"data.y_{split}", getattr(data, f"y_{split}"))
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"data.x_{split} has {x.shape[0]} rows but data.y_{split} has {y.shape[0]}")
    if data.x_train.shape[1:] != data.x_test.shape[1:]:
        raise ValueError(f"data.x_train and data.x_test differ in shape: {data.x_train.shape} vs {data.x_test.shape}")
    return data


def mnist1d(
    n_train: int = 4000,
    n_test: int = 1000,
    *,
    seed: int = 42,
    noise_scale: float = 0.25,
    cache: bool = True,
) -> Dataset:
    """MNIST-1D: ten 1-D templates, randomly padded, translated, sheared, scaled and noised.

    The samples come from the reference generator ``mnist1d.data.make_dataset`` (Greydanus,
    *Scaling down deep learning*, 2020) with its default transformations; ``noise_scale`` is
    its correlated-noise scale (0.25 by default). The arrays are cached in :func:`cache_dir`
    keyed by the arguments, so only the first call pays for generation (about 4,000 samples/s).
    ``x`` has shape ``(n, 40)`` in float32, ``y`` holds integer labels 0–9.
    """
    n_train = _checks.positive_int("n_train", n_train)
    n_test = _checks.positive_int("n_test", n_test)
    seed = _checks.nonnegative_int("seed", seed)
    noise_scale = _checks.positive_float("noise_scale", noise_scale, allow_zero=True)
    total = n_train + n_test
    # the reference generator makes the same number of samples per class
    per_class = -(-total // 10)
    spec = {"generator": "mnist1d", "samples": per_class * 10, "seed": seed, "noise": noise_scale}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"mnist1d-{key}.npz"
    if cache and path.exists():
        with np.load(path) as f:
            x, y = f["x"], f["y"]
    else:
        x, y = _generate_mnist1d(per_class * 10, seed, noise_scale)
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez_compressed(tmp, x=x, y=y)
            os.replace(tmp, path)
    x = jnp.asarray(x[:total], dtype=jnp.float32)
    y = jnp.asarray(y[:total], dtype=jnp.int32)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def _generate_mnist1d(num_samples: int, seed: int, noise_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Call the reference generator without letting it disturb the caller's global RNGs."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.train_split = 1.0
    args.seed = seed
    args.corr_noise_scale = noise_scale
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return np.asarray(raw["x"], np.float32), np.asarray(raw["y"], np.int32)


def linear_regression(
    key: jax.Array,
    n_train: int,
    dim: int,
    *,
    n_test: int = 1000,
    noise_std: float = 0.1,
    feature_scales: jax.Array | None = None,
) -> tuple[Dataset, jax.Array]:
    r"""Noisy linear regression :math:`y = x^\top w^\star + \sigma\varepsilon`.

    Features are Gaussian with standard deviation ``feature_scales`` per coordinate (default 1),
    so the input covariance is :math:`\operatorname{diag}(s^2)`; :math:`w^\star\sim N(0, I/d)`.
    Returns the dataset (``y`` of shape ``(n, 1)``) and the true weights ``w_star`` of shape ``(dim,)``.
    """
    n_train = _checks.positive_int("n_train", n_train)
    n_test = _checks.positive_int("n_test", n_test)
    dim = _checks.positive_int("dim", dim)
    noise_std = _checks.positive_float("noise_std", noise_std, allow_zero=True)
    scales = jnp.ones(dim) if feature_scales is None else jnp.asarray(
        _checks.finite_array("feature_scales", feature_scales, ndim=1), jnp.float32)
    if scales.shape != (dim,):
        raise ValueError(f"feature_scales must have shape ({dim},), got {scales.shape}")
    k_w, k_x, k_e = jax.random.split(key, 3)
    w_star = jax.random.normal(k_w, (dim,)) / jnp.sqrt(dim)
    x = jax.random.normal(k_x, (n_train + n_test, dim)) * scales
    y = x @ w_star + noise_std * jax.random.normal(k_e, (n_train + n_test,))
    y = y[:, None]
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:]), w_star


def teacher_student(
    key: jax.Array,
    n_train: int,
    sizes: tuple[int, ...] = (40, 32, 10),
    *,
    n_test: int = 1000,
) -> tuple[Dataset, "object"]:
    """Labels from a random teacher MLP: a classification problem a student can fit exactly.

    The teacher is :class:`sgdlab.models.MLP` with ``sizes``, inputs are standard Gaussian and
    the label is the teacher's arg-max class. Returns the dataset and the teacher model.
    """
    from .models import MLP
    from flax import nnx

    n_train = _checks.positive_int("n_train", n_train)
    n_test = _checks.positive_int("n_test", n_test)
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least an input and an output width, got {sizes!r}")
    k_model, k_x = jax.random.split(key)
    teacher = MLP(sizes, rngs=nnx.Rngs(params=k_model))
    x = jax.random.normal(k_x, (n_train + n_test, sizes[0]))
    y = jnp.argmax(teacher(x), axis=-1).astype(jnp.int32)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:]), teacher


def minibatch_indices(
    key: jax.Array,
    n: int,
    batch_size: int,
    steps: int,
    *,
    replace: bool = False,
    start: int | jax.Array = 0,
) -> jax.Array:
    """Indices of the examples seen at steps ``start, ..., start + steps - 1``; shape ``(steps, batch_size)``.

    With ``replace=True`` every index of every batch is uniform on ``{0..n-1}``, independently.
    With ``replace=False`` SGD walks through epochs: each epoch is a fresh random permutation of
    the ``n`` examples cut into ``n // batch_size`` batches (the last ``n % batch_size`` examples
    of each permutation are skipped, as with ``drop_last``). Step ``t`` always gets the same
    batch for the same key, whatever ``start`` and ``steps`` are — so a run cut into chunks sees
    exactly the batches of the uncut run. ``start`` may be a traced integer (inside ``jit``).
    """
    n = _checks.positive_int("n", n)
    batch_size = _checks.batch_size("batch_size", batch_size, n)
    steps = _checks.positive_int("steps", steps)
    step_ids = jnp.asarray(start) + jnp.arange(steps)
    if replace:
        keys = jax.vmap(lambda t: jax.random.fold_in(key, t))(step_ids)
        return jax.vmap(lambda k: jax.random.randint(k, (batch_size,), 0, n))(keys)
    per_epoch = n // batch_size

    def permutation(epoch):
        # argsort of 32-bit random keys: one sort, about twice as fast on a CPU as
        # jax.random.permutation's two rounds; a tie (probability ~ n^2 / 2^33) only keeps
        # two indices in their original order.
        return jnp.argsort(jax.random.bits(jax.random.fold_in(key, epoch), (n,)))

    def step(perm, t):
        epoch, position = t // per_epoch, t % per_epoch
        # the window's first epoch is drawn once, before the scan, even when it starts on its first step
        fresh = (position == 0) & (t != step_ids[0])
        perm = jax.lax.cond(fresh, permutation, lambda _: perm, epoch)
        return perm, jax.lax.dynamic_slice_in_dim(perm, position * batch_size, batch_size)

    # one permutation per epoch the window touches, drawn when the window enters that epoch
    _, batches = jax.lax.scan(step, permutation(step_ids[0] // per_epoch), step_ids)
    return batches


# --------------------------------------------------------------------------------------
# batch sources of the training engine
# --------------------------------------------------------------------------------------

Sampler = Callable[[jax.Array, int], tuple[jax.Array, jax.Array]]


@jax.tree_util.register_pytree_node_class
class Minibatches:
    r"""Minibatches of the training rows of a :class:`Dataset`, for :func:`sgdlab.train.fit`.

    ``mode="epochs"`` walks through epochs of random permutations (sampling without replacement,
    the last ``n % B`` rows of each permutation skipped); ``mode="replace"`` draws every index
    uniformly and independently; ``weights`` (non-negative, one per row, normalised here) draws
    every index independently with probability :math:`p_i` (importance sampling; the loss is
    not reweighted). A pytree: the arrays are inputs of the compiled program, the mode is static.
    """

    def __init__(self, data: Dataset, *, replace: bool = False, weights: Any = None):
        self.data = data
        self.weights = weights
        self.mode = "weighted" if weights is not None else ("replace" if replace else "epochs")

    @classmethod
    def checked(cls, data: Dataset, *, replace: bool = False, weights: Any = None) -> "Minibatches":
        """Validate ``data`` and ``weights`` at the host edge and build the source."""
        data = _validate_dataset(data)
        if weights is not None:
            w = _checks.finite_array("weights", weights, ndim=1).astype(np.float64)
            if w.shape != (data.n_train,):
                raise ValueError(f"weights must have one entry per training row ({data.n_train}), got shape {w.shape}")
            if np.any(w < 0) or not w.sum() > 0:
                raise ValueError("weights must be non-negative with a positive sum")
            weights = jnp.asarray(w / w.sum(), jnp.float32)
        return cls(data, replace=bool(replace), weights=weights)

    def tree_flatten(self):
        return (self.data, self.weights), self.mode

    @classmethod
    def tree_unflatten(cls, mode, children):
        obj = cls.__new__(cls)
        obj.data, obj.weights = children
        obj.mode = mode
        return obj

    @property
    def eval_data(self) -> Dataset:
        return self.data

    def check_batch_size(self, name: str, batch_size: Any) -> int:
        if self.mode == "epochs":
            return _checks.batch_size(name, batch_size, self.data.n_train)
        return _checks.positive_int(name, batch_size)

    def plan(self, key: jax.Array, start: jax.Array, length: int, batch_size: int) -> jax.Array:
        """Row indices of steps ``start .. start + length - 1``, shape ``(length, batch_size)``."""
        n = self.data.x_train.shape[0]
        if self.mode != "weighted":
            return minibatch_indices(key, n, batch_size, length, replace=self.mode == "replace", start=start)
        cdf = jnp.cumsum(self.weights)
        steps = jnp.asarray(start) + jnp.arange(length)
        u = jax.vmap(lambda t: jax.random.uniform(jax.random.fold_in(key, t), (batch_size,)))(steps)
        return jnp.minimum(jnp.searchsorted(cdf, u * cdf[-1], side="right"), n - 1)

    def batch(self, planned: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        return self.data.x_train[planned], self.data.y_train[planned]

    def draw(self, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        """``batch_size`` rows drawn independently (uniformly, or by ``weights``): for noise measurements."""
        n = self.data.x_train.shape[0]
        if self.weights is None:
            idx = jax.random.randint(key, (batch_size,), 0, n)
        else:
            idx = jax.random.choice(key, n, (batch_size,), p=self.weights)
        return self.data.x_train[idx], self.data.y_train[idx]


@jax.tree_util.register_pytree_node_class
class FreshSamples:
    """A new sample every step: ``sample(key, batch_size) -> (x, y)`` with the key of the step.

    This is the online setting (the Ideal World of the deep bootstrap): no example is seen
    twice. ``sample`` must be a pure JAX function of its key, e.g. :func:`mnist1d_sample`.
    """

    def __init__(self, sample: Sampler):
        self.sample = sample

    def tree_flatten(self):
        return (), self.sample

    @classmethod
    def tree_unflatten(cls, sample, children):
        return cls(sample)

    eval_data = None

    def check_batch_size(self, name: str, batch_size: Any) -> int:
        return _checks.positive_int(name, batch_size)

    def plan(self, key: jax.Array, start: jax.Array, length: int, batch_size: int) -> jax.Array:
        steps = jnp.asarray(start) + jnp.arange(length)
        return jax.vmap(lambda t: jax.random.fold_in(key, t))(steps)

    def batch(self, planned: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        return self.sample(planned, batch_size)

    def draw(self, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        return self.sample(key, batch_size)


BatchSource = Minibatches | FreshSamples


def batch_source(data: Any, *, replace: bool = False, weights: Any = None) -> BatchSource:
    """The batch source for ``data``: a :class:`Dataset` (see :class:`Minibatches`), a sampler
    ``sample(key, batch_size) -> (x, y)`` (see :class:`FreshSamples`), or a source itself."""
    if isinstance(data, (Minibatches, FreshSamples)):
        if replace or weights is not None:
            raise ValueError("replace and weights belong to the Minibatches source already given as data")
        return data
    if isinstance(data, Dataset):
        return Minibatches.checked(data, replace=replace, weights=weights)
    if callable(data):
        if replace or weights is not None:
            raise ValueError("replace and weights apply to a Dataset, not to a sampler of fresh examples")
        return FreshSamples(data)
    raise ValueError(f"data must be an sgdlab.data.Dataset or a sampler sample(key, batch_size), got {type(data).__name__}")
