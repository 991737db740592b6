"""Execution scale and display mode, read from the environment.

``SGDLAB_SCALE`` picks the size of every experiment: ``smoke`` (tests, seconds), ``book``
(the default: the HTML build and Colab on a CPU) or ``full`` (paper-like sizes for a GPU).
``SGDLAB_STATIC=1`` turns interactive explorers into static small-multiple figures and
silences progress bars; the book build sets it.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

SCALES = ("smoke", "book", "full")
T = TypeVar("T")


def scale() -> str:
    """The current execution scale, from ``SGDLAB_SCALE`` (default ``"book"``)."""
    value = os.environ.get("SGDLAB_SCALE", "book").strip().lower() or "book"
    if value not in SCALES:
        raise ValueError(f"SGDLAB_SCALE must be one of {SCALES}, got {value!r}")
    return value


def by_scale(*, smoke: T, book: T, full: T) -> T:
    """Pick the value for the current scale: one place per chapter for experiment sizes.

    >>> sizes = by_scale(smoke=dict(n=100), book=dict(n=4000), full=dict(n=40000))
    """
    return {"smoke": smoke, "book": book, "full": full}[scale()]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def static() -> bool:
    """True when explorers must render as static figures (``SGDLAB_STATIC=1``)."""
    return _flag("SGDLAB_STATIC")


def progress_enabled(requested: bool | None) -> bool | None:
    """Resolve a ``progress`` argument: explicit wins; ``None`` defers unless the book build runs."""
    if requested is not None:
        return bool(requested)
    if static() or _flag("SGDLAB_NO_PROGRESS"):
        return False
    return None


def describe() -> dict[str, Any]:
    """Scale, display mode and JAX devices in one dict, for the setup cell of a chapter."""
    import jax

    return {
        "scale": scale(),
        "static": static(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }
