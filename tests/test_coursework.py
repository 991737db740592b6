"""Coursework round trip: every reference answer passes its check, every student stub fails it,
and the student notebooks carry no solutions and no outputs."""

from pathlib import Path

import jupytext
import nbformat
import pytest

from sgdlab.coursework import BEGIN, Case, check_function, student

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]-*.md"))


def exercises(md: Path):
    """(setup source, answer source, check source) for each coding exercise of a chapter."""
    cells = [c for c in jupytext.read(md).cells if c.cell_type == "code"]
    setup = [c.source for c in cells if "setup" in c.metadata.get("tags", [])]
    assert len(setup) == 1, f"{md.name}: exactly one code cell must be tagged setup"
    found = []
    for i, cell in enumerate(cells):
        if student.has_solution(cell.source):
            check = next((c.source for c in cells[i + 1:] if ".check_" in c.source), None)
            assert check is not None, f"{md.name}: no check cell follows the answer\n{cell.source}"
            found.append((setup[0], cell.source, check))
    return found


CASES = [(md.name, k, ex) for md in CHAPTERS for k, ex in enumerate(exercises(md))]


def run(setup, answer, check):
    ns: dict = {}
    exec(compile(setup, "<setup>", "exec"), ns)
    exec(compile(answer, "<answer>", "exec"), ns)
    return eval(compile(check.strip(), "<check>", "eval"), ns)


def test_every_chapter_has_two_coding_exercises():
    for md in CHAPTERS:
        assert len(exercises(md)) >= 2, f"{md.name} has fewer than two checked coding exercises"


@pytest.mark.parametrize("chapter, k, ex", CASES, ids=[f"{c}-{k}" for c, k, _ in CASES])
def test_reference_passes_and_stub_fails(chapter, k, ex, monkeypatch):
    monkeypatch.setenv("SGDLAB_SCALE", "smoke")
    setup, answer, check = ex
    result = run(setup, answer, check)
    assert result, f"reference answer fails its check:\n{result!r}"
    stub = run(setup, student.stub_solution(answer), check)
    assert not stub, "the student stub passes its check"
    assert "not implemented" in repr(stub)


def test_student_build(tmp_path):
    written = student.build(ROOT / "chapters", tmp_path)
    assert [p.name for p in written] == [md.with_suffix(".ipynb").name for md in CHAPTERS]
    for path in written:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "solution-start" not in text and "solution-end" not in text and BEGIN not in text
        assert "NotImplementedError" in text
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        assert "google.colab" in nb.cells[[c.cell_type for c in nb.cells].index("code")].source


def test_student_notebook_rules():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("Intro\n\n```{exercise}\n:label: e\nDo it.\n```\n\n```{solution-start} e\n:class: dropdown\n```\n\nHidden prose."),
        nbformat.v4.new_code_cell("def f(x):\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION"),
        nbformat.v4.new_code_cell("print('worked example inside the solution')"),
        nbformat.v4.new_markdown_cell("More hidden.\n\n```{solution-end}\n```\n\nAfter."),
        nbformat.v4.new_markdown_cell("```{solution} e\nshort answer\n```\nKept."),
        nbformat.v4.new_code_cell("check(f)"),
    ])
    out = student.student_notebook(nb)
    sources = [c.source for c in out.cells]
    assert sources[0].startswith("Intro") and "Hidden" not in sources[0] and "{exercise}" in sources[0]
    assert "raise NotImplementedError" in sources[1] and "return x" not in sources[1]
    assert sources[2:] == ["After.", "Kept.", "check(f)"]


def test_stub_solution_rejects_unbalanced_markers():
    with pytest.raises(ValueError, match="END"):
        student.stub_solution("# BEGIN SOLUTION\nx = 1")


def test_check_function_feedback():
    cases = [Case((2,), label="two"), Case((3,), label="three")]
    ok = check_function("demo", lambda x: x * x, lambda x: x**2, cases)
    assert ok and "two: ok" in repr(ok)
    wrong = check_function("demo", lambda x: x + 2, lambda x: x**2, cases)
    assert not wrong and "three: expected 9" in repr(wrong)
    crash = check_function("demo", lambda x: 1 / 0, lambda x: x, cases)
    assert not crash and "ZeroDivisionError" in repr(crash)


def test_cli_writes_notebooks(tmp_path):
    from sgdlab.coursework.__main__ import main

    assert main(["student", "--chapters", str(ROOT / "chapters"), "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.ipynb"))) == len(CHAPTERS)
    with pytest.raises(SystemExit):
        main(["student", "--chapters", str(tmp_path / "missing"), "--out", str(tmp_path)])
