"""Training throughput of sgdlab's engine against the loops a user would otherwise write.

Trains the reference MLP 40-100-100-10 on MNIST-1D at batch size 32 and prints, in one run,
steps per second and ratios for

* ``sgdlab.train.fit`` with ``optax.sgd`` (one evaluation at the end, steady state);
* a hand-written ``jax.lax.scan`` of the same step (``nnx.merge`` + ``jax.grad`` + Optax, the
  minibatch indices drawn inside the same ``jit``);
* the idiomatic Flax NNX loop: ``nnx.Optimizer`` + an ``@nnx.jit`` step called from Python,
  minibatches drawn by NumPy;
* PyTorch eager on one thread, same MLP and SGD (skipped when torch is missing:
  ``pip install torch==2.13.0`` takes the CPU wheel);
* a 64-run ``sgdlab.train.sweep`` (8 learning rates x 4 momenta x 2 seeds), per-run rate (run-steps
  per second), on one device and with ``devices=`` spread over all of them (on a CPU the script
  asks JAX for one device per core, ``jax_num_cpu_devices``, before JAX starts: one CPU device
  computes this small network's step on one core);
* SAM (``optax.contrib.sam`` in opaque mode: two gradients per step) in ``fit``;
* the first ``fit`` and a second ``fit`` with a *new* Optax object of the same kind (another
  learning rate): the seconds of both calls, compilation included, and whether the engine
  built a new program.

Every timing is the best of ``--repeats`` runs (two for the sweeps, which last seconds;
``time.perf_counter`` after ``jax.block_until_ready``). Usage::

    python code/benchmarks/train_throughput.py [--steps N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import numpy as np
import optax
from flax import nnx

from sgdlab import data as sgd_data
from sgdlab import train as sgd_train
from sgdlab.models import MLP

SIZES = (40, 100, 100, 10)
LR = 0.05
BATCH = 32
GOALS = {"scan": 1.0, "nnx": 10.0, "torch": 5.0, "sweep": 1.5, "sam": 0.45}


def best_of(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def make_fit(mnist, tx, steps):
    model = MLP(SIZES, rngs=nnx.Rngs(0))

    def call():
        result = sgd_train.fit(model, tx, mnist, steps=steps, batch_size=BATCH, eval_every=steps, progress=False)
        jax.block_until_ready(nnx.state(result.model))

    return call


def make_scan(mnist, steps):
    """What a user writes by hand: the same step in a jitted lax.scan, indices drawn inside."""
    model = MLP(SIZES, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.sgd(LR)
    n = mnist.n_train

    @jax.jit
    def run(params, opt_state, key, x, y):
        idx = sgd_data.minibatch_indices(key, n, BATCH, steps)

        def loss(p, xb, yb):
            return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p, rest)(xb), yb).mean()

        def step(carry, i):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p, x[i], y[i])
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        return jax.lax.scan(step, (params, opt_state), idx)

    state = tx.init(params)
    key = jax.random.key(0)
    jax.block_until_ready(run(params, state, key, mnist.x_train, mnist.y_train))
    return lambda: jax.block_until_ready(run(params, state, key, mnist.x_train, mnist.y_train))


def make_nnx_loop(mnist, steps):
    model = MLP(SIZES, rngs=nnx.Rngs(0))
    try:
        optimizer = nnx.Optimizer(model, optax.sgd(LR), wrt=nnx.Param)
    except TypeError:  # Flax before 0.11 has no wrt
        optimizer = nnx.Optimizer(model, optax.sgd(LR))

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        try:
            optimizer.update(model, grads)
        except TypeError:  # Flax before 0.11: update(grads)
            optimizer.update(grads)
        return loss

    x_train, y_train = np.asarray(mnist.x_train), np.asarray(mnist.y_train)
    n, per_epoch = len(x_train), len(x_train) // BATCH
    rng = np.random.default_rng(0)

    def run(k):
        loss, perm = None, None
        for t in range(k):
            if t % per_epoch == 0:
                perm = rng.permutation(n)
            idx = perm[(t % per_epoch) * BATCH: (t % per_epoch + 1) * BATCH]
            loss = train_step(model, optimizer, x_train[idx], y_train[idx])
        jax.block_until_ready((loss, nnx.state(model)))

    run(3)
    return lambda: run(steps)


def make_torch_loop(mnist, steps):
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(SIZES) - 2 else [])
    net = nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    x_train = torch.from_numpy(np.array(mnist.x_train))
    y_train = torch.from_numpy(np.array(mnist.y_train, dtype=np.int64))
    n, per_epoch = len(x_train), len(x_train) // BATCH
    rng = np.random.default_rng(0)

    def run(k):
        perm = None
        for t in range(k):
            if t % per_epoch == 0:
                perm = torch.from_numpy(rng.permutation(n))
            idx = perm[(t % per_epoch) * BATCH: (t % per_epoch + 1) * BATCH]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x_train[idx]), y_train[idx]).backward()
            opt.step()

    run(20)
    return (lambda: run(steps)), f"1 thread, torch {torch.__version__}"


def make_sweep(mnist, steps, n_lrs, n_momenta, n_seeds, devices=None):
    grid = {"learning_rate": list(np.geomspace(0.01, 0.1, n_lrs)), "momentum": list(np.linspace(0.0, 0.9, n_momenta))}

    def call():
        sgd_train.sweep(lambda rngs: MLP(SIZES, rngs=rngs), optax.sgd, mnist, steps=steps, batch_sizes=BATCH,
                        grid=grid, seeds=range(n_seeds), eval_every=steps, devices=devices, progress=False)

    return call


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="steps of each fit / sweep call (default 5000; quick 200)")
    parser.add_argument("--baseline-steps", type=int, default=None, help="steps of the NNX and PyTorch loops (default 1000)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats, best kept (default 5; quick 1)")
    parser.add_argument("--quick", action="store_true", help="small numbers for a smoke run (4-run sweep)")
    args = parser.parse_args(argv)
    if "JAX_NUM_CPU_DEVICES" not in os.environ:   # before JAX starts; only the CPU backend reads it
        jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
    quick = args.quick
    steps = args.steps or (200 if quick else 5000)
    base_steps = args.baseline_steps or (50 if quick else 1000)
    repeats = args.repeats or (1 if quick else 5)
    grid_shape = (2, 1, 2) if quick else (8, 4, 2)
    n_runs = int(np.prod(grid_shape))

    import flax

    print("# sgdlab training throughput: MLP 40-100-100-10, MNIST-1D, SGD, batch 32")
    print(f"# jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}, python {platform.python_version()}")
    load = tuple(round(v, 2) for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"# backend {jax.default_backend()}, {os.cpu_count()} CPUs, load average {load}; best of {repeats}"
          f"{'; QUICK (smoke) run' if quick else ''}")
    sys.stdout.flush()
    mnist = sgd_data.mnist1d()
    rows = []

    # compile once: the first fit, then a new optax object of the same kind
    built = sgd_train.programs_built()
    t0 = time.perf_counter()
    make_fit(mnist, optax.sgd(0.1), steps)()
    first = time.perf_counter() - t0
    after_first = sgd_train.programs_built()
    t0 = time.perf_counter()
    make_fit(mnist, optax.sgd(LR), steps)()
    second = time.perf_counter() - t0
    new_programs = sgd_train.programs_built() - after_first

    fit_t = best_of(make_fit(mnist, optax.sgd(LR), steps), repeats)
    rows.append(("fit (optax.sgd, 1 evaluation)", steps, fit_t, ""))
    rows.append(("hand-written lax.scan of the same step", steps, best_of(make_scan(mnist, steps), repeats), "scan"))
    rows.append(("Flax NNX loop (nnx.jit step, NumPy batches)", base_steps,
                 best_of(make_nnx_loop(mnist, base_steps), repeats), "nnx"))
    try:
        import torch  # noqa: F401
    except ImportError:
        torch_note = "skipped (torch not installed)"
    else:
        loop, torch_note = make_torch_loop(mnist, base_steps)
        rows.append((f"PyTorch eager ({torch_note})", base_steps, best_of(loop, repeats), "torch"))
    sam = optax.contrib.sam(optax.sgd(LR), optax.chain(optax.contrib.normalize(), optax.sgd(0.05)), opaque_mode=True)
    sam_fit = make_fit(mnist, sam, steps)
    sam_fit()
    rows.append(("fit with SAM (opaque, two gradients per step)", steps, best_of(sam_fit, repeats), "sam"))
    sweep = make_sweep(mnist, steps, *grid_shape)
    sweep()
    sweep_t = best_of(sweep, min(repeats, 2))
    runs = f"{' x '.join(map(str, grid_shape))} = {n_runs} runs"
    rows.append((f"sweep per run ({runs}, 1 device)", n_runs * steps, sweep_t, "sweep"))
    n_devices = len(jax.devices())
    if n_devices > 1:
        spread = make_sweep(mnist, steps, *grid_shape, devices=n_devices)
        spread()
        rows.append((f"sweep per run ({runs}, {n_devices} devices)", n_runs * steps, best_of(spread, min(repeats, 2)),
                     "sweep_devices"))

    fit_rate = steps / fit_t
    print()
    print(f"{'what':<56} {'steps':>7} {'best s':>8} {'steps/s':>9} {'x fit':>7}")
    print("-" * 92)
    for name, n, t, _ in rows:
        print(f"{name:<56} {n:>7d} {t:>8.4f} {n / t:>9.0f} {n / t / fit_rate:>7.3f}")
    if "torch" not in [r[3] for r in rows]:
        print(f"{'PyTorch eager':<56} {torch_note}")
    print()
    print(f"compile once: first fit {first:.2f} s (programs built: {after_first - built}), a second fit with a new "
          f"optax.sgd object {second:.2f} s (new programs: {new_programs})")

    print()
    print("goals (wall clock):")
    rate = {r[3]: r[1] / r[2] for r in rows if r[3]}
    checks = [
        ("fit >= 1x the hand-written lax.scan", fit_rate / rate["scan"], GOALS["scan"]),
        ("fit >= 10x the NNX loop", fit_rate / rate["nnx"], GOALS["nnx"]),
        ("fit >= 5x PyTorch eager (1 thread)", fit_rate / rate["torch"] if "torch" in rate else None, GOALS["torch"]),
        (f"{n_runs}-run sweep per-run rate >= 1.5x fit", rate["sweep"] / fit_rate, GOALS["sweep"]),
        (f"  the same over {n_devices} devices", rate["sweep_devices"] / fit_rate if "sweep_devices" in rate else None,
         GOALS["sweep"]),
        ("SAM in fit >= 0.45x SGD in fit", rate["sam"] / fit_rate, GOALS["sam"]),
    ]
    for label, value, goal in checks:
        if value is None:
            print(f"  {label:<44} {'-':>8}  skipped")
        else:
            print(f"  {label:<44} {value:>7.2f}x  {'met' if value >= goal else 'NOT MET'}")
    print(f"  {'a second fit builds no new program':<44} {new_programs:>8d}  {'met' if new_programs == 0 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
