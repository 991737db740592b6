"""Coursework round trip: every reference answer passes its check, every student stub fails it,
and the student notebooks carry no solutions and no outputs."""

import re
import types
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from sgdlab.coursework import BEGIN, Case, CheckResult, check_function, nbgrader, student

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


# ------------------------------------------------------------------------- the nbgrader export
# (tests/test_nbgrader.py runs the real nbgrader on it)

NBGRADER_KEYS = {"schema_version", "grade", "locked", "solution", "grade_id", "points"}


def synthetic_chapter():
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('import sys\nif "google.colab" in sys.modules:\n    pass', metadata={"tags": ["remove-cell"]}),
        nbformat.v4.new_code_cell("import types", metadata={"tags": ["setup"]}),
        nbformat.v4.new_markdown_cell("Text.\n\n```{exercise} Name\n:label: ex-09-f\nDo it.\n```\n\n```{solution-start} ex-09-f\n:class: dropdown\n```\n\nHidden."),
        nbformat.v4.new_code_cell("def f(x):\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION"),
        nbformat.v4.new_markdown_cell("```{solution-end}\n```"),
        nbformat.v4.new_code_cell("ch09.check_f(f)"),
        nbformat.v4.new_code_cell("f(2)  # an experiment, left to the student"),
    ])


def test_nbgrader_source_notebook_rules():
    out = nbgrader.source_notebook(synthetic_chapter(), points=2.0, chapter="09-x")
    meta = [c.metadata.get("nbgrader") for c in out.cells]
    sources = [c.source for c in out.cells]
    assert "Hidden" not in sources[2] and meta[2] == {
        "grade": False, "grade_id": "ex-09-f-statement", "locked": True, "schema_version": 3, "solution": False}
    assert meta[0]["grade_id"] == "09-x-install" and meta[1]["grade_id"] == "09-x-setup"
    assert meta[0]["locked"] and meta[1]["locked"] and not (meta[0]["grade"] or meta[1]["solution"])
    assert meta[3] == {"grade": False, "grade_id": "ex-09-f", "locked": False, "schema_version": 3, "solution": True}
    assert sources[3] == "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"
    assert meta[4] == {"grade": True, "grade_id": "ex-09-f-check", "locked": True, "points": 2.0,
                       "schema_version": 3, "solution": False}
    assert meta[5] is None and sources[5].startswith("f(2)")

    def run_test(passed):
        check = CheckResult("Exercise 9.1", passed, ["case 1: expected 2, got 3"])
        exec(compile(sources[4], "<test>", "exec"), {"ch09": types.SimpleNamespace(check_f=lambda fn: check), "f": None})

    run_test(True)  # the autograder test raises exactly when the check fails, with its feedback
    with pytest.raises(AssertionError, match="case 1: expected 2, got 3"):
        run_test(False)


def test_nbgrader_source_notebook_rejects():
    nb = synthetic_chapter()
    with pytest.raises(ValueError, match="points"):
        nbgrader.source_notebook(nb, points=0)
    no_check = nbformat.v4.new_notebook(cells=nb.cells[:5])
    with pytest.raises(ValueError, match="no check cell"):
        nbgrader.source_notebook(no_check)
    no_label = nbformat.v4.new_notebook(cells=nb.cells[:2] + nb.cells[3:])
    with pytest.raises(ValueError, match="label"):
        nbgrader.source_notebook(no_label)
    with pytest.raises(ValueError, match="one call"):
        nbgrader.autograder_test("result = ch09.check_f(f)")


def test_nbgrader_build_every_chapter(tmp_path):
    written = nbgrader.build(ROOT / "chapters", tmp_path, points=1.5)
    assert written == [tmp_path / "source" / md.stem / f"{md.stem}.ipynb" for md in CHAPTERS]
    for md, path in zip(CHAPTERS, written):
        cells = nbformat.read(path, as_version=4).cells
        meta = [c.metadata.get("nbgrader") for c in cells]
        marked = [m for m in meta if m]
        assert all(set(m) <= NBGRADER_KEYS and m["schema_version"] == 3 and re.fullmatch(r"[A-Za-z0-9_\-]+", m["grade_id"])
                   for m in marked), f"{md.name}: not nbgrader's metadata schema 3: {marked}"
        assert len({m["grade_id"] for m in marked}) == len(marked), f"{md.name}: duplicate grade ids"
        kinds = [("answer" if m["solution"] else "test") for m in marked if m["solution"] or m["grade"]]
        assert kinds == ["answer", "test"] * len(exercises(md)), f"{md.name}: answers and tests do not alternate: {kinds}"
        assert all(m["points"] == 1.5 for m in marked if m["grade"])
        for cell, m in zip(cells, meta):  # nbgrader refuses solution delimiters outside solution cells
            if "BEGIN SOLUTION" in cell.source or "END SOLUTION" in cell.source:
                assert m and m["solution"], f"{md.name}: solution markers in a cell that is no answer:\n{cell.source}"
        assert all(not c.get("outputs") for c in cells if c.cell_type == "code")


def test_cli_writes_nbgrader_sources(tmp_path, capsys):
    from sgdlab.coursework.__main__ import main

    assert main(["student", "--format", "nbgrader", "--chapters", str(ROOT / "chapters"), "--out", str(tmp_path)]) == 0
    assert sorted(p.parent.name for p in tmp_path.glob("source/*/*.ipynb")) == [md.stem for md in CHAPTERS]
    assert "generate_assignment" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["student", "--format", "otter", "--out", str(tmp_path)])


