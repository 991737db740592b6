"""sgdlab: the executable companion package of *Noisy Descent*, a textbook on SGD.

Modules: :mod:`~sgdlab.data`, :mod:`~sgdlab.models`, :mod:`~sgdlab.train`,
:mod:`~sgdlab.noise`, :mod:`~sgdlab.timing`, :mod:`~sgdlab.plots`, :mod:`~sgdlab.widgets`,
:mod:`~sgdlab.coursework`, :mod:`~sgdlab.config`.
"""

from .config import by_scale, scale

__version__ = "0.1.0"
__all__ = ["by_scale", "scale", "__version__"]
