r"""The host edge of the training engine: :func:`fit` trains one run, :func:`sweep` a grid of runs.

Both check their arguments, compile the pure functions of :mod:`sgdlab.engine` once and cut
training into chunks of ``eval_every`` steps. A chunk is one compiled call: it draws the
minibatches, scans the SGD steps and evaluates the metrics at its end, all on the device.
Between chunks the host only checks for divergence and moves the progress bar: one host
round-trip per evaluation, not per step.

**Compile once.** Hyperparameters are inputs of the compiled program, never constants: in
:func:`sweep` they are the traced arguments of ``optimizer_fn``; in :func:`fit` the floats of
the Optax transformation are lifted out of it (:mod:`sgdlab.hyperparams`), so a second ``fit``
with ``optax.sgd(0.05)`` after ``optax.sgd(0.1)`` reuses the program. Programs are cached by
model structure, optimizer structure, loss, metrics, batch source, batch size and chunk length.

**Keys.** A seed ``s`` gives two keys for the data order and the metrics, derived from
``numpy.random.SeedSequence([s, 0x5364_4C62])``: a hash of the seed, so they are independent of
the key ``jax.random.key(s)`` from which ``nnx.Rngs(s)`` initialises a model (its draws are
``fold_in(key(s), n)`` for ``n = 0, 1, ...``). The same seed gives the same numbers.

**Divergence.** A run whose minibatch loss turns NaN or infinite is stopped (:func:`fit`, with
one :class:`DivergenceWarning`) or frozen at its last finite weights (:func:`sweep`, marked in
``result.diverged`` and said once at the end); metrics after divergence are NaN and never
silently plotted.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from . import _checks, config, engine, hyperparams, losses, parallel
from .data import BatchSource, Dataset, FreshSamples, _validate_dataset, batch_source

LOSSES = losses.LOSSES
Metric = Callable[[engine.Probe], jax.Array]


class DivergenceWarning(RuntimeWarning):
    """Issued when the loss of a :func:`fit` run becomes NaN or infinite."""


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """The data-order key and the metrics key of seed ``seed`` (independent of ``nnx.Rngs(seed)``)."""
    data_seed, probe_seed = np.random.SeedSequence([int(seed), 0x5364_4C62]).generate_state(2)
    return jax.random.key(int(data_seed)), jax.random.key(int(probe_seed))


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class History:
    """Metrics recorded during training.

    ``metrics[name][..., k]`` was measured after ``step[..., k]`` SGD steps (``step[0] == 0`` is
    the initial model). In a :func:`sweep`, ``step`` has shape ``(batch_size, eval)`` and every
    metric ``(batch_size, *grid axes, seed, eval)``; where batch sizes have fewer evaluations
    than others the missing ones have step ``-1`` and metric NaN. ``batch_loss`` holds the
    minibatch loss of every step.
    """

    step: np.ndarray
    metrics: dict[str, np.ndarray]
    batch_loss: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.metrics:
            raise KeyError(f"no metric {name!r}; recorded: {sorted(self.metrics)}")
        return self.metrics[name]

    def final(self, name: str) -> np.ndarray:
        """The metric at the last evaluation of each run."""
        values = self[name]
        if self.step.ndim == 1:
            return values[..., -1]
        last = (self.step >= 0).sum(axis=1) - 1  # per batch size
        index = last.reshape((-1,) + (1,) * (values.ndim - 1))
        return np.take_along_axis(values, np.broadcast_to(index, values.shape[:-1] + (1,)), axis=-1)[..., 0]


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model, its history, whether it diverged, the seconds
    it took (compilation included) and the optimizer's final state, matching ``result.model``."""

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


class Best(NamedTuple):
    """A choice over grid axes: ``value`` at the chosen point (seed axis kept), ``choice`` the
    chosen value of each axis (NaN where every point is excluded), ``index`` its position."""

    value: np.ndarray
    choice: dict[str, np.ndarray]
    index: dict[str, np.ndarray]


