r"""The numbers inside an Optax transformation, as inputs of a compiled program.

An Optax transformation is a pair of closures: ``optax.sgd(0.1)`` keeps ``0.1`` in a closure
cell of its ``update`` function. Compiled with ``jax.jit`` the value becomes a constant of the
program, so ``optax.sgd(0.05)`` is a new program and a new compilation (about 2 s for a small
MLP on a CPU), although only a number changed.

:func:`lift` separates a transformation into its *structure* — the code of every closure and
every closed-over value that is not a floating-point number — and its *floats*. Two
transformations of the same kind (``optax.sgd(0.1)`` and ``optax.sgd(0.05, ...)`` with the same
options; ``optax.adam`` with other betas; a schedule with another peak) have equal structure
keys, and ``rebuild(values)`` makes the transformation again with ``values`` — traced scalars
inside ``jit`` — in place of the floats. The training engine caches its compiled programs by
the structure key, so a new optimizer object of the same kind reuses the program.

What is lifted: Python floats and NumPy/JAX floating-point scalars found in closure cells,
default arguments, ``functools.partial`` arguments, tuples, lists, dicts and ``NamedTuple``\ s
reachable from the transformation. Integers, booleans, strings, arrays with more than one
element and any other object stay part of the structure (objects by identity), because Python
code may branch on them or use them as shapes. A transformation that branches on a float in
Python cannot be traced with the float as an input: :func:`traceable` detects that and the
engine then compiles the transformation as it is.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = ["Lifted", "lift", "traceable"]

_MAX_DEPTH = 64


class Lifted(NamedTuple):
    """A transformation split into a hashable structure ``key`` and its floating-point ``values``.

    ``rebuild(values)`` returns the transformation with ``values`` in place of the floats.
    """

    key: Any
    values: tuple[float, ...]
    rebuild: Callable[[Sequence[Any]], Any]


def _is_float(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, (float, np.floating)):
        return True
    if isinstance(x, (np.ndarray, jax.Array)) and x.ndim == 0:
        return bool(np.issubdtype(x.dtype, np.floating))
    return False


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


class _Walker:
    """One traversal: the structure key, the floats in order, and a rebuild function."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.active: set[int] = set()

    def walk(self, x: Any, depth: int = 0) -> tuple[Any, Callable[[list], Any]]:
        """Return ``(key, make)`` where ``make(values_iterator)`` rebuilds ``x``."""
        if _is_float(x):
            self.values.append(float(np.asarray(x)))
            return ("float",), lambda it: next(it)
        if x is None or isinstance(x, (bool, int, str, bytes, np.integer, np.bool_)):
            return ("const", type(x).__name__, x), lambda it: x
        if depth > _MAX_DEPTH or id(x) in self.active:
            return ("object", id(x)), lambda it: x
        self.active.add(id(x))
        try:
            return self._walk_container(x, depth + 1)
        finally:
            self.active.discard(id(x))

    def _walk_container(self, x: Any, depth: int) -> tuple[Any, Callable[[list], Any]]:
        if isinstance(x, types.FunctionType):
            return self._walk_function(x, depth)
        if isinstance(x, functools.partial):
            fkey, fmake = self.walk(x.func, depth)
            akey, amake = self.walk(tuple(x.args), depth)
            kkey, kmake = self.walk(dict(x.keywords), depth)
            return ("partial", fkey, akey, kkey), lambda it: functools.partial(fmake(it), *amake(it), **kmake(it))
        if _is_namedtuple(x) or type(x) in (tuple, list):
            parts = [self.walk(v, depth) for v in x]
            keys = tuple(k for k, _ in parts)
            cls = type(x)

            def make(it, parts=parts, cls=cls):
                items = [m(it) for _, m in parts]
                return cls(*items) if _is_namedtuple(x) else cls(items)

            return ("seq", cls, keys), make
        if type(x) is dict:
            names = list(x)
            parts = [self.walk(x[n], depth) for n in names]
            return ("dict", tuple(names), tuple(k for k, _ in parts)), lambda it: {
                n: m(it) for n, (_, m) in zip(names, parts)}
        return ("object", id(x)), lambda it: x

    def _walk_function(self, f: types.FunctionType, depth: int) -> tuple[Any, Callable[[list], Any]]:
        cells = f.__closure__ or ()
        cell_parts = []
        for cell in cells:
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell (a name assigned after the closure was made)
                cell_parts.append((("empty",), None))
                continue
            cell_parts.append(self.walk(content, depth))
        dkey, dmake = self.walk(f.__defaults__, depth)
        kkey, kmake = self.walk(f.__kwdefaults__, depth)
        key = ("function", f.__code__, tuple(k for k, _ in cell_parts), dkey, kkey)

        def make(it):
            closure = tuple(
                types.CellType() if m is None else types.CellType(m(it)) for _, m in cell_parts
            ) or None
            g = types.FunctionType(f.__code__, f.__globals__, f.__name__, dmake(it), closure)
            g.__kwdefaults__ = kmake(it)
            g.__qualname__, g.__module__, g.__doc__ = f.__qualname__, f.__module__, f.__doc__
            g.__dict__.update(f.__dict__)
            return g

        return key, make


def lift(tx: Any) -> Lifted:
    """Split ``tx`` (an Optax transformation, or anything made of closures) into structure and floats.

    >>> a, b = lift(optax.sgd(0.1)), lift(optax.sgd(0.05))
    >>> a.key == b.key, a.values, b.values
    (True, (0.1,), (0.05,))
    """
    walker = _Walker()
    key, make = walker.walk(tx)
    values = tuple(walker.values)
    n = len(values)

    def rebuild(new_values: Sequence[Any]) -> Any:
        if len(new_values) != n:
            raise ValueError(f"rebuild needs {n} values, got {len(new_values)}")
        it = iter(new_values)
        return make(it)

    return Lifted(key, values, rebuild)


def traceable(lifted: Lifted, probe: Callable[[Any], Any]) -> bool:
    """Whether ``probe(lifted.rebuild(tracers))`` traces with the floats as abstract inputs.

    ``probe`` receives the rebuilt transformation and runs what the compiled program will run
    (``init`` and ``update`` on example arguments). A transformation that branches on one of its
    floats in Python raises a concretization error here and is compiled as it is instead.
    """
    def run(values):
        return probe(lifted.rebuild(values))

    try:
        jax.eval_shape(run, [np.float32(v) for v in lifted.values])
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
            jax.errors.TracerIntegerConversionError, TypeError):
        return False
    return True
