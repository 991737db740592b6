"""MNIST-1D samples per second: the on-device generator against the reference generator.

Times, in one run,

* ``sgdlab.mnist1d_jax.mnist1d_sample(key, batch)`` — compiled once (the warm-up call), then
  ``--repeats`` calls with fresh keys, each timed with ``time.perf_counter`` after
  ``jax.block_until_ready``; the rate is ``batch`` / the best time;
* ``mnist1d.data.make_dataset`` with its default arguments and ``num_samples=--reference``
  (what a user of the reference package calls), best of ``--repeats``; NumPy's and Python's
  global RNG states are restored afterwards;

and prints both rates and their ratio against the goal (at least 250 times the reference).
Usage::

    python code/benchmarks/mnist1d_generator.py [--batch 10000] [--reference 2000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time

import jax
import numpy as np

from sgdlab.mnist1d_jax import mnist1d_sample

GOAL_RATIO = 250.0


def best_seconds(fn, repeats: int) -> float:
    """Best wall-clock time of ``repeats`` calls of ``fn(i)``, outputs ready."""
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(i))
        best = min(best, time.perf_counter() - t0)
    return best


def reference_rate(num_samples: int, repeats: int) -> float:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        make_dataset(args)  # first call pays for imports and caches
        seconds = best_seconds(lambda i: make_dataset(args)["x"], repeats)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return num_samples / seconds


def generator_rate(batch: int, repeats: int) -> float:
    key = jax.random.key(0)
    jax.block_until_ready(mnist1d_sample(key, batch))  # compile
    return batch / best_seconds(lambda i: mnist1d_sample(jax.random.fold_in(key, i), batch), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=10_000, help="samples per generator call")
    parser.add_argument("--reference", type=int, default=2_000, help="samples per make_dataset call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 2 repeats")
    a = parser.parse_args()
    if a.quick:
        a.batch, a.reference, a.repeats = 1_000, 200, 2

    import mnist1d  # noqa: F401  (version line)
    from importlib.metadata import version

    print(f"devices: {jax.devices()}  jax {jax.__version__}  mnist1d {version('mnist1d')}  "
          f"python {platform.python_version()}  load average {os.getloadavg()[0]:.2f}")
    ref = reference_rate(a.reference, a.repeats)
    gen = generator_rate(a.batch, a.repeats)
    ratio = gen / ref
    print(f"reference make_dataset ({a.reference} samples/call): {ref:12,.0f} samples/s")
    print(f"mnist1d_sample (batch {a.batch}, jitted):      {gen:12,.0f} samples/s")
    print(f"ratio: {ratio:,.0f}x   goal >= {GOAL_RATIO:.0f}x: {'met' if ratio >= GOAL_RATIO else 'NOT MET'}")


if __name__ == "__main__":
    main()
