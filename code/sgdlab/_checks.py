"""Argument validation shared by the public API.

Every public function checks its inputs with these helpers, so a bad argument fails at the
call with a ``ValueError`` that names the parameter, instead of deep inside a traced program.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` after checking that it is an integer ``>= 1``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def nonnegative_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` after checking that it is an integer ``>= 0``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a ``float`` after checking that it is finite and positive."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {bound} number, got {value!r}")
    return x


def fraction(name: str, value: Any) -> float:
    """Return ``value`` as a ``float`` in the open interval (0, 1)."""
    x = positive_float(name, value)
    if not x < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return x


def batch_size(name: str, value: Any, n: int) -> int:
    """Check a batch size against the number of examples ``n`` it draws from."""
    b = positive_int(name, value)
    if b > n:
        raise ValueError(f"{name}={b} is larger than the number of examples ({n})")
    return b


def _traced(value: Any) -> bool:
    """Whether ``value`` is an abstract value inside ``jit``/``vmap``/``grad``: only its shape can be checked."""
    import jax

    return isinstance(value, jax.core.Tracer)


def finite_array(name: str, value: Any, *, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``value`` as a NumPy array after checking its rank and that it has no NaN or inf.

    Inside a JAX transformation (a traced value) only the rank and size are checked, and the
    traced value is returned as it is: the function stays usable under ``jit`` and ``vmap``.
    """
    arr = value if _traced(value) else np.asarray(value)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if _traced(arr):
        return arr
    if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def one_of(name: str, value: Any, options: tuple[str, ...]) -> str:
    """Check that ``value`` is one of the allowed strings."""
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def examples(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check inputs ``x`` and targets ``y`` of the same examples: finite, and one row each."""
    x = finite_array("x", x)
    y = finite_array("y", y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    return x, y