@dataclass
class SweepResult:
    """What :func:`sweep` returns. ``axes`` names the axes of every array, in order, with their values:
    ``batch_size``, the grid's names as given, ``seed``."""

    axes: dict[str, np.ndarray]
    history: History
    diverged: np.ndarray
    diverged_at: np.ndarray
    seconds: float
    params: Any = field(repr=False, default=None)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values())

    def __repr__(self) -> str:
        axes = ", ".join(f"{k}={len(v)}" for k, v in self.axes.items())
        return (f"SweepResult({axes}; {int(self.diverged.sum())} of {self.diverged.size} runs diverged; "
                f"metrics {sorted(self.history.metrics)}; {self.seconds:.1f} s)")

    def _over(self, over: str | Sequence[str] | None) -> list[int]:
        names = list(self.axes)
        grid = names[1:-1]
        chosen = grid if over is None else [over] if isinstance(over, str) else list(over)
        for name in chosen:
            if name not in grid:
                raise ValueError(f"over names {name!r}, not a grid axis of this sweep: {grid}")
        return [names.index(n) for n in chosen]

    def _choose(self, per_run: np.ndarray, score: np.ndarray, over, minimize: bool, fill: float) -> Best:
        """Pick, over the ``over`` axes, the point with the best seed-mean ``score``; report ``per_run`` there."""
        axes = self._over(over)
        names = list(self.axes)
        keep = [a for a in range(per_run.ndim - 1) if a not in axes]
        order = keep + axes + [per_run.ndim - 1]
        moved = np.transpose(per_run, order)
        s = np.transpose(score, [a for a in order[:-1]])
        kept_shape = moved.shape[: len(keep)]
        flat = moved.reshape(kept_shape + (-1, moved.shape[-1]))
        s = s.reshape(kept_shape + (-1,))
        bad = ~np.isfinite(s) if minimize else np.isnan(s)
        s = np.where(bad, np.inf if minimize else -np.inf, s)
        best = np.argmin(s, axis=-1) if minimize else np.argmax(s, axis=-1)
        none = np.all(bad, axis=-1)
        value = np.take_along_axis(flat, best[..., None, None], axis=-2)[..., 0, :]
        value = np.where(none[..., None], fill, value)
        grid_shape = tuple(per_run.shape[a] for a in axes)
        position = np.unravel_index(best, grid_shape) if grid_shape else ()
        choice, index = {}, {}
        for a, pos in zip(axes, position):
            vals = np.asarray(self.axes[names[a]], float)
            choice[names[a]] = np.where(none, np.nan, vals[pos])
            index[names[a]] = np.where(none, -1, pos)
        return Best(value, choice, index)

    def best(self, metric: str, *, over: str | Sequence[str] | None = None, maximize: bool = False) -> Best:
        """The grid point (over ``over``, default every grid axis) with the best seed-mean final ``metric``.

        Runs that diverged never win: a point where any seed diverged is excluded.
        """
        final = self.history.final(metric).astype(float)
        final = np.where(self.diverged, np.nan, final)
        score = np.where(self.diverged.any(axis=-1), np.nan, final.mean(axis=-1))
        return self._choose(final, score, over, minimize=not maximize, fill=np.nan)

    def steps_to(self, metric: str, target: float, *, over: str | Sequence[str] | None = None,
                 maximize: bool = False, return_choice: bool = False) -> np.ndarray | Best:
        """Steps to result (Shallue et al. 2019): the first evaluated step at which ``metric`` reaches ``target``.

        "Reaches" is ``<= target`` (``>=`` with ``maximize=True``); ``inf`` where a run never does
        (or diverged first). Without ``over`` the shape is that of the runs; with ``over`` the
        grid point with the fewest seed-mean steps is chosen for each remaining index (a point
        where some seed never reaches the target is infeasible), the seed axis kept; with
        ``return_choice`` a :class:`Best` says which point.
        """
        target = float(target)
        values = self.history[metric]
        reached = (values >= target) if maximize else (values <= target)
        step = self.history.step.astype(float)
        step_b = np.where(step >= 0, step, np.inf).reshape((step.shape[0],) + (1,) * (values.ndim - 2) + (step.shape[1],))
        first = np.where(reached, step_b, np.inf).min(axis=-1)
        if over is None and not return_choice:
            return first
        chosen = self._choose(first, first.mean(axis=-1), over, minimize=True, fill=np.inf)
        return chosen if return_choice else chosen.value


