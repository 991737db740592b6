"""Coursework: check functions that give students immediate feedback, and the student build.

A coding exercise in a chapter is a code cell whose answer sits between the markers
``# BEGIN SOLUTION`` and ``# END SOLUTION``, followed (after the gated solution) by a cell
that calls a check from ``sgdlab.coursework.chNN``. :mod:`sgdlab.coursework.student` writes
the students' notebooks, with each marked answer replaced by ``raise NotImplementedError``.

Every check returns a :class:`CheckResult`: truthy when the answer passes, displayed in a
notebook as a short, friendly report of what was tried and what went wrong.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"


@dataclass
class CheckResult:
    """Outcome of a check: ``passed`` and the lines of feedback shown to the student."""

    exercise: str
    passed: bool
    lines: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        head = f"{'✅' if self.passed else '❌'} {self.exercise}: {'passed' if self.passed else 'not yet'}"
        return "\n".join([head, *("   " + line for line in self.lines)])


@dataclass(frozen=True)
class Case:
    """One test input for a student's function, with a description shown in the feedback."""

    args: tuple
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""


def check_function(
    exercise: str,
    student_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    cases: Iterable[Case],
    *,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> CheckResult:
    """Compare ``student_fn`` with ``reference_fn`` on every case (``numpy.allclose`` on the outputs).

    Stops at the first failing case and says which one, what was expected and what came back.
    A ``NotImplementedError`` (the stub of the student notebook) is reported as not started.
    """
    if not callable(student_fn):
        return CheckResult(exercise, False, [f"expected a function, got {type(student_fn).__name__}"])
    lines = []
    for i, case in enumerate(cases, start=1):
        label = case.label or f"case {i}"
        try:
            got = student_fn(*case.args, **case.kwargs)
        except NotImplementedError:
            return CheckResult(exercise, False, ["not implemented yet: replace the `raise NotImplementedError` line with your code"])
        except Exception as exc:  # the student's error, shown to them
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            return CheckResult(exercise, False, [f"{label}: your function raised {tb}"])
        want = reference_fn(*case.args, **case.kwargs)
        got_arr, want_arr = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
        if got_arr.shape != want_arr.shape:
            return CheckResult(exercise, False, lines + [f"{label}: expected shape {want_arr.shape}, got {got_arr.shape}"])
        if not np.allclose(got_arr, want_arr, rtol=rtol, atol=atol):
            return CheckResult(exercise, False, lines + [f"{label}: expected {_short(want_arr)}, got {_short(got_arr)}"])
        lines.append(f"{label}: ok")
    return CheckResult(exercise, True, lines)


def _names_used(code: Any) -> set[str]:
    """Every global, attribute and variable name a code object (and the functions inside it) refers to."""
    names = set(code.co_names) | set(code.co_varnames) | set(code.co_freevars)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names_used(const)
    return names


def refuse_package_call(exercise: str, student_fn: Any, *functions: Callable[..., Any]) -> CheckResult | None:
    """A friendly refusal when ``student_fn`` is, or calls, one of the package's ``functions``; else ``None``.

    An exercise asks the student to transcribe a formula; an answer that calls the package
    function computing that very quantity would pass without doing so. The test is by name:
    the student's code (nested functions included) must not refer to any of ``functions``.
    Use it first in a check: ``refused = refuse_package_call(...)``, then
    ``if refused is not None: return refused`` (a refusal is a failed, hence falsy, result).
    """
    code = getattr(student_fn, "__code__", None)
    for fn in functions:
        name = getattr(fn, "__name__", str(fn))
        if student_fn is fn or (code is not None and name in _names_used(code)):
            where = f"{fn.__module__}.{name}" if hasattr(fn, "__module__") else name
            return CheckResult(exercise, False, [
                f"your answer uses `{where}`, the package's own version of this quantity;",
                "write the formula of the text yourself (that is the exercise), then compare with it."])
    return None


def judge_measurement(label: str, mean: float, se: float, expected: float, expected_se: float,
                      *, z: float = 4.0) -> tuple[bool, str]:
    """A student's Monte-Carlo estimate ``mean ± se`` against the exact ``expected`` value: ``(ok, line)``.

    The standard error must be plausible, within a factor 2 of the exact ``expected_se`` (an
    estimate with a wrong or missing :math:`1/\sqrt{n}` fails here), and the mean within ``z``
    standard errors of ``expected``.
    """
    if not 0.5 * expected_se < se < 2 * expected_se:
        return False, f"{label}: standard error {se:.3g} is implausible (expected about {expected_se:.3g})"
    if abs(mean - expected) > z * se:
        return False, f"{label}: measured {mean:.5g} +- {se:.2g}, but the exact value is {expected:.5g}"
    return True, f"{label}: measured {mean:.5g} +- {se:.2g}, exact {expected:.5g}: ok"


def _short(a: np.ndarray) -> str:
    return np.array2string(a, precision=5, threshold=6, edgeitems=2)
