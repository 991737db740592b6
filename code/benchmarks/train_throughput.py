"""Training throughput of sgdlab against the loops a user would otherwise write.

Trains the reference MLP 40-100-100-10 on MNIST-1D with plain SGD (learning rate 0.05) at
batch size 32 and prints, in one run, steps per second for

* ``sgdlab.train.fit`` — steady state (a second call with the same Optax object, so the
  compiled chunk is reused) with one evaluation at the end, and with the default cadence
  (about 20 evaluations); the cold first call, compilation included, is reported too;
* the idiomatic Flax NNX loop: ``nnx.Optimizer`` + an ``@nnx.jit`` train step called from a
  Python loop, minibatches drawn by NumPy (the sampling is part of the timed loop);
* PyTorch eager on one thread, same MLP, SGD and batch size (skipped if torch is missing);
* the per-run rate of a 32-run ``sgdlab.train.sweep`` (8 learning rates x 4 seeds);
* the cost of the progress bar (``progress=True`` against ``progress=False``).

Every timing is the best of ``--repeats`` runs, measured with ``time.perf_counter`` after
``jax.block_until_ready``. Usage::

    python code/benchmarks/train_throughput.py [--steps N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import NamedTuple

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

# goals: (label, row the ratio is taken against, minimum ratio fit / row)
GOAL_NNX = 20.0
GOAL_TORCH = 4.0
GOAL_SWEEP = 1.0
GOAL_PROGRESS_PCT = 10.0


class Timing(NamedTuple):
    """Best wall-clock seconds and, separately, best process CPU seconds of some repeats."""

    wall: float
    cpu: float

    def __or__(self, other: "Timing") -> "Timing":
        return Timing(min(self.wall, other.wall), min(self.cpu, other.cpu))


def best_of(fn, repeats: int) -> Timing:
    """Best of ``repeats`` calls of ``fn`` (which must block on its results).

    The wall clock (``time.perf_counter``) is the measure. The process CPU time
    (``time.process_time``, all threads) is kept as a cross-check for loaded machines: other
    processes do not inflate it, but it counts every busy thread, so it over-states a
    multi-threaded JAX computation and under-states nothing.
    """
    best = Timing(np.inf, np.inf)
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = best | Timing(time.perf_counter() - t0, time.process_time() - c0)
    return best


# --------------------------------------------------------------------------------------
# sgdlab.train.fit
# --------------------------------------------------------------------------------------

def make_fit(data, tx, steps, eval_every, progress=False):
    model = MLP(SIZES, rngs=nnx.Rngs(0))

    def call():
        result = sgd_train.fit(model, tx, data, steps=steps, batch_size=BATCH, eval_every=eval_every, progress=progress)
        jax.block_until_ready(nnx.state(result.model))
        return result

    return call


def bar_cost(total, updates, repeats=20):
    """Seconds that fit's progress bar itself costs (open, ``updates`` updates, close): best of ``repeats``."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        bar = sgd_train._Progress(total, True, "fit")
        for k in range(updates):
            bar.update((k + 1) * total // updates, total // updates, 0.5)
        bar.close()
        best = min(best, time.perf_counter() - t0)
    return best


# --------------------------------------------------------------------------------------
# the idiomatic Flax NNX loop
# --------------------------------------------------------------------------------------

def make_nnx_loop(data, steps):
    model = MLP(SIZES, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(LR), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    x_train, y_train = np.asarray(data.x_train), np.asarray(data.y_train)
    n = len(x_train)
    per_epoch = n // BATCH
    rng = np.random.default_rng(0)

    def run(k):
        loss = None
        perm = None
        for t in range(k):
            position = t % per_epoch
            if position == 0:
                perm = rng.permutation(n)
            idx = perm[position * BATCH : (position + 1) * BATCH]
            loss = train_step(model, optimizer, x_train[idx], y_train[idx])
        jax.block_until_ready((loss, nnx.state(model)))
        return loss

    run(3)  # compile
    return lambda: run(steps)


# --------------------------------------------------------------------------------------
# PyTorch eager, one thread
# --------------------------------------------------------------------------------------

def make_torch_loop(data, steps):
    import torch
    from torch import nn

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before any inter-op work
        pass
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    net = nn.Sequential(*layers).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    x_train = torch.from_numpy(np.array(data.x_train)).to(device)
    y_train = torch.from_numpy(np.array(data.y_train, dtype=np.int64)).to(device)
    n = len(x_train)
    per_epoch = n // BATCH
    rng = np.random.default_rng(0)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def run(k):
        perm = None
        for t in range(k):
            position = t % per_epoch
            if position == 0:
                perm = torch.from_numpy(rng.permutation(n)).to(device)
            idx = perm[position * BATCH : (position + 1) * BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
        sync()

    run(20)  # warm up the allocator and kernels
    return (lambda: run(steps)), f"{device}, {torch.get_num_threads()} thread, torch {torch.__version__}"


# --------------------------------------------------------------------------------------
# sgdlab.train.sweep
# --------------------------------------------------------------------------------------

def make_sweep(data, steps, n_lrs, n_seeds):
    def model_fn(rngs):
        return MLP(SIZES, rngs=rngs)

    def optimizer_fn(lr):
        return optax.sgd(lr)

    lrs = [float(v) for v in np.geomspace(0.01, 0.2, n_lrs)]
    seeds = list(range(n_seeds))

    def call():
        result = sgd_train.sweep(model_fn, optimizer_fn, data, steps=steps, batch_sizes=BATCH,
                                 learning_rates=lrs, seeds=seeds, eval_every=steps, progress=False)
        return result

    return call


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="SGD steps of each fit / sweep call (default 5000; quick 200)")
    parser.add_argument("--baseline-steps", type=int, default=None, help="steps of the NNX and PyTorch loops (default 1000; quick 50)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats, best one kept (default 3; quick 1)")
    parser.add_argument("--quick", action="store_true", help="small numbers for a smoke run (4-run sweep)")
    args = parser.parse_args(argv)
    quick = args.quick
    steps = args.steps or (200 if quick else 5000)
    base_steps = args.baseline_steps or (50 if quick else 1000)
    repeats = args.repeats or (1 if quick else 3)
    n_lrs, n_seeds = (2, 2) if quick else (8, 4)
    n_runs = n_lrs * n_seeds

    import flax

    print("# sgdlab training throughput: MLP 40-100-100-10, MNIST-1D, SGD lr 0.05, batch 32")
    print(f"# jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}, numpy {np.__version__}, "
          f"python {platform.python_version()}")
    print(f"# backend {jax.default_backend()}, devices {jax.devices()}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"# host: {os.cpu_count()} CPUs, load average {tuple(round(v, 2) for v in load)}; "
          f"best of {repeats} repeat(s){'; QUICK (smoke) run' if quick else ''}")
    sys.stdout.flush()

    data = sgd_data.mnist1d()
    rows = []  # (name, steps, Timing, note)

    # 1. fit, one evaluation at the end; cold first call then steady state with the same tx
    tx = optax.sgd(LR)
    fit_once = make_fit(data, tx, steps, eval_every=steps)
    t0 = time.perf_counter()
    fit_once()
    cold = time.perf_counter() - t0
    fit_t = best_of(fit_once, repeats)
    rows.append(("fit (1 evaluation)", steps, fit_t, f"steady state, same optax object; best of {3 * repeats} calls"))

    # fit with the default evaluation cadence (about 20 evaluations)
    fit_default = make_fit(data, tx, steps, eval_every=None)
    t0 = time.perf_counter()
    fit_default()
    cold_default = time.perf_counter() - t0
    n_evals = len(sgd_train._chunk_lengths(steps, -(-steps // 20)))
    fit_default_t = best_of(fit_default, repeats)
    rows.append((f"fit (default cadence, {n_evals} evaluations)", steps, fit_default_t, f"best of {3 * repeats} calls"))

    # 5. progress bar overhead, steady state, both cadences; on and off interleaved
    fit_bar = make_fit(data, tx, steps, eval_every=steps, progress=True)
    fit_bar_default = make_fit(data, tx, steps, eval_every=None, progress=True)
    sys.stdout.flush()
    fit_bar()
    fit_bar_default()
    inf = Timing(np.inf, np.inf)
    bar_on, bar_off, bar_on_d, bar_off_d = inf, inf, inf, inf
    for _ in range(2 * repeats):  # a difference of two timings: twice the repeats, interleaved
        bar_off = bar_off | best_of(fit_once, 1)
        bar_on = bar_on | best_of(fit_bar, 1)
        bar_off_d = bar_off_d | best_of(fit_default, 1)
        bar_on_d = bar_on_d | best_of(fit_bar_default, 1)
    # the progress=False calls of the A/B are the same calls as the rows above: keep the best of all
    fit_t, fit_default_t = fit_t | bar_off, fit_default_t | bar_off_d
    rows[0] = rows[0][:2] + (fit_t,) + rows[0][3:]
    rows[1] = rows[1][:2] + (fit_default_t,) + rows[1][3:]
    rows.append(("fit progress=True (1 evaluation)", steps, bar_on, ""))
    rows.append(("fit progress=True (default cadence)", steps, bar_on_d, ""))
    overhead = 100 * (bar_on.wall / bar_off.wall - 1)
    overhead_d = 100 * (bar_on_d.wall / bar_off_d.wall - 1)
    bar_alone = bar_cost(steps, 1), bar_cost(steps, n_evals)

    # 2. the idiomatic NNX loop
    nnx_t = best_of(make_nnx_loop(data, base_steps), repeats)
    rows.append(("Flax NNX loop (nnx.jit step, NumPy batches)", base_steps, nnx_t, ""))

    # 3. PyTorch eager
    torch_t = None
    try:
        import torch  # noqa: F401
    except ImportError:
        torch_note = "skipped (torch not installed)"
    else:
        torch_loop, torch_note = make_torch_loop(data, base_steps)
        torch_t = best_of(torch_loop, repeats)
        rows.append(("PyTorch eager", base_steps, torch_t, torch_note))

    # 4. sweep: 32 runs (quick: 4), eval at the end, steady state with the same fn objects
    sweep_call = make_sweep(data, steps, n_lrs, n_seeds)
    t0 = time.perf_counter()
    sweep_call()
    cold_sweep = time.perf_counter() - t0
    sweep_t = best_of(sweep_call, repeats)
    rows.append((f"sweep per run ({n_lrs} lr x {n_seeds} seeds = {n_runs} runs)", n_runs * steps, sweep_t,
                 f"{n_runs} x {steps} steps in {sweep_t.wall:.3g} s"))

    # ---- table ------------------------------------------------------------------------
    fit_rate = steps / fit_t.wall
    fit_cpu_rate = steps / fit_t.cpu
    print()
    print(f"{'what':<46} {'steps':>7} {'best s':>8} {'steps/s':>8} {'x fit':>7} | {'cpu s':>7} {'x fit':>7}  note")
    print("-" * 120)
    for name, n, t, note in rows:
        print(f"{name:<46} {n:>7d} {t.wall:>8.4f} {n / t.wall:>8.0f} {n / t.wall / fit_rate:>7.3f} | "
              f"{t.cpu:>7.3f} {n / t.cpu / fit_cpu_rate:>7.3f}  {note}")
    if torch_t is None:
        print(f"{'PyTorch eager':<46} {'':>7} {'':>8} {'':>8} {'':>7} | {'':>7} {'':>7}  {torch_note}")
    print("(cpu s: process CPU time of all threads, best of the same repeats; a cross-check when the host is loaded)")
    print()
    print(f"cold first fit call, compilation included: {cold:.2f} s "
          f"({steps / cold:.0f} steps/s); default cadence: {cold_default:.2f} s; "
          f"first sweep call: {cold_sweep:.2f} s")
    print(f"progress-bar overhead (A/B, interleaved): {overhead:+.1f} % with 1 evaluation "
          f"({bar_on.wall:.4f} s on vs {bar_off.wall:.4f} s off), {overhead_d:+.1f} % with the default cadence "
          f"({bar_on_d.wall:.4f} s vs {bar_off_d.wall:.4f} s)")
    print(f"  cross-check, the bar alone (open, 1 / {n_evals} updates, close): "
          f"{bar_alone[0] * 1e3:.3f} / {bar_alone[1] * 1e3:.3f} ms per fit call "
          f"= {100 * bar_alone[0] / fit_t.wall:.3f} % / {100 * bar_alone[1] / fit_default_t.wall:.3f} %")

    # ---- goals ------------------------------------------------------------------------
    def verdict(ok):
        return "met" if ok else "NOT MET"

    def ratio(n_a, t_a, n_b, t_b):
        return (n_a / t_a.wall) / (n_b / t_b.wall), (n_a / t_a.cpu) / (n_b / t_b.cpu)

    print()
    print("goals (wall clock; by CPU time in brackets):")
    line = "  {:<40} {:>9} {:>11}  {}"
    r = ratio(steps, fit_t, base_steps, nnx_t)
    print(line.format(f"fit >= {GOAL_NNX:g}x the NNX loop", f"{r[0]:.2f}x", f"[{r[1]:.2f}x]", verdict(r[0] >= GOAL_NNX)))
    if torch_t is None:
        print(line.format(f"fit >= {GOAL_TORCH:g}x PyTorch eager", "-", "", "skipped (torch not installed)"))
    else:
        r = ratio(steps, fit_t, base_steps, torch_t)
        print(line.format(f"fit >= {GOAL_TORCH:g}x PyTorch eager", f"{r[0]:.2f}x", f"[{r[1]:.2f}x]",
                          verdict(r[0] >= GOAL_TORCH)))
    r = ratio(n_runs * steps, sweep_t, steps, fit_t)
    print(line.format("sweep per-run rate >= fit", f"{r[0]:.2f}x", f"[{r[1]:.2f}x]", verdict(r[0] >= GOAL_SWEEP)))
    worst = max(overhead, overhead_d)
    print(line.format(f"progress bar < {GOAL_PROGRESS_PCT:g} % (worse cadence)", f"{worst:+.1f} %",
                      f"[alone {100 * max(bar_alone[0] / fit_t.wall, bar_alone[1] / fit_default_t.wall):.2f} %]",
                      verdict(worst < GOAL_PROGRESS_PCT)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