# --------------------------------------------------------------------------------------
# the compiled programs
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Spec:
    """Everything static about a program; its hash is the compilation cache key. ``make_tx`` is
    left out of the key: ``tx_key`` names the optimizer's structure, which determines it."""

    graphdef: Any
    eval_graphdef: Any
    tx_key: Any
    extra_args: frozenset
    loss_fn: Callable
    metrics: tuple[tuple[str, Metric], ...]
    eval_params: Callable | None
    batch_size: int
    batch_sharding: Any
    make_tx: Callable[[Any], optax.GradientTransformation] = field(compare=False, hash=False, repr=False)


_COMPILED = {"programs": 0}


def programs_built() -> int:
    """How many training and evaluation programs the engine has built in this process (cache misses)."""
    return _COMPILED["programs"]


def _evaluate(spec: _Spec, state, key, source, eval_data):
    return engine.evaluate(
        state, jax.random.fold_in(key, state.step), graphdef=spec.graphdef, eval_graphdef=spec.eval_graphdef,
        data=eval_data, source=source, loss_fn=spec.loss_fn, metrics=dict(spec.metrics), eval_params=spec.eval_params)


# vmap axes of a sweep's TrainState: one per run, except the step counter that all runs share
_RUNS = engine.TrainState(params=0, model_state=0, opt_state=0, step=None)


@functools.lru_cache(maxsize=128)
def _chunk_program(spec: _Spec, length: int, vectorized: bool, evaluate: bool = True):
    """The jitted chunk: ``length`` steps, then (with ``evaluate``) the metrics. ``vmap``-ed over runs for a sweep."""
    _COMPILED["programs"] += 1
    # Unrolling 8 steps amortises the scan's per-step cost for one run on a CPU (fit: 28.9k against
    # 26.0k steps/s); under vmap it slows a momentum sweep (20k against 29k run-steps/s): measured
    # with code/benchmarks/train_throughput.py's network.
    unroll = min(length, 8) if jax.default_backend() == "cpu" and not vectorized else 1

    def one_run(state, data_key, probe_key, hparams, source, eval_data):
        step_fn = functools.partial(engine.train_step, graphdef=spec.graphdef, tx=spec.make_tx(hparams),
                                    loss_fn=spec.loss_fn, extra_args=spec.extra_args,
                                    batch_sharding=spec.batch_sharding)
        state, batch_losses = engine.train_steps(state, data_key, source=source, batch_size=spec.batch_size,
                                                 length=length, step_fn=step_fn, unroll=unroll)
        metrics = _evaluate(spec, state, probe_key, source, eval_data) if evaluate else {}
        return state, batch_losses, metrics

    if vectorized:  # the runs of a sweep share their step counter: unbatched, so epoch changes stay a cond
        one_run = jax.vmap(one_run, in_axes=(_RUNS, 0, 0, 0, None, None), out_axes=(_RUNS, 0, 0))
    return jax.jit(one_run)


def _eval_program(spec: _Spec, vectorized: bool):
    """The jitted evaluation; the same program for every batch size (evaluation does not depend on it)."""
    return _eval_program_for(dataclasses.replace(spec, batch_size=0, batch_sharding=None), vectorized)


@functools.lru_cache(maxsize=128)
def _eval_program_for(spec: _Spec, vectorized: bool):
    _COMPILED["programs"] += 1
    fn = functools.partial(_evaluate, spec)
    if vectorized:
        fn = jax.vmap(fn, in_axes=(_RUNS, 0, None, None))
    return jax.jit(fn)


@functools.lru_cache(maxsize=128)
def _init_program(optimizer_fn):
    """The optimizer states of a sweep's runs: ``optimizer_fn(**h).init(params)`` ``vmap``-ed over runs."""
    return jax.jit(jax.vmap(lambda p, h: optimizer_fn(**h).init(p)))


@jax.jit
def _keep_alive(alive, new, old):
    """Per run, the new state where the run is alive, else the old one (a diverged run stays frozen)."""
    def pick(n, o):
        return jnp.where(alive.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)

    runs = (new.params, new.model_state, new.opt_state), (old.params, old.model_state, old.opt_state)
    params, model_state, opt_state = jax.tree.map(pick, *runs)
    return engine.TrainState(params, model_state, opt_state, new.step)


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


# --------------------------------------------------------------------------------------
# validation shared by fit and sweep
# --------------------------------------------------------------------------------------

def _eval_graphdef(model: nnx.Module) -> Any:
    """The graph definition of ``model`` in evaluation mode (dropout off, running batch statistics)."""
    copy = nnx.clone(model)
    copy.eval()
    return nnx.split(copy, nnx.Param, ...)[0]


def _source_and_eval(data, eval_data, replace, weights, loss) -> tuple[BatchSource, Dataset, Callable]:
    source = batch_source(data, replace=replace, weights=weights)
    if eval_data is None:
        if source.eval_data is None:
            raise ValueError("eval_data (an sgdlab.data.Dataset) is required when data is a sampler of fresh examples")
        eval_data = source.eval_data
    else:
        eval_data = _validate_dataset(eval_data)
    loss_fn = losses.resolve(loss)
    if loss == "cross_entropy":
        labels = [eval_data.y_train, eval_data.y_test]
        if isinstance(source, FreshSamples):
            labels.append(jax.eval_shape(lambda k: source.sample(k, 2), jax.random.key(0))[1])
        if not all(jnp.issubdtype(y.dtype, jnp.integer) for y in labels):
            raise ValueError("loss='cross_entropy' needs integer class labels; use loss='mse' for regression")
    return source, eval_data, loss_fn


def _metrics(metrics) -> tuple[tuple[str, Metric], ...]:
    if metrics is None:
        return ()
    if not isinstance(metrics, dict) or not all(isinstance(k, str) and callable(v) for k, v in metrics.items()):
        raise ValueError("metrics must map names to functions fn(probe) -> scalar")
    return tuple(metrics.items())


def _eval_every(steps: int, eval_every: int | None) -> int:
    """``eval_every=None`` means about 20 evaluations per run."""
    every = -(-steps // 20) if eval_every is None else _checks.positive_int("eval_every", eval_every)
    return min(every, steps)


def _all_finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(tree)
               if jnp.issubdtype(leaf.dtype, jnp.inexact))


# --------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------

def _optimizer_program(optimizer: optax.GradientTransformation, params) -> tuple[Any, Callable, tuple]:
    """``(structure key, make_tx, hyperparameter values)`` for ``optimizer``: its floats lifted when it traces."""
    lifted = hyperparams.lift(optimizer)

    def probe(tx):
        state = tx.init(params)
        names = engine.extra_arg_names(tx)
        extra = {"value": jnp.float32(0.0), "grad_fn": lambda p, i: p}
        return tx.update(params, state, params, **{k: extra[k] for k in names})

    if lifted.values and hyperparams.traceable(lifted, probe):
        return ("lifted", lifted.key), lifted.rebuild, lifted.values
    return ("static", optimizer), (lambda _: optimizer), ()


