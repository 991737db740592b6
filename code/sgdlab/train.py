"""The training engine: many SGD steps compiled into one ``jax.lax.scan``.

:func:`fit` trains one Flax NNX model with any Optax transformation; :func:`sweep` trains a
grid of runs (learning rates x seeds, for each batch size) as one ``jax.vmap``-ed program.

Both cut training into chunks of ``eval_every`` steps. A chunk is one compiled call: it draws
the minibatch indices (:func:`sgdlab.data.minibatch_indices`), scans the SGD steps and
evaluates train and test metrics at its end, all on the device. Between chunks the host only
checks for divergence and moves the progress bar, so there is one host round-trip per chunk,
not per step. A run whose loss turns non-finite is stopped (``fit``) or frozen (``sweep``) and
reported as diverged; its metrics after divergence are NaN and never silently plotted.

The model is split with ``nnx.split`` into a graph definition and a state pytree at the
edges; inside, every step is a pure function of ``(params, opt_state, batch)``.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from . import _checks, config
from .data import Dataset, _validate_dataset, minibatch_indices

LOSSES = ("cross_entropy", "mse")


class DivergenceWarning(RuntimeWarning):
    """Issued when a training run's loss becomes NaN or infinite."""


def per_example_loss(outputs: jax.Array, targets: jax.Array, loss: str) -> jax.Array:
    r"""Loss of each example: softmax cross-entropy with integer labels, or :math:`\tfrac12\|f(x)-y\|^2`."""
    if loss == "cross_entropy":
        return optax.softmax_cross_entropy_with_integer_labels(outputs, targets)
    return 0.5 * jnp.sum((outputs - targets).reshape(outputs.shape[0], -1) ** 2, axis=-1)


def _metrics(outputs: jax.Array, targets: jax.Array, loss: str) -> dict[str, jax.Array]:
    values = {"loss": per_example_loss(outputs, targets, loss).mean()}
    if loss == "cross_entropy":
        values["acc"] = (jnp.argmax(outputs, -1) == targets).mean()
    return values


