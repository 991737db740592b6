r"""MNIST-1D drawn on the device: a fresh, jit-able sample from the distribution of the reference.

The reference generator, ``mnist1d.data.make_dataset`` (Greydanus, *Scaling down deep
learning*, 2020), transforms one sample at a time in NumPy and SciPy and makes about 4,000
samples a second on one CPU core: far too slow for an "Ideal World" that draws a fresh batch at
every SGD step (Nakkiran, Neyshabur & Sedghi, *The deep bootstrap*, 2021). No library draws
MNIST-1D in JAX, so :func:`mnist1d_sample` writes the reference's ``transform`` out as batched
array operations. With the reference's default arguments, a sample of class :math:`y` is, in
the reference's order,

1. the template :math:`u_y \in \mathbb{R}^{12}` plus :math:`10^{-8}`, followed by
   :math:`p = 36 + \lfloor 25\,U \rfloor` zeros (:math:`p \in \{36, \dots, 60\}`), linearly
   interpolated to length 72;
2. scaled by :math:`1 + 0.4\,(U - \tfrac12)` and rolled right by :math:`k \in \{0, \dots, 47\}`
   (``concat(x[-k:], x[:-k])``; the signal never wraps);
3. where the signal is exactly 0 (the padding only, thanks to the :math:`10^{-8}`), replaced by
   correlated noise :math:`G\,(0.25\,z)` with :math:`z \sim N(0, I_{72})` and :math:`G` SciPy's
   ``gaussian_filter(·, sigma=2)`` (mode ``'reflect'``, radius 8);
4. plus iid noise :math:`0.02\,z'`, minus the shear :math:`c\,\operatorname{linspace}(-\tfrac12,
   \tfrac12, 72)` with :math:`c = 0.75\,(U - \tfrac12)`;
5. linearly interpolated to length 40 and standardised,
   :math:`x \mapsto (x - \mu)/\sigma`, with the mean and standard deviation of the reference's
   default data set (5,000 samples, seed 42): fixed constants, never statistics of the batch.

Everything that does not depend on the draws is computed once, on the host, by the reference's
own code: the 10 × 25 padded-and-dilated templates by ``mnist1d.transform.interpolate`` (so the
exact zeros of step 3 fall where the reference's fall), :math:`G` by applying
``scipy.ndimage.gaussian_filter`` to the unit vectors, and the interpolation to length 40 as the
matrix :math:`M \in \mathbb{R}^{40\times 72}` that ``interpolate`` makes of the identity.
Drawing the random numbers is most of the cost, so the iid noise, which reaches the output only
as :math:`0.02\,M z'`, is drawn in 40 dimensions as :math:`0.02\,L w` with
:math:`w \sim N(0, I_{40})` and :math:`L L^\top = M M^\top` (Cholesky): the same Gaussian
with 40 normals instead of 72. Per sample, the device then does one gather, three small matrix
products and a few element-wise operations.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

# Mean and standard deviation of the reference's default data set before it standardises it:
# every value of the 5,000 raw samples of ``make_dataset()`` (seed 42), recorded by wrapping
# ``mnist1d.data.transform`` (tests/test_mnist1d_sample.py recomputes them).
RAW_MEAN = -0.0055075064312771795
RAW_STD = 0.15467803420593054

# the ``eps`` default of ``mnist1d.transform.transform``
_EPS = 1e-8


class _Tables(NamedTuple):
    """Host-computed constants of the generator (float32, except the masks)."""

    dilated: np.ndarray  # (10, n_pad, 72): template + eps, p zeros, interpolated to 72
    filter_t: np.ndarray  # (72, 72): z @ filter_t == gaussian_filter(z, 2) for a row z
    subsample_t: np.ndarray  # (72, 40): x @ subsample_t == interpolate(x, 40)
    iid_chol_t: np.ndarray  # (40, 40): L^T with L L^T = M M^T, M = subsample_t^T
    ramp: np.ndarray  # (72,): linspace(-1/2, 1/2, 72), the shear direction
    pad_low: int
    scale_coeff: float
    max_translation: int
    corr_noise_scale: float
    iid_noise_scale: float
    shear_scale: float


@functools.lru_cache(maxsize=None)
def _tables() -> _Tables:
    """Build the constants from the reference package's templates, defaults and interpolation."""
    from mnist1d.data import get_dataset_args, get_templates
    from mnist1d.transform import interpolate
    from scipy.ndimage import gaussian_filter

    args = get_dataset_args()
    templates = get_templates()["x"]
    length = args.template_len + args.padding[-1]
    paddings = range(args.padding[0], args.padding[1] + 1)
    dilated = np.stack([
        np.stack([interpolate(np.concatenate([u + _EPS, np.zeros(p)]), length) for p in paddings])
        for u in templates
    ])
    eye = np.eye(length)
    # row j of the stack is the filtered unit vector e_j, so a row vector z maps to z @ stack
    filter_t = np.stack([gaussian_filter(e, 2) for e in eye])
    subsample = interpolate(eye, args.final_seq_length)
    return _Tables(
        # float32 keeps the zero pattern: the smallest non-zero entry is about 3e-10
        dilated=dilated.astype(np.float32),
        filter_t=filter_t.astype(np.float32),
        subsample_t=subsample.T.astype(np.float32),
        iid_chol_t=np.linalg.cholesky(subsample @ subsample.T).T.astype(np.float32),
        ramp=np.linspace(-0.5, 0.5, length).astype(np.float32),
        pad_low=args.padding[0],
        scale_coeff=args.scale_coeff,
        max_translation=args.max_translation,
        corr_noise_scale=args.corr_noise_scale,
        iid_noise_scale=args.iid_noise_scale,
        shear_scale=args.shear_scale,
    )


