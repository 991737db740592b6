"""Build student notebooks from the chapters: solutions removed, answers stubbed, outputs cleared.

Rules, applied to each chapter's MyST source (read with jupytext):

* the text between ``solution-start`` and ``solution-end`` directives is removed, and so is
  any single ``{solution}`` directive;
* a code cell holding ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` keeps everything outside
  the markers, and the answer between them becomes ``raise NotImplementedError(...)``;
  every other code cell inside a removed solution is dropped;
* all outputs and execution counts are cleared; everything else is kept, including the
  hidden Colab install cell, so a student notebook runs on Colab like the chapter.

:mod:`sgdlab.coursework.nbgrader` applies the same rules but keeps the answers, for nbgrader.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import nbformat

from . import BEGIN, END

_GATED = re.compile(r"(`{3,}|:{3,})\{solution-start\}.*?(`{3,}|:{3,})\{solution-end\}[^\n]*\n\s*(`{3,}|:{3,})", re.S)
_START = re.compile(r"(`{3,}|:{3,})\{solution-start\}")
_END = re.compile(r"(`{3,}|:{3,})\{solution-end\}[^\n]*\n\s*(`{3,}|:{3,})")
_SINGLE = re.compile(r"(?P<fence>`{3,}|:{3,})\{solution\}.*?\n(?P=fence)[ \t]*(\n|$)", re.S)


def stub_solution(source: str, message: str = "write your answer here") -> str:
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a ``NotImplementedError``."""
    out, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError("nested '# BEGIN SOLUTION' marker")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}raise NotImplementedError({message!r})")
        elif stripped == END:
            if not inside:
                raise ValueError("'# END SOLUTION' without a matching '# BEGIN SOLUTION'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("'# BEGIN SOLUTION' without a matching '# END SOLUTION'")
    return "\n".join(out)


def has_solution(source: str) -> bool:
    """True when a code cell holds a marked answer."""
    return any(line.strip() == BEGIN for line in source.splitlines())


def student_notebook(
    nb: nbformat.NotebookNode, answer: Callable[[str], str] = stub_solution
) -> nbformat.NotebookNode:
    """The student version of a chapter notebook (a new notebook; ``nb`` is not modified).

    ``answer`` rewrites the source of each cell that holds a marked answer (default: the stub).
    """
    out = nbformat.v4.new_notebook(metadata=dict(nb.metadata))
    inside = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = _SINGLE.sub("", _GATED.sub("", cell.source))
            if inside:
                m = _END.search(text)
                if not m:
                    continue
                text, inside = text[m.end():], False
            m = _START.search(text)
            if m:
                text, inside = text[: m.start()], True
            if text.strip():
                out.cells.append(nbformat.v4.new_markdown_cell(text.strip("\n"), metadata=dict(cell.metadata)))
        elif cell.cell_type == "code":
            if has_solution(cell.source):
                out.cells.append(nbformat.v4.new_code_cell(answer(cell.source), metadata=dict(cell.metadata)))
            elif not inside:
                out.cells.append(nbformat.v4.new_code_cell(cell.source, metadata=dict(cell.metadata)))
        else:
            out.cells.append(cell)
    if inside:
        raise ValueError("a solution-start directive has no matching solution-end")
    return out


def chapter_sources(chapters: Path) -> list[Path]:
    """The chapter sources ``NN-*.md`` of the folder ``chapters``, in order."""
    chapters = Path(chapters)
    if not chapters.is_dir():
        raise ValueError(f"chapters={str(chapters)!r} is not a directory")
    sources = sorted(chapters.glob("[0-9][0-9]-*.md"))
    if not sources:
        raise ValueError(f"chapters={str(chapters)!r} holds no chapter files NN-name.md")
    return sources


def read_chapter(src: Path) -> nbformat.NotebookNode:
    """A chapter's MyST source as a notebook, without jupytext's pairing metadata."""
    import jupytext

    nb = jupytext.read(src)
    nb.metadata.pop("jupytext", None)
    return nb


def build(chapters: Path, out_dir: Path) -> list[Path]:
    """Write the student notebook of every chapter ``NN-*.md`` in ``chapters`` into ``out_dir``."""
    sources = chapter_sources(chapters)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        path = out_dir / (src.stem + ".ipynb")
        nbformat.write(student_notebook(read_chapter(src)), path)
        written.append(path)
    return written
