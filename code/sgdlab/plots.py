"""One plotting style for the whole book, and small helpers that refuse to plot NaN."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np

STYLE = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": "medium",
    "legend.frameon": False,
    "font.size": 10,
    "axes.prop_cycle": mpl.cycler(color=["#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#30638e", "#8d6a9f"]),
}


def use_style() -> None:
    """Apply the book's matplotlib style (call once in a chapter's setup cell)."""
    mpl.rcParams.update(STYLE)


def finite_or_raise(name: str, values) -> np.ndarray:
    """Return ``values`` as an array, or raise ``ValueError`` if any is NaN or infinite.

    Chapters pass every curve through this before plotting, so a diverged run fails loudly
    with its name instead of drawing a silently truncated line.
    """
    arr = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values (did the run diverge?)")
    return arr


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``: the exponent of a power law."""
    x = finite_or_raise("x", x)
    y = finite_or_raise("y", y)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D of equal length >= 2, got {x.shape} and {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive for a log-log fit")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
