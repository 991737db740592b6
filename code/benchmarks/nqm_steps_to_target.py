"""Steps to a target risk in the noisy quadratic model: ``sgdlab.nqm.steps_to_target`` against stepping.

The problem of Zhang et al. (2019): d = 10^4 coordinates, h_i = 1/i, C = H, E theta_0^2 = 1,
target risk 0.01, 20 batch sizes 2^2 ... 2^21 x 100 learning rates (log grid 1e-5 ... 10^0.5),
one preconditioning power gamma. Prints

* the seconds of ``nqm.steps_to_target`` on the whole 2,000-point grid (steady state: the
  second call, with other rates of the same shape; the first call's compilation is printed too);
* the alternative a user would write: one ``lax.while_loop`` per grid point that steps the
  per-coordinate second-moment recursion s <- (1 - x)^2 s + n one step at a time until the
  risk falls to the target (vmapped over the rates of a batch size). Millions of steps at small
  batch make it far too slow for the whole grid, so it runs on a subset (the rates around the
  best one of a few batch sizes) and its time per step, measured there, is extrapolated to the
  total number of steps the whole grid needs (printed as an extrapolation);
* the agreement of the two on the subset.

Usage::

    python code/benchmarks/nqm_steps_to_target.py [--gamma 0.0] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from sgdlab import nqm


@jax.jit
def _stepping(h, c, lrs, bs, target, max_steps):
    """Naive reference: step s <- (1 - x)^2 s + n until the risk is at most target (vmapped over lrs)."""

    def one(lr):
        x, n = lr * h, lr**2 * c / bs

        def cond(carry):
            t, s = carry
            return (0.5 * jnp.sum(h * s) > target) & (t < max_steps)

        def body(carry):
            t, s = carry
            return t + 1, (1 - x) ** 2 * s + n

        t, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), jnp.ones_like(h)))
        return t

    return jax.vmap(one)(lrs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gamma", type=float, default=0.0)
    parser.add_argument("--quick", action="store_true", help="d = 1000, a smaller subset (a smoke run)")
    args = parser.parse_args()
    d = 1000 if args.quick else 10_000
    h = 1.0 / np.arange(1, d + 1)
    c = h.copy()
    target = 0.01
    batch_sizes = 2.0 ** np.arange(2, 22)
    rates = np.logspace(-5, 0.5, 100)
    print(f"NQM d={d}, h_i = 1/i, C = H, target {target}, gamma = {args.gamma}; "
          f"{batch_sizes.size} batch sizes x {rates.size} learning rates; "
          f"jax {jax.__version__} on {jax.devices()[0].platform}, load average {os.getloadavg()[0]:.1f}")

    t0 = time.perf_counter()
    nqm.steps_to_target(h, c, target, batch_sizes=batch_sizes, learning_rates=rates, gamma=args.gamma)
    first = time.perf_counter() - t0
    best_time = np.inf
    for rep in range(3):
        t0 = time.perf_counter()
        result = nqm.steps_to_target(h, c, target, batch_sizes=batch_sizes, learning_rates=rates * (1 + 1e-3 * rep),
                                     gamma=args.gamma)
        best_time = min(best_time, time.perf_counter() - t0)
    result = nqm.steps_to_target(h, c, target, batch_sizes=batch_sizes, learning_rates=rates, gamma=args.gamma)
    finite = np.isfinite(result.steps_per_rate)
    total_steps = result.steps_per_rate[finite].sum()
    print(f"nqm.steps_to_target: {best_time:.2f} s for the grid (best of 3; first call with compilation "
          f"{first:.2f} s); the grid's finite answers add up to {total_steps:.3g} steps")

    if args.gamma != 0.0:
        print("the stepping baseline is written for gamma = 0; skipped")
        return
    # the subset: 4 rates around the best one, at batch sizes from the plateau down to the
    # noise-dominated end (fewest steps first, so the subset stays affordable)
    picks = [21, 17, 13, 9] if not args.quick else [21, 13]
    stepped_steps, stepped_time, agree = 0.0, 0.0, True
    for b in picks:
        k = int(np.argmin(np.abs(batch_sizes - 2.0**b)))
        j = int(np.nanargmin(result.steps_per_rate[k]))
        sub = rates[max(0, j - 2): j + 2]
        cap = jnp.int32(int(2 * result.steps[k]) + 10)
        args_ = (jnp.asarray(h, jnp.float32), jnp.asarray(c, jnp.float32), jnp.asarray(sub, jnp.float32),
                 jnp.float32(batch_sizes[k]), jnp.float32(target), cap)
        _stepping(*args_).block_until_ready()  # compile
        t0 = time.perf_counter()
        got = np.asarray(_stepping(*args_).block_until_ready())
        stepped_time += time.perf_counter() - t0
        stepped_steps += float(got.max()) * sub.size  # a vmapped while loop runs until its slowest member
        want = result.steps_per_rate[k, max(0, j - 2): j + 2]
        ok = np.isfinite(want)
        agree &= bool(np.all(np.abs(got[ok] - want[ok]) <= np.maximum(2, 1e-3 * want[ok])))
        print(f"  stepping at B = 2^{b}: rates {sub.size}, {got.max():.0f} steps, "
              f"{stepped_time:.2f} s so far; steps agree with steps_to_target: {bool(np.all(np.abs(got[ok] - want[ok]) <= np.maximum(2, 1e-3 * want[ok])))}")
    per_step = stepped_time / stepped_steps
    extrapolated = per_step * total_steps
    print(f"stepping: {per_step * 1e6:.2f} us per step and rate at d={d} (measured on the subset); "
          f"EXTRAPOLATED to the whole grid's {total_steps:.3g} steps: {extrapolated:.3g} s "
          f"(a lower bound: rates that never reach the target would step to a cap)")
    print(f"ratio: stepping / steps_to_target = {extrapolated / best_time:.3g}x (extrapolated)")
    print(f"goals: steps_to_target <= 2 s: {'met' if best_time <= 2 else 'NOT MET'}; "
          f"agreement on the subset: {'met' if agree else 'NOT MET'}")


if __name__ == "__main__":
    main()
