"""sgdlab: the executable companion package of *Noisy Descent*, a textbook on SGD.

Modules: ``config`` (scales), ``data``, ``models``, ``train`` (the compiled engine), ``noise``
(per-example gradients), ``optim`` (textbook optimizers Optax lacks), ``quadratic``,
``martingales``, ``averaging``, ``momentum``, ``wilson``, ``scaling`` (toy problems with closed
forms), ``timing``, ``plots``, ``widgets`` (explorers) and ``coursework``.
"""

from .config import by_scale, scale

__version__ = "0.1.0"
__all__ = ["by_scale", "scale", "__version__"]
