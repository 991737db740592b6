"""nbgrader source notebooks from the chapters: the instructor's version of a graded course.

``python -m sgdlab.coursework student --format nbgrader --chapters chapters --out COURSE``
writes ``COURSE/source/<chapter>/<chapter>.ipynb`` for every chapter; ``nbgrader
generate_assignment <chapter>``, run in ``COURSE``, then writes the released (student)
version into ``COURSE/release/<chapter>/``.

A source notebook is the student notebook of :mod:`sgdlab.coursework.student` (solution prose
removed, outputs cleared) with the answers kept and nbgrader's cell metadata, schema version 3
(nbgrader's documentation, *JSON metadata format*):

* an answer cell (``# BEGIN SOLUTION`` ... ``# END SOLUTION``) becomes an *autograded answer*
  cell (``solution: true``, ``grade_id`` the exercise's label), its answer between
  ``### BEGIN SOLUTION`` / ``### END SOLUTION``, which ``generate_assignment`` replaces by
  ``raise NotImplementedError()``;
* the check cell after it (``chNN.check_...(answer)``) becomes a locked *autograder test* cell
  worth ``points`` that asserts the check's result: a failing check raises, which nbgrader
  scores zero, and the check's feedback is the assertion message;
* the install cell, the setup cell and the markdown cells stating exercises become
  *read-only* cells (locked: ``nbgrader autograde`` restores them from the source), so the
  tests always run on the book's setup.

Every other cell stays editable and ungraded: the experiments are the students' to change.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

from .. import _checks
from . import BEGIN, END
from .student import chapter_sources, read_chapter, stub_solution, student_notebook

SCHEMA_VERSION = 3
NB_BEGIN, NB_END = "### BEGIN SOLUTION", "### END SOLUTION"
_EXERCISE_LABEL = re.compile(r"(?:`{3,}|:{3,})\{exercise\}[^\n]*\n(?:[ \t]*:[^\n]*\n)*?[ \t]*:label:[ \t]*(\S+)")
_CHECK = re.compile(r"\bch\d\d\.check_\w+\(")


def nbgrader_solution(source: str) -> str:
    """The answer cell with nbgrader's delimiters ``### BEGIN SOLUTION`` / ``### END SOLUTION``."""
    stub_solution(source)  # raises ValueError on unbalanced or nested markers
    marks = {BEGIN: NB_BEGIN, END: NB_END}
    lines = []
    for line in source.splitlines():
        stripped = line.strip()
        lines.append(line.replace(stripped, marks[stripped]) if stripped in marks else line)
    return "\n".join(lines)


def autograder_test(check: str) -> str:
    """A check call ``chNN.check_x(answer)`` as an nbgrader test: it raises when the check fails."""
    try:
        body = ast.parse(check.strip()).body
    except SyntaxError as exc:
        raise ValueError(f"check cell is not valid Python: {check!r}") from exc
    if len(body) != 1 or not isinstance(body[0], ast.Expr) or not _CHECK.search(check):
        raise ValueError(f"a check cell must be one call chNN.check_...(answer), got {check!r}")
    return f"feedback = {check.strip()}\nassert feedback, repr(feedback)"


def _meta(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False,
          points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA_VERSION,
            "solution": solution}
    if points is not None:
        meta["points"] = points
    return meta


def source_notebook(nb: nbformat.NotebookNode, points: float = 1.0, chapter: str = "chapter") -> nbformat.NotebookNode:
    """The nbgrader source version of a chapter notebook (a new notebook; ``nb`` is not modified).

    ``points``: what each coded exercise's autograder test is worth. ``chapter`` names the
    install and setup cells (``<chapter>-install``, ``<chapter>-setup``); the other ids are the
    exercise labels, so every ``grade_id`` of the book is unique.
    """
    points = _checks.positive_float("points", points)
    out = student_notebook(nb, answer=nbgrader_solution)
    label, answered, ids, first_code = None, None, set(), True

    def unique(grade_id: str) -> str:
        base, k = grade_id, 2
        while grade_id in ids:
            grade_id, k = f"{base}-{k}", k + 1
        ids.add(grade_id)
        return grade_id

    for cell in out.cells:
        meta = None
        if cell.cell_type == "markdown":
            labels = _EXERCISE_LABEL.findall(cell.source)
            if labels:
                meta = _meta(unique(f"{labels[0]}-statement"), locked=True)
                label = labels[-1]
        elif cell.cell_type == "code":
            tags = cell.metadata.get("tags", [])
            if any(line.strip() == NB_BEGIN for line in cell.source.splitlines()):
                if label is None:
                    raise ValueError(f"an answer cell comes before any {{exercise}} with a :label:\n{cell.source}")
                if answered is not None:
                    raise ValueError(f"the answer of exercise {answered!r} has no check cell after it")
                answered = label
                meta = _meta(unique(label), solution=True)
            elif _CHECK.search(cell.source) and answered is not None:
                cell.source = autograder_test(cell.source)
                meta = _meta(unique(f"{answered}-check"), grade=True, locked=True, points=points)
                answered = None
            elif first_code and "google.colab" in cell.source:
                meta = _meta(unique(f"{chapter}-install"), locked=True)
            elif "setup" in tags:
                meta = _meta(unique(f"{chapter}-setup"), locked=True)
            first_code = False
        if meta is not None:
            cell.metadata["nbgrader"] = meta
    if answered is not None:
        raise ValueError(f"the answer of exercise {answered!r} has no check cell after it")
    return out


def build(chapters: Path, out_dir: Path, points: float = 1.0) -> list[Path]:
    """Write ``out_dir/source/<chapter>/<chapter>.ipynb`` for every chapter ``NN-*.md`` in ``chapters``."""
    sources = chapter_sources(chapters)
    written = []
    for src in sources:
        nb = source_notebook(read_chapter(src), points=points, chapter=src.stem)
        path = Path(out_dir) / "source" / src.stem / (src.stem + ".ipynb")
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        written.append(path)
    return written