def test_instructors_page_follows_the_toc():
    toc_text = (ROOT / "_toc.yml").read_text()
    toc = yaml.safe_load(toc_text)
    listed = [c["file"] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("chapters/")]
    planned = re.findall(r"^\s*#\s*- file: (chapters/\S+)", toc_text, re.M)
    page = (ROOT / "pages" / "instructors.md").read_text()
    linked = re.findall(r"\{doc\}`\.\./(chapters/[^`]+)`", page)
    assert linked == listed, (f"pages/instructors.md links {linked}, _toc.yml lists {listed}: make the row of each "
                              "chapter in _toc.yml a {doc} link marked 'in the book', the others plain titles marked 'planned'")
    rows = re.findall(r"^\| (\d+) \|.*\| (in the book|planned) \|$", page, re.M)
    assert [int(week) for week, _ in rows] == list(range(1, len(listed) + len(planned) + 1))
    assert [status for _, status in rows].count("planned") == len(planned), "a planned chapter has landed or vanished"


def test_chapter1_checks_refuse_the_package_and_catch_wrong_answers():
    import numpy as np

    from sgdlab import noise
    from sgdlab.coursework import ch01

    refused = ch01.check_minibatch_variance(lambda g, b, r: noise.minibatch_variance(g, b, replace=r))
    assert not refused and "package" in repr(refused)

    def no_correction(grads, b, replace):   # forgets the finite-population factor
        grads = np.asarray(grads, float)
        return np.mean(np.sum((grads - grads.mean(0)) ** 2, axis=1)) / b

    assert not ch01.check_minibatch_variance(no_correction)

    def ignores_batch_size(key, grads, b, n_draws):   # always measures single examples
        import jax
        idx = jax.random.randint(key, (n_draws,), 0, grads.shape[0])
        return np.sum((np.asarray(grads)[np.asarray(idx)] - grads.mean(0)) ** 2, axis=1)

    assert not ch01.check_noise_measurement(ignores_batch_size)


def test_chapter9_checks_refuse_optax_sam_and_catch_wrong_answers():
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from sgdlab.coursework import ch09

    def with_optax(grad_fn, w, learning_rate, rho):
        tx = optax.contrib.sam(optax.sgd(learning_rate), optax.chain(optax.contrib.normalize(), optax.sgd(rho)),
                               opaque_mode=True)
        updates, _ = tx.update(grad_fn(w), tx.init(w), w, grad_fn=lambda p, _: grad_fn(p))
        return w + updates

    refused = ch09.check_sam_step(with_optax)
    assert not refused and "package" in repr(refused)

    def unnormalised(grad_fn, w, learning_rate, rho):   # ascends by rho g instead of rho g / |g|
        w = jnp.asarray(w)
        return w - learning_rate * grad_fn(w + rho * grad_fn(w))

    def plain_sgd(grad_fn, w, learning_rate, rho):
        return jnp.asarray(w) - learning_rate * grad_fn(jnp.asarray(w))

    assert not ch09.check_sam_step(unnormalised)
    assert not ch09.check_sam_step(plain_sgd)

    def simulate(key, mu, sigma, eta, w0, steps, n_chains):
        def step(w, k):
            w = w - eta * (mu * w + sigma * jax.random.normal(k, w.shape))
            return w, w
        _, path = jax.lax.scan(step, jnp.full(n_chains, w0), jax.random.split(key, steps))
        return np.asarray(path)                      # w_1 .. w_T, one column per chain

    def last_iterate(key, mu, sigma, eta, w0, start, steps, n_chains):
        losses_last = 0.5 * mu * simulate(key, mu, sigma, eta, w0, steps, n_chains)[-1] ** 2
        return losses_last.mean(), losses_last.std(ddof=1) / np.sqrt(n_chains)

    def ignores_start(key, mu, sigma, eta, w0, start, steps, n_chains):
        losses_all = 0.5 * mu * simulate(key, mu, sigma, eta, w0, steps, n_chains).mean(0) ** 2
        return losses_all.mean(), losses_all.std(ddof=1) / np.sqrt(n_chains)

    def from_start(key, mu, sigma, eta, w0, start, steps, n_chains):   # an independent correct answer
        avg = simulate(key, mu, sigma, eta, w0, steps, n_chains)[start - 1:].mean(0)
        losses_avg = 0.5 * mu * avg**2
        return losses_avg.mean(), losses_avg.std(ddof=1) / np.sqrt(n_chains)

    assert not ch09.check_swa_loss(last_iterate)
    assert not ch09.check_swa_loss(ignores_start)
    assert ch09.check_swa_loss(from_start)


def test_judge_measurement_checks_the_standard_error_and_the_mean():
    from sgdlab.coursework import judge_measurement

    assert judge_measurement("a", 1.01, 0.01, 1.0, 0.01)[0]
    ok, line = judge_measurement("a", 1.0, 0.1, 1.0, 0.01)   # an SE without its 1/sqrt(n)
    assert not ok and "implausible" in line
    ok, line = judge_measurement("a", 1.05, 0.01, 1.0, 0.01)  # five standard errors off
    assert not ok and "exact value is 1" in line