class Draws(NamedTuple):
    """The random quantities of ``n`` samples, one row each, in the reference's notation."""

    y: jax.Array  # (n,) int32 class
    p: jax.Array  # (n,) int32 number of padding zeros
    scale: jax.Array  # (n,) scale factor 1 + scale_coeff (U - 1/2)
    k: jax.Array  # (n,) int32 roll to the right
    corr: jax.Array  # (n, 72) standard normal, before scaling and filtering
    iid: jax.Array  # (n, 40) standard normal w, before scaling and the factor L
    shear: jax.Array  # (n,) shear coefficient shear_scale (U - 1/2)


def _draw(key: jax.Array, n: int) -> Draws:
    r"""All random numbers of ``n`` samples from two calls of ``jax.random``.

    Each call compiles to its own random-bit generator, which costs more compilation time than
    the rest of the sampler together, so the five per-sample scalars come from one uniform
    draw (integers as :math:`\lfloor mU \rfloor`) and both noise vectors from one normal draw.
    """
    t = _tables()
    n_class, n_pad, length = t.dilated.shape
    k_u, k_z = jax.random.split(key)
    u = jax.random.uniform(k_u, (n, 5))
    z = jax.random.normal(k_z, (n, length + t.subsample_t.shape[1]))

    def integer(column, m):  # uniform on {0, ..., m - 1}
        return jnp.minimum((u[:, column] * m).astype(jnp.int32), m - 1)

    return Draws(
        y=integer(0, n_class),
        p=t.pad_low + integer(1, n_pad),
        scale=1 + t.scale_coeff * (u[:, 2] - 0.5),
        k=integer(3, t.max_translation),
        corr=z[:, :length],
        iid=z[:, length:],
        shear=t.shear_scale * (u[:, 4] - 0.5),
    )


def _transform(d: Draws) -> jax.Array:
    """The reference's ``transform`` applied to a batch of draws; raw (unstandardised) x, (n, 40)."""
    t = _tables()
    length = t.dilated.shape[2]
    hi = jax.lax.Precision.HIGHEST  # no TF32 shortcut for these small float32 products on GPUs
    # roll right by k: position j holds the dilated template at (j - k) mod length
    src = (jnp.arange(length)[None, :] - d.k[:, None]) % length
    row = (d.y[:, None], d.p[:, None] - t.pad_low, src)
    x = jnp.asarray(t.dilated)[row] * d.scale[:, None]
    corr = jnp.dot(t.corr_noise_scale * d.corr, t.filter_t, precision=hi)
    x = jnp.where(x != 0, x, corr)
    x = jnp.dot(x - d.shear[:, None] * t.ramp, t.subsample_t, precision=hi)
    return x + jnp.dot(t.iid_noise_scale * d.iid, t.iid_chol_t, precision=hi)


@functools.partial(jax.jit, static_argnums=1)
def _sample(key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    d = _draw(key, n)
    x = (_transform(d) - RAW_MEAN) / RAW_STD
    return x.astype(jnp.float32), d.y


def mnist1d_sample(key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    r"""Draw ``n`` fresh MNIST-1D samples on the device: ``x`` float32 ``(n, 40)``, ``y`` int32 ``(n,)``.

    The distribution is that of ``mnist1d.data.make_dataset()`` with its default arguments
    (Greydanus 2020; the steps are in the module's docstring), standardised with the reference
    default data set's fixed constants :math:`\mu` = ``RAW_MEAN`` and :math:`\sigma` =
    ``RAW_STD``, with labels uniform over the ten classes (the reference makes exactly
    ``n/10`` of each). Same key, same samples. The function is jit-able with ``n`` static,
    e.g. as the sampler of :func:`sgdlab.train.fit`, whose signature ``sample(key, batch_size)``
    it has.
    """
    n = _checks.positive_int("n", n)
    return _sample(key, n)
