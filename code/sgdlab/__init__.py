"""sgdlab: the executable companion package of *Noisy Descent*, a textbook on SGD.

Modules: ``config`` (scales), ``data`` (datasets and batch sources), ``models``, ``losses``,
``engine`` (the pure training core) and ``train`` (its host edge: ``fit``, ``sweep``,
``optimize``), ``hyperparams`` (an Optax object's floats as program inputs), ``parallel`` (data
parallelism), ``book`` (glue and claims), ``noise`` (per-example gradients), ``noise_scale``,
``curvature``, ``sde``, ``optim`` (textbook optimizers Optax lacks), the toy models with closed
forms (``quadratic``, ``martingales``, ``averaging``, ``momentum``, ``wilson``, ``scaling``,
``nqm``, ``interpolation``), ``timing``, ``plots``, ``widgets`` (explorers) and ``coursework``.
"""

from . import book  # noqa: F401  (counts XLA compilations from the start: book.compile_report)
from .config import by_scale, scale

__version__ = "0.1.0"
__all__ = ["by_scale", "scale", "__version__"]