def fit(
    model: nnx.Module,
    optimizer: optax.GradientTransformation,
    data: Dataset | BatchSource | Callable,
    *,
    steps: int,
    batch_size: int,
    seed: int = 0,
    eval_every: int | None = None,
    replace: bool = False,
    weights: Any = None,
    loss: str | Callable = "cross_entropy",
    metrics: dict[str, Metric] | None = None,
    eval_params: Callable[[Any, Any], Any] | None = None,
    eval_data: Dataset | None = None,
    devices: int | Sequence[Any] | None = None,
    opt_state: Any = None,
    progress: bool | None = None,
) -> FitResult:
    r"""Train ``model`` with ``optimizer`` for ``steps`` steps of minibatch SGD.

    Each step draws a minibatch :math:`B_t` from ``data`` — a :class:`~sgdlab.data.Dataset`
    (epochs of random permutations; independent draws with ``replace=True``; rows drawn with
    probabilities ``weights``), or a sampler ``sample(key, batch_size) -> (x, y)`` drawing fresh
    examples (then ``eval_data`` is required) — computes
    :math:`g_t = \frac1{|B_t|}\sum_{i\in B_t}\nabla\ell_i(w_t)` and applies the Optax update,
    which also receives ``value`` and ``grad_fn`` (see :mod:`sgdlab.engine`). ``loss`` is
    ``"cross_entropy"``, ``"mse"`` or a per-example function ``(outputs, targets) -> (batch,)``.

    Every ``eval_every`` steps (default: about 20 evaluations) the loss on the train and test
    sets of ``eval_data`` (default: ``data``) is measured inside the compiled program, with
    accuracy and soft error for integer labels, and every ``metrics[name](probe)`` (see
    :class:`sgdlab.engine.Probe`), at the point ``eval_params(params, opt_state)`` (default:
    the iterate). ``seed`` fixes the data order and the metrics' keys (see the module
    docstring); the model's initialisation is fixed by its own ``rngs``. With ``devices`` (a
    count or a list of devices) every minibatch is split across them along the ``data`` axis of
    a mesh and the parameters are replicated (:mod:`sgdlab.parallel`): the same run, computed by
    several devices. ``opt_state`` (default ``optimizer.init(params)``) continues a run: pass
    the ``result.opt_state`` of an earlier fit with the same kind of optimizer and
    ``result.model``, and the momentum, Adam moments and schedule counts carry on (the data
    order starts again at step 0 of ``seed``). ``model`` is left
    untouched; the trained copy is ``result.model``. If the minibatch loss becomes NaN or
    infinite, training stops, one :class:`DivergenceWarning` is issued, ``result.diverged`` is
    ``True`` and ``result.model`` holds the weights of the last evaluation.
    """
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    steps = _checks.positive_int("steps", steps)
    source, eval_data, loss_fn = _source_and_eval(data, eval_data, replace, weights, loss)
    batch_size = source.check_batch_size("batch_size", batch_size)
    seed = _checks.nonnegative_int("seed", seed)
    eval_every = _eval_every(steps, eval_every)
    if eval_params is not None and not callable(eval_params):
        raise ValueError("eval_params must be a function (params, opt_state) -> params")

    graphdef, params, model_state = engine.split_model(model)
    if not _all_finite(params):
        raise ValueError("the model's parameters contain NaN or infinite values")
    tx_key, make_tx, hparams = _optimizer_program(optimizer, params)
    sharding = None
    initial = optimizer.init(params)
    if opt_state is not None:
        shapes = lambda tree: [(jnp.shape(a), jnp.result_type(a)) for a in jax.tree.leaves(tree)]  # noqa: E731
        if jax.tree.structure(opt_state) != jax.tree.structure(initial) or shapes(opt_state) != shapes(initial):
            raise ValueError("opt_state must have the structure, shapes and dtypes of optimizer.init(params) "
                             "(the opt_state of an earlier fit with the same kind of optimizer and model)")
        if not _all_finite(opt_state):
            raise ValueError("opt_state contains NaN or infinite values")
        initial = opt_state
    state = engine.TrainState(params, model_state, initial, jnp.zeros((), jnp.int32))
    if devices is not None:
        mesh = parallel.data_mesh(devices)
        if batch_size % mesh.size:
            raise ValueError(f"batch_size={batch_size} must be a multiple of the number of devices ({mesh.size})")
        sharding = parallel.batch_sharding(mesh)
        state, source, eval_data = jax.device_put((state, source, eval_data), parallel.replicated(mesh))
    spec = _Spec(graphdef, _eval_graphdef(model), tx_key, engine.extra_arg_names(optimizer), loss_fn,
                 _metrics(metrics), eval_params, batch_size, sharding, make_tx=make_tx)
    data_key, probe_key = seed_keys(seed)

    records = [jax.device_get(_eval_program(spec, False)(state, probe_key, source, eval_data))]
    steps_done, batch_losses, diverged_at = [0], [], None
    bar = _Progress(steps, progress, "fit")
    t0 = time.perf_counter()
    done = 0
    for length in _chunk_lengths(steps, eval_every):
        run = _chunk_program(spec, length, False)
        new_state, chunk_losses, metrics_k = run(state, data_key, probe_key, hparams, source, eval_data)
        chunk_losses = np.asarray(chunk_losses)
        bad = ~np.isfinite(chunk_losses)
        if bad.any():
            diverged_at = done + int(np.argmax(bad))
            batch_losses.append(chunk_losses[: int(np.argmax(bad))])
            break
        state = new_state
        done += length
        batch_losses.append(chunk_losses)
        records.append(jax.device_get(metrics_k))
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
    trained = nnx.merge(graphdef, state.params, state.model_state)
    return FitResult(trained, history, diverged_at is not None, diverged_at, seconds, opt_state=state.opt_state)


