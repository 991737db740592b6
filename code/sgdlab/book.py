r"""What a chapter needs to keep the book's promise: numbers glued from the run, verdicts asserted.

* :func:`glue` hands a measured value to myst-nb, so the prose quotes it with
  ``{glue:text}`name:.3f``` instead of a typed number. Where myst-nb is absent (Colab, a plain
  Jupyter kernel) it prints ``name = value``, so the reader still sees the number.
* :func:`claim` states a verdict of the text ("the slope is -1", "A beats B") as a condition.
  It prints ``checked: ...`` when the condition holds and raises :class:`ClaimError` naming the
  claim when it does not, so a book build in which the text stops being true fails.
* :func:`show_source` displays the real source of a package function, syntax highlighted, so a
  chapter that explains an algorithm shows the code that runs (tag the cell ``remove-input``).
* :func:`compile_report` says how many programs XLA compiled since the chapter started (the
  engine's goal is few: one per experiment, not one per run or per learning rate).
* :func:`claim_close` and :func:`claim_separated` are the two verdicts a Monte-Carlo chapter makes
  most: a measurement agrees with a formula within ``z`` standard errors, and one mean lies
  below another with their intervals apart. :func:`mean_se` gives the mean and its standard
  error along an axis (for example the seed axis of a sweep).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

__all__ = ["ClaimError", "glue", "claim", "claim_close", "claim_separated", "mean_se", "show_source",
           "compile_report"]

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_compiled = {"xla": 0}


def _count_compilation(event: str, *args: Any, **kwargs: Any) -> None:
    if event == _COMPILE_EVENT:
        _compiled["xla"] += 1


def _listen() -> None:
    import jax.monitoring

    jax.monitoring.register_event_duration_secs_listener(_count_compilation)


_listen()


class ClaimError(AssertionError):
    """A verdict that the chapter's text states no longer holds for the numbers of this run."""


def _plain(value: Any) -> Any:
    """NumPy and JAX scalars as Python numbers: myst-nb's ``{glue:text}`` parses the plain repr."""
    if type(value) in (bool, int, float, str):
        return value
    arr = np.asarray(value)
    if arr.ndim == 0 and arr.dtype.kind in "biuf":
        return arr.item()
    return value


def glue(name: str, value: Any, *, display: bool = False) -> Any:
    """Record ``value`` under ``name`` for ``{glue:text}`name``` in the chapter's prose; return it.

    Under myst-nb (the book build) the value is glued into the notebook's outputs (shown in the
    cell only with ``display=True``); elsewhere it is printed as ``name = value``. NumPy and JAX
    scalars are converted to Python numbers first, so format specs such as ``:.2f`` work.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier-like string, got {name!r}")
    value = _plain(value)
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        print(f"{name} = {value}")
    else:
        _myst_glue(name, value, display=display)
    return value


def _describe(values: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        v = _plain(v)
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={fmt(v)}" for k, v in values.items())


def claim(condition: Any, message: str, **values: Any) -> None:
    """Assert a verdict of the text: print ``checked: message`` or raise :class:`ClaimError`.

    ``values`` (the numbers the verdict rests on) are printed beside the message either way.
    ``condition`` must be a single truth value (a Python or NumPy boolean, or a 0-d array).
    """
    if not isinstance(message, str) or not message:
        raise ValueError("message must be a non-empty string saying what the text claims")
    arr = np.asarray(condition)
    if arr.ndim != 0 or arr.dtype.kind != "b":
        raise ValueError(f"condition must be one boolean, got {type(condition).__name__} of shape {arr.shape}")
    detail = f" ({_describe(values)})" if values else ""
    if not bool(arr):
        raise ClaimError(f"claim failed: {message}{detail}")
    print(f"checked: {message}{detail}")


def claim_close(message: str, measured: Any, expected: Any, *, se: Any = None, z: float = 4.0,
                rtol: float | None = None) -> None:
    r"""Claim that ``measured`` agrees with ``expected``: within ``z`` standard errors ``se``, or within ``rtol``.

    Exactly one of ``se`` (the Monte-Carlo standard error of ``measured``, from the spread of the
    samples) and ``rtol`` (a relative tolerance the text states, e.g. "within 3 %") is given.
    Arrays are compared elementwise and must all agree. With ``se`` the tolerance is
    :math:`z\,\mathrm{se}`; :math:`z = 4` leaves a false alarm probability near :math:`6\cdot10^{-5}` per value.
    """
    if (se is None) == (rtol is None):
        raise ValueError("give exactly one of se (a standard error) and rtol (a stated relative tolerance)")
    m, e = np.asarray(measured, float), np.asarray(expected, float)
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(e))):
        raise ClaimError(f"claim failed: {message} (measured or expected value is not finite)")
    if se is not None:
        se = np.asarray(se, float)
        if np.any(~np.isfinite(se)) or np.any(se < 0):
            raise ValueError("se must be finite and non-negative")
        gap = np.abs(m - e)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(gap == 0, 0.0, gap / se)
        claim(bool(np.all(gap <= z * se)), message, largest_z=float(np.max(scores)), z=z)
    else:
        rel = np.abs(m - e) / np.maximum(np.abs(e), np.finfo(float).tiny)
        claim(bool(np.all(rel <= rtol)), message, largest_relative_error=float(np.max(rel)), rtol=rtol)


def claim_separated(message: str, lower: tuple[Any, Any], upper: tuple[Any, Any], *, z: float = 2.0) -> None:
    r"""Claim that a mean lies below another with their intervals apart.

    ``lower`` and ``upper`` are ``(mean, se)`` pairs (e.g. from :func:`mean_se` over seeds); the
    claim holds when :math:`\bar a + z\,s_a < \bar b - z\,s_b`, the ±``z``-standard-error intervals
    do not overlap. A chapter states "A beats B" only when this holds; otherwise it says the runs
    do not separate them.
    """
    (a, sa), (b, sb) = (tuple(float(np.asarray(v)) for v in pair) for pair in (lower, upper))
    if not all(math.isfinite(v) for v in (a, sa, b, sb)):
        raise ClaimError(f"claim failed: {message} (a mean or standard error is not finite)")
    claim(a + z * sa < b - z * sb, message, lower=a, lower_se=sa, upper=b, upper_se=sb)


def mean_se(values: Any, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and standard error :math:`s/\sqrt n` along ``axis`` (``n >= 2`` values needed)."""
    arr = np.asarray(values, float)
    n = arr.shape[axis]
    if n < 2:
        raise ValueError(f"values need at least two entries along axis {axis} for a standard error, got {n}")
    return arr.mean(axis=axis), arr.std(axis=axis, ddof=1) / math.sqrt(n)


def show_source(obj: Any):
    """The source code of ``obj`` (a function or class of the package) as a syntax-highlighted ``IPython`` object."""
    from IPython.display import Code

    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise ValueError(f"obj must be a function or class, got {type(obj).__name__}")
    return Code(inspect.getsource(obj), language="python")


def compile_report() -> dict[str, int]:
    """Print and return how many XLA programs were compiled since ``sgdlab.book`` was imported.

    ``xla`` counts every backend compilation (the training programs, and each small eager
    operation the first time it meets a new shape); ``engine`` the training, evaluation and
    optimisation programs that :mod:`sgdlab.train` built.
    """
    from . import train

    counts = {"xla": _compiled["xla"], "engine": train.programs_built()}
    print(f"compiled in this run: {counts['xla']} XLA programs, {counts['engine']} of them programs of the "
          "training engine (fit, sweep, optimize)")
    return counts