@dataclass(frozen=True)
class History:
    """Metrics recorded during training.

    ``step[k]`` is the number of SGD steps taken when ``metrics[name][..., k]`` was measured
    (``step[0] == 0`` is the initial model). ``metrics`` holds ``train_loss``, ``test_loss`` and,
    for classification, ``train_acc`` and ``test_acc``; ``batch_loss`` holds the loss of the
    minibatch at every step. In a sweep every array has leading axes (batch, lr, seed).
    """

    step: np.ndarray
    metrics: dict[str, np.ndarray]
    batch_loss: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.metrics:
            raise KeyError(f"no metric {name!r}; recorded: {sorted(self.metrics)}")
        return self.metrics[name]

    def final(self, name: str) -> np.ndarray:
        """The metric at the last evaluation."""
        return self[name][..., -1]


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model, its history, whether it diverged, and the
    optimizer's final state (e.g. Adam's moment estimates), matching ``result.model``."""

    model: nnx.Module
    history: History
    diverged: bool
    diverged_at: int | None
    seconds: float
    opt_state: Any = field(repr=False, default=None)

    @property
    def steps_per_second(self) -> float:
        steps = int(self.history.step[-1])
        return steps / self.seconds if self.seconds > 0 else math.inf


@dataclass
class SweepResult:
    """What :func:`sweep` returns. Arrays are indexed ``[batch_size, learning_rate, seed, ...]``."""

    batch_sizes: np.ndarray
    learning_rates: np.ndarray
    seeds: np.ndarray
    history: History
    diverged: np.ndarray
    diverged_at: np.ndarray
    seconds: float
    params: Any = field(repr=False, default=None)

    def best_learning_rate(self, metric: str = "test_loss", *, maximize: bool = False) -> np.ndarray:
        """Per batch size, the learning rate with the best seed-averaged final ``metric``.

        Diverged runs never win. Returns NaN for a batch size where every rate diverged.
        """
        final = self.history.final(metric).mean(axis=-1)  # (batch, lr)
        final = np.where(self.diverged.any(axis=-1), np.nan, final)
        best = np.full(len(self.batch_sizes), np.nan)
        for b, row in enumerate(final):
            if np.all(np.isnan(row)):
                continue
            k = np.nanargmax(row) if maximize else np.nanargmin(row)
            best[b] = self.learning_rates[k]
        return best


# --------------------------------------------------------------------------------------
# the compiled chunk: `length` SGD steps and one evaluation
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _chunk_fn(graphdef, make_tx, loss, batch_size, replace, length, n_train, vectorized, evaluate=True):
    """Build (and cache) the jitted function that runs one chunk of training.

    The chunk scans ``length`` steps and, with ``evaluate``, measures the train and test
    metrics at its end (:mod:`sgdlab.timing` switches that off to time the steps alone).
    ``make_tx(hparam)`` returns the Optax transformation; for :func:`fit` it ignores its
    argument, for :func:`sweep` it receives the run's learning rate. With ``vectorized`` the
    chunk is ``vmap``-ed over runs (params, optimizer state, data-order key, hparam).
    """

    def loss_of(params, rest, x, y):
        model = nnx.merge(graphdef, params, rest)
        return per_example_loss(model(x), y, loss).mean()

    grad_fn = jax.value_and_grad(loss_of)

    def one_run(params, opt_state, rest, key, hparam, start, data):
        tx = make_tx(hparam)
        idx = minibatch_indices(key, n_train, batch_size, length, replace=replace, start=start)

        def step(carry, batch_idx):
            p, s = carry
            value, grads = grad_fn(p, rest, data.x_train[batch_idx], data.y_train[batch_idx])
            updates, s = tx.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        # On a CPU a step of a small model is a few dozen tiny kernels, and unrolling the scan
        # amortises its per-iteration overhead (about 15-25 % faster for the MLPs of the book).
        unroll = min(length, 8) if jax.default_backend() == "cpu" else 1
        (params, opt_state), batch_losses = jax.lax.scan(step, (params, opt_state), idx, unroll=unroll)
        metrics = _evaluate(graphdef, loss, params, rest, data) if evaluate else {}
        return params, opt_state, batch_losses, metrics

    if vectorized:
        one_run = jax.vmap(one_run, in_axes=(0, 0, 0, 0, 0, None, None))
    return jax.jit(one_run)


def _evaluate(graphdef, loss, params, rest, data) -> dict[str, jax.Array]:
    """Loss (and accuracy) of the model on the whole train and test sets."""
    model = nnx.merge(graphdef, params, rest)
    train = _metrics(model(data.x_train), data.y_train, loss)
    test = _metrics(model(data.x_test), data.y_test, loss)
    return {**{f"train_{k}": v for k, v in train.items()}, **{f"test_{k}": v for k, v in test.items()}}


@functools.lru_cache(maxsize=64)
def _eval_fn(graphdef, loss, vectorized):
    evaluate = functools.partial(_evaluate, graphdef, loss)
    if vectorized:
        evaluate = jax.vmap(evaluate, in_axes=(0, 0, None))
    return jax.jit(evaluate)


def _chunk_lengths(steps: int, eval_every: int) -> list[int]:
    full, last = divmod(steps, eval_every)
    return [eval_every] * full + ([last] if last else [])


class _Progress:
    """A ``tqdm.auto`` bar that appears only once a run has taken more than ``delay`` seconds."""

    def __init__(self, total: int, requested: bool | None, desc: str, delay: float = 2.0):
        self.total, self.desc, self.delay = total, desc, delay
        self.mode = config.progress_enabled(requested)
        self.start = time.perf_counter()
        self.bar = None
        if self.mode:
            self._open(0)

    def _open(self, done: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, initial=done, desc=self.desc, unit="step", leave=False)

    def update(self, done: int, n: int, loss: float) -> None:
        if self.bar is None and self.mode is None and done < self.total:
            if time.perf_counter() - self.start > self.delay:
                self._open(done)
            return
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _validate_common(data, steps, eval_every, loss):
    """Shared checks of fit and sweep; ``eval_every=None`` means about 20 evaluations per run."""
    data = _validate_dataset(data)
    steps = _checks.positive_int("steps", steps)
    _checks.one_of("loss", loss, LOSSES)
    if loss == "cross_entropy" and not jnp.issubdtype(jnp.asarray(data.y_train).dtype, jnp.integer):
        raise ValueError("loss='cross_entropy' needs integer class labels in data.y_train; use loss='mse' for regression")
    eval_every = -(-steps // 20) if eval_every is None else _checks.positive_int("eval_every", eval_every)
    return data, steps, min(eval_every, steps)


def fit(
    model: nnx.Module,
    optimizer: optax.GradientTransformation,
    data: Dataset,
    *,
    steps: int,
    batch_size: int,
    seed: int = 0,
    eval_every: int | None = None,
    replace: bool = False,
    loss: str = "cross_entropy",
    progress: bool | None = None,
) -> FitResult:
    r"""Train ``model`` with ``optimizer`` by minibatch SGD for ``steps`` steps.

    Each step draws a minibatch :math:`B_t` (epochs of random permutations, or independent
    draws with ``replace=True``), computes :math:`g_t = \frac1{|B_t|}\sum_{i\in B_t}\nabla\ell_i(w_t)`
    and applies the Optax update. Every ``eval_every`` steps (default: about 20 evaluations per run)
    the full train and test loss and accuracy are measured inside the compiled program.

    ``model`` is left untouched; the trained copy is ``result.model``. ``seed`` fixes the
    order of the minibatches (the model's initialisation is fixed by its own ``rngs``). If the
    minibatch loss becomes NaN or infinite, training stops, a :class:`DivergenceWarning` is
    issued, ``result.diverged`` is ``True`` and ``result.model`` holds the last finite weights.
    """
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    data, steps, eval_every = _validate_common(data, steps, eval_every, loss)
    batch_size = _checks.batch_size("batch_size", batch_size, data.n_train)
    seed = _checks.nonnegative_int("seed", seed)

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = optimizer.init(params)
    key = jax.random.key(seed)
    make_tx = _constant(optimizer)
    evaluate = _eval_fn(graphdef, loss, False)

    records = [jax.device_get(evaluate(params, rest, data))]
    steps_done, batch_losses, diverged_at = [0], [], None
    bar = _Progress(steps, progress, "fit")
    t0 = time.perf_counter()
    done = 0
    for length in _chunk_lengths(steps, eval_every):
        run = _chunk_fn(graphdef, make_tx, loss, batch_size, replace, length, data.n_train, False)
        new_params, new_state, chunk_losses, metrics = run(params, opt_state, rest, key, None, done, data)
        chunk_losses = np.asarray(chunk_losses)
        bad = ~np.isfinite(chunk_losses)
        if bad.any():
            diverged_at = done + int(np.argmax(bad))
            batch_losses.append(chunk_losses[: int(np.argmax(bad))])
            break
        params, opt_state = new_params, new_state
        done += length
        batch_losses.append(chunk_losses)
        records.append(jax.device_get(metrics))
        steps_done.append(done)
        bar.update(done, length, float(chunk_losses[-1]))
    bar.close()
    seconds = time.perf_counter() - t0
    if diverged_at is not None:
        warnings.warn(
            f"training diverged at step {diverged_at}: the minibatch loss became NaN or infinite "
            f"(try a smaller learning rate); returning the weights from step {done}",
            DivergenceWarning,
            stacklevel=2,
        )
    history = History(
        step=np.asarray(steps_done),
        metrics={k: np.asarray([r[k] for r in records]) for k in records[0]},
        batch_loss=np.concatenate(batch_losses) if batch_losses else np.zeros(0),
    )
    return FitResult(nnx.merge(graphdef, params, rest), history, diverged_at is not None, diverged_at, seconds,
                     opt_state=opt_state)


class _constant:
    """``make_tx`` for :func:`fit`: always the same transformation, hashable by identity."""

    def __init__(self, tx: optax.GradientTransformation):
        self.tx = tx

    def __call__(self, _hparam) -> optax.GradientTransformation:
        return self.tx

    def __hash__(self) -> int:
        return hash(self.tx)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _constant) and other.tx is self.tx


def sweep(
    model_fn: Callable[[nnx.Rngs], nnx.Module],
    optimizer_fn: Callable[[jax.Array], optax.GradientTransformation],
    data: Dataset,
    *,
    steps: int,
    batch_sizes: int | Sequence[int],
    learning_rates: Sequence[float],
    seeds: Sequence[int] = (0,),
    eval_every: int | None = None,
    replace: bool = False,
    loss: str = "cross_entropy",
    progress: bool | None = None,
    keep_params: bool = False,
) -> SweepResult:
    r"""Train every combination of batch size, learning rate and seed, vectorised with ``jax.vmap``.

    ``model_fn(rngs)`` builds a model (called once per seed, with ``nnx.Rngs(seed)``), and
    ``optimizer_fn(lr)`` builds the Optax transformation for learning rate ``lr`` (a traced
    scalar, e.g. ``lambda lr: optax.sgd(lr, momentum=0.9)``). For each batch size the
    ``len(learning_rates) * len(seeds)`` runs are one compiled ``vmap``-ed program; batch sizes
    are separate programs, since their minibatches differ in shape (masking them to the largest
    would waste the compute of the small ones). Seed ``s`` fixes both the initialisation and
    the minibatch order, so the runs of different learning rates with one seed share both.

    A run whose loss becomes non-finite is frozen at its last finite weights and marked in
    ``result.diverged``; its later metrics are NaN. Histories have shape ``(batch, lr, seed, eval)``.
    """
    if not callable(model_fn):
        raise ValueError("model_fn must be a callable taking nnx.Rngs and returning a model")
    if not callable(optimizer_fn):
        raise ValueError("optimizer_fn must be a callable taking a learning rate")
    data, steps, eval_every = _validate_common(data, steps, eval_every, loss)
    sizes = [batch_sizes] if np.isscalar(batch_sizes) else list(batch_sizes)
    if not sizes:
        raise ValueError("batch_sizes is empty")
    sizes = [_checks.batch_size("batch_sizes", b, data.n_train) for b in sizes]
    lrs = [_checks.positive_float("learning_rates", lr) for lr in learning_rates]
    if not lrs:
        raise ValueError("learning_rates is empty")
    seeds = [_checks.nonnegative_int("seeds", s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty")

    models = [model_fn(nnx.Rngs(s)) for s in seeds]
    if not all(isinstance(m, nnx.Module) for m in models):
        raise ValueError("model_fn must return a flax.nnx.Module")
    per_seed = [nnx.split(m, nnx.Param, ...) for m in models]
    graphdef = per_seed[0][0]
    grid = list(itertools.product(range(len(lrs)), range(len(seeds))))
    n_runs = len(grid)
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
    params0 = stack([per_seed[s][1] for _, s in grid])
    rest = stack([per_seed[s][2] for _, s in grid])
    hparams = jnp.asarray([lrs[i] for i, _ in grid], dtype=jnp.float32)
    keys = jnp.stack([jax.random.key(seeds[s]) for _, s in grid])
    make_tx = optimizer_fn
    init_state = jax.jit(jax.vmap(lambda p, lr: make_tx(lr).init(p)))
    evaluate = _eval_fn(graphdef, loss, True)

    n_evals = len(_chunk_lengths(steps, eval_every)) + 1
    steps_axis = np.concatenate([[0], np.cumsum(_chunk_lengths(steps, eval_every))])
    out_metrics: dict[str, np.ndarray] = {}
    out_batch_loss = np.full((len(sizes), n_runs, steps), np.nan, dtype=np.float32)
    diverged = np.zeros((len(sizes), n_runs), dtype=bool)
    diverged_at = np.full((len(sizes), n_runs), -1, dtype=np.int64)
    final_params = []
    bar = _Progress(steps * len(sizes), progress, f"sweep ({n_runs * len(sizes)} runs)")
    t0 = time.perf_counter()
    total_done = 0
    for b_index, batch_size in enumerate(sizes):
        params = params0
        opt_state = init_state(params, hparams)
        first = jax.device_get(evaluate(params, rest, data))
        for name, value in first.items():
            out_metrics.setdefault(name, np.full((len(sizes), n_runs, n_evals), np.nan, dtype=np.float32))
            out_metrics[name][b_index, :, 0] = value
        alive = np.ones(n_runs, dtype=bool)
        done = 0
        for k, length in enumerate(_chunk_lengths(steps, eval_every), start=1):
            run = _chunk_fn(graphdef, make_tx, loss, batch_size, replace, length, data.n_train, True)
            new_params, new_state, chunk_losses, metrics = run(params, opt_state, rest, keys, hparams, done, data)
            chunk_losses = np.asarray(chunk_losses)  # (runs, length)
            finite = np.isfinite(chunk_losses)
            newly = alive & ~finite.all(axis=1)
            diverged_at[b_index, newly] = done + np.argmax(~finite[newly], axis=1)
            alive &= ~newly
            keep = jnp.asarray(alive)
            select = lambda new, old: jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)  # noqa: E731
            params = jax.tree.map(select, new_params, params)
            opt_state = jax.tree.map(select, new_state, opt_state)
            out_batch_loss[b_index, :, done : done + length] = np.where(alive[:, None], chunk_losses, np.nan)
            for name, value in jax.device_get(metrics).items():
                out_metrics[name][b_index, :, k] = np.where(alive, value, np.nan)
            done += length
            total_done += length
            bar.update(total_done, length, float(np.nanmean(chunk_losses[alive, -1])) if alive.any() else math.nan)
            if not alive.any():
                break
        diverged[b_index] = ~alive
        if keep_params:
            final_params.append(params)
    bar.close()
    seconds = time.perf_counter() - t0
    if diverged.any():
        warnings.warn(
            f"{int(diverged.sum())} of {diverged.size} runs diverged (loss became NaN or infinite); "
            "they are marked in result.diverged and their metrics after divergence are NaN",
            DivergenceWarning,
            stacklevel=2,
        )
    shape = (len(sizes), len(lrs), len(seeds))
    history = History(
        step=steps_axis,
        metrics={k: v.reshape(shape + (n_evals,)) for k, v in out_metrics.items()},
        batch_loss=out_batch_loss.reshape(shape + (steps,)),
    )
    return SweepResult(
        batch_sizes=np.asarray(sizes),
        learning_rates=np.asarray(lrs),
        seeds=np.asarray(seeds),
        history=history,
        diverged=diverged.reshape(shape),
        diverged_at=diverged_at.reshape(shape),
        seconds=seconds,
        params=final_params if keep_params else None,
    )