# --------------------------------------------------------------------------------------
# optimize: an Optax transformation on a hand-written gradient
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=128)
def _optimize_program(make_tx, gradient, trace, steps):
    _COMPILED["programs"] += 1

    def run(hparams, params, args):
        return engine.optimize(make_tx(hparams), params, gradient, steps=steps, args=args, trace=trace)

    return jax.jit(run)


class _Cached:
    """``make_tx`` for :func:`optimize`, equal for equal optimizer structures (its cache key)."""

    def __init__(self, tx_key, make_tx):
        self.tx_key, self.make_tx = tx_key, make_tx

    def __call__(self, hparams):
        return self.make_tx(hparams)

    def __hash__(self) -> int:
        return hash(self.tx_key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Cached) and other.tx_key == self.tx_key


def optimize(
    optimizer: optax.GradientTransformation,
    params: Any,
    gradient: Callable[..., Any],
    *,
    steps: int,
    args: tuple = (),
    trace: Callable[..., Any] | None = None,
) -> tuple[Any, Any, Any]:
    r"""Run ``optimizer`` for ``steps`` steps on ``gradient(params, t, *args)``, compiled once.

    The host edge of :func:`sgdlab.engine.optimize` (see there): for toy problems whose gradient
    is written out (quadratics, least squares, noisy oracles). ``gradient`` and ``trace`` should
    be module-level functions and the problem's arrays go in ``args`` (inputs of the program,
    not constants), so that the compiled scan is reused: by every optimizer of the same kind,
    since the optimizer's floats are lifted out of it (:mod:`sgdlab.hyperparams`). Returns the
    final parameters, the final optimizer state and the traced values after every step.
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    if not callable(gradient):
        raise ValueError("gradient must be a function gradient(params, t, *args) -> gradients")
    steps = _checks.positive_int("steps", steps)
    if not _all_finite(params):
        raise ValueError("params contain NaN or infinite values")
    tx_key, make_tx, hparams = _optimizer_program(optimizer, params)
    run = _optimize_program(_Cached(tx_key, make_tx), gradient, trace, steps)
    return run(hparams, params, tuple(args))


# --------------------------------------------------------------------------------------
# sweep
# --------------------------------------------------------------------------------------

def _grid(optimizer_fn: Callable, grid: dict[str, Sequence[float]]) -> dict[str, np.ndarray]:
    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty dict mapping keyword names of optimizer_fn to lists of values")
    try:
        sig = inspect.signature(optimizer_fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        accepted = {n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        for name in grid:
            if name not in accepted:
                raise ValueError(f"grid names {name!r}, which is not a keyword argument of optimizer_fn "
                                 f"(it accepts {sorted(accepted)})")
    out = {}
    for name, values in grid.items():
        arr = _checks.finite_array(f"grid[{name!r}]", values, ndim=1).astype(np.float64)
        out[name] = arr
    return out


def sweep(
    model_fn: Callable[[nnx.Rngs], nnx.Module],
    optimizer_fn: Callable[..., optax.GradientTransformation],
    data: Dataset | BatchSource | Callable,
    *,
    steps: int | Callable[[int], int],
    batch_sizes: int | Sequence[int],
    grid: dict[str, Sequence[float]],
    seeds: Sequence[int] = (0,),
    eval_every: int | Callable[[int], int] | None = None,
    replace: bool = False,
    weights: Any = None,
    loss: str | Callable = "cross_entropy",
    metrics: dict[str, Metric] | None = None,
    eval_params: Callable[[Any, Any], Any] | None = None,
    eval_data: Dataset | None = None,
    devices: int | Sequence[Any] | None = None,
    progress: bool | None = None,
    keep_params: bool = False,
) -> SweepResult:
    r"""Train every batch size × grid point × seed; the runs of one batch size are one ``vmap``-ed program.

    ``grid`` maps keyword names of ``optimizer_fn`` to values, e.g. ``optax.sgd`` with
    ``{"learning_rate": [...], "momentum": [...]}``, or a function of any names; the runs are
    the outer product of the grid's values times the ``seeds``. ``optimizer_fn(**point)``
    receives the values as traced float32 scalars, so new values never recompile. ``steps``
    (and ``eval_every``) is an int or a function of the batch size, e.g. ``lambda b: epochs *
    n // b`` for equal-epoch budgets. Batch sizes are separate programs, since their minibatches
    differ in shape. ``model_fn(rngs)`` builds a model, called with ``nnx.Rngs(seed)``.

    The run with seed ``s`` and grid point ``h`` is the run
    ``fit(model_fn(nnx.Rngs(s)), optimizer_fn(**h), data, seed=s, ...)``, to float32 rounding.
    Everything else (``data``, ``loss``, ``metrics``, ``eval_params``, ``eval_data``) is as in
    :func:`fit`. Arrays of the result have axes ``(batch_size, *grid, seed, ...)``, named in
    ``result.axes``. A run whose loss becomes non-finite is frozen at its last finite weights and
    marked in ``result.diverged``; its later metrics are NaN. With ``devices`` (a count or a list
    of devices) the runs are split across them (:func:`sgdlab.parallel.runs_mesh`; the last run is
    repeated to fill the last device), the same runs computed in parallel.
    """
    if not callable(model_fn):
        raise ValueError("model_fn must be a callable taking nnx.Rngs and returning a model")
    if not callable(optimizer_fn):
        raise ValueError("optimizer_fn must be a callable taking the grid's names as keyword arguments")
    values = _grid(optimizer_fn, grid)
    source, eval_data, loss_fn = _source_and_eval(data, eval_data, replace, weights, loss)
    sizes = [batch_sizes] if np.isscalar(batch_sizes) else list(batch_sizes)
    if not sizes:
        raise ValueError("batch_sizes is empty")
    sizes = [source.check_batch_size("batch_sizes", b) for b in sizes]
    seeds = [_checks.nonnegative_int("seeds", s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty")
    plan = {b: _checks.positive_int("steps", steps(b) if callable(steps) else steps) for b in sizes}
    every = {b: _eval_every(plan[b], eval_every(b) if callable(eval_every) else eval_every) for b in sizes}
    if eval_params is not None and not callable(eval_params):
        raise ValueError("eval_params must be a function (params, opt_state) -> params")

    models = [model_fn(nnx.Rngs(s)) for s in seeds]
    if not all(isinstance(m, nnx.Module) for m in models):
        raise ValueError("model_fn must return a flax.nnx.Module")
    per_seed = [engine.split_model(m) for m in models]
    graphdef = per_seed[0][0]
    names = list(values)
    points = list(itertools.product(*(range(len(values[n])) for n in names)))
    runs = [(p, s) for p in points for s in range(len(seeds))]
    n_runs = len(runs)
    mesh = None if devices is None else parallel.runs_mesh(devices)
    if mesh is not None:   # pad with copies of the last run to a multiple of the devices; cut off below
        runs += [runs[-1]] * (-n_runs % mesh.size)
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
    params0 = stack([per_seed[s][1] for _, s in runs])
    model_state0 = stack([per_seed[s][2] for _, s in runs])
    hparams = {n: jnp.asarray([values[n][p[i]] for p, _ in runs], jnp.float32) for i, n in enumerate(names)}
    keys = [seed_keys(seeds[s]) for _, s in runs]
    data_keys, probe_keys = jnp.stack([k[0] for k in keys]), jnp.stack([k[1] for k in keys])
    if mesh is not None:
        params0, model_state0, hparams, data_keys, probe_keys = jax.device_put(
            (params0, model_state0, hparams, data_keys, probe_keys), parallel.runs_sharding(mesh))
        source, eval_data = jax.device_put((source, eval_data), parallel.replicated(mesh))

    def make_tx(h):
        return optimizer_fn(**h)

    example = make_tx({n: jnp.float32(values[n][0]) for n in names})  # building a transformation computes nothing
    init_state = _init_program(optimizer_fn)
    spec_base = dict(graphdef=graphdef, eval_graphdef=_eval_graphdef(models[0]), tx_key=("sweep", optimizer_fn),
                     make_tx=make_tx, extra_args=engine.extra_arg_names(example), loss_fn=loss_fn,
                     metrics=_metrics(metrics), eval_params=eval_params, batch_sharding=None)

    n_evals = {b: len(_chunk_lengths(plan[b], every[b])) + 1 for b in sizes}
    max_evals, max_steps = max(n_evals.values()), max(plan.values())
    step_axis = np.full((len(sizes), max_evals), -1, dtype=np.int64)
    out_metrics: dict[str, np.ndarray] = {}
    out_batch_loss = np.full((len(sizes), len(runs), max_steps), np.nan, dtype=np.float32)
    diverged = np.zeros((len(sizes), len(runs)), dtype=bool)
    diverged_at = np.full((len(sizes), len(runs)), -1, dtype=np.int64)
    final_params = []
    bar = _Progress(sum(plan.values()), progress, f"sweep ({n_runs * len(sizes)} runs)")
    t0 = time.perf_counter()
    total_done = 0
    for b_index, batch_size in enumerate(sizes):
        spec = _Spec(batch_size=batch_size, **spec_base)
        state = engine.TrainState(params0, model_state0, init_state(params0, hparams), jnp.zeros((), jnp.int32))
        first = jax.device_get(_eval_program(spec, True)(state, probe_keys, source, eval_data))
        for name, value in first.items():
            out_metrics.setdefault(name, np.full((len(sizes), len(runs), max_evals), np.nan, dtype=np.float32))
            out_metrics[name][b_index, :, 0] = value
        step_axis[b_index, 0] = 0
        alive = np.ones(len(runs), dtype=bool)
        done = 0
        for k, length in enumerate(_chunk_lengths(plan[batch_size], every[batch_size]), start=1):
            run = _chunk_program(spec, length, True)
            new_state, chunk_losses, metrics_k = run(state, data_keys, probe_keys, hparams, source, eval_data)
            chunk_losses = np.asarray(chunk_losses)  # (runs, length)
            finite = np.isfinite(chunk_losses)
            newly = alive & ~finite.all(axis=1)
            diverged_at[b_index, newly] = done + np.argmax(~finite[newly], axis=1)
            alive &= ~newly
            state = _keep_alive(jnp.asarray(alive), new_state, state)
            out_batch_loss[b_index, :, done: done + length] = np.where(alive[:, None], chunk_losses, np.nan)
            for name, value in jax.device_get(metrics_k).items():
                out_metrics[name][b_index, :, k] = np.where(alive, value, np.nan)
            done += length
            step_axis[b_index, k] = done
            total_done += length
            bar.update(total_done, length, float(np.nanmean(chunk_losses[alive, -1])) if alive.any() else math.nan)
            if not alive.any():
                break
        diverged[b_index] = ~alive
        if keep_params:
            final_params.append(jax.tree.map(lambda a: a[:n_runs], state.params))
    bar.close()
    seconds = time.perf_counter() - t0
    shape = (len(sizes), *(len(values[n]) for n in names), len(seeds))
    axes = {"batch_size": np.asarray(sizes), **values, "seed": np.asarray(seeds)}
    result = SweepResult(
        axes=axes,
        history=History(
            step=step_axis,
            metrics={k: v[:, :n_runs].reshape(shape + (max_evals,)) for k, v in out_metrics.items()},
            batch_loss=out_batch_loss[:, :n_runs].reshape(shape + (max_steps,)),
        ),
        diverged=diverged[:, :n_runs].reshape(shape),
        diverged_at=diverged_at[:, :n_runs].reshape(shape),
        seconds=seconds,
        params=final_params if keep_params else None,
    )
    if result.diverged.any():
        print(f"sweep: {int(result.diverged.sum())} of {result.diverged.size} runs diverged (their loss became NaN or "
              "infinite); they are marked in result.diverged and their later metrics are NaN")
    return result
