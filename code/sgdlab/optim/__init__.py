"""Optax ``GradientTransformation`` objects for the textbook algorithms that Optax lacks.

Each is written in Optax's own style (``init``/``update`` and a ``NamedTuple`` state) so it
composes with ``optax.chain`` and runs inside :func:`sgdlab.train.fit`. Standard optimizers
are not re-implemented for use: call ``optax.sgd``, ``optax.adam`` and friends.
"""

from .mcallester import mcallester
from .adam import adam, adamw, mcallester_adam, rmsprop
from .delayed import delayed
