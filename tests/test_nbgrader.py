"""The nbgrader export works with the real nbgrader (PyPI ``nbgrader``), as an instructor runs it.

1. A virtual environment of the current Python (or ``NBGRADER_PYTHON``) holds ``nbgrader`` at
   ``NBGRADER`` and ``sgdlab``'s dependencies, at the pins of ``requirements.txt`` where they
   co-install with nbgrader. It is cached in ``~/.cache/noisy-descent/venv-nbgrader`` and
   rebuilt only when that pin, ``requirements.txt``, ``code/pyproject.toml`` or the Python
   changes; ``sgdlab`` itself is installed editable from the working tree on every run.
2. ``python -m sgdlab.coursework student --format nbgrader`` writes the course's source
   notebooks, and ``nbgrader generate_assignment`` must release every chapter.
3. ``nbgrader validate`` must pass the source notebooks and fail the released ones on exactly
   their autograder test cells, each failing with the check's "not implemented yet". To keep
   the run short (nbgrader takes ~5 s to start, a kernel with the book's imports ~5 s more),
   one validate command runs two notebooks: the nbgrader cells (install, setup, exercise
   statements, answers, tests) of every chapter in order, from the sources and from the
   releases, at ``SGDLAB_SCALE=smoke``. ``tests/test_coursework.py`` runs each exercise alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.nbgrader

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "noisy-descent"
# outside the repository: a venv inside it would be read by the book build (exclude_patterns)
VENV = Path(os.environ.get("NOISY_NBGRADER_VENV", CACHE / "venv-nbgrader"))
NBGRADER = "nbgrader==0.9.6"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]-*.md"))
TIMEOUT = int(os.environ.get("NOISY_NBGRADER_TIMEOUT", "600"))


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def uv() -> str:
    """uv (requirements-test.txt) resolves the Jupyter stack in seconds."""
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    assert os.path.exists(found), "uv is missing: install requirements.txt (it pins uv)"
    return found


def constraints(tmp: Path) -> Path:
    """requirements.txt's pins as a constraints file (without its -e / -r lines)."""
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
            if re.match(r"^[A-Za-z0-9_.\-]+==", line)]
    path = tmp / "constraints.txt"
    path.write_text("\n".join(pins) + "\n")
    return path


@pytest.fixture(scope="module")
def nbgrader_env(tmp_path_factory):
    python = os.environ.get("NBGRADER_PYTHON") or sys.executable
    version = run([python, "-c", "import sys; print(sys.version)"]).stdout.strip()
    inputs = [version, NBGRADER, (ROOT / "requirements.txt").read_text(), (ROOT / "code" / "pyproject.toml").read_text()]
    key = hashlib.sha256("\n".join(inputs).encode()).hexdigest()
    stamp, py = VENV / ".nbgrader-inputs", VENV / "bin" / "python"
    start = time.perf_counter()
    if not (stamp.exists() and stamp.read_text() == key):
        shutil.rmtree(VENV, ignore_errors=True)
        proc = run([python, "-m", "venv", "--without-pip", str(VENV)])
        assert proc.returncode == 0, proc.stderr
        cons = constraints(tmp_path_factory.mktemp("nbgrader-venv"))
        proc = run([uv(), "pip", "install", "-q", "--python", str(py), NBGRADER, str(ROOT / "code"), "-c", str(cons)])
        assert proc.returncode == 0, f"cannot install {NBGRADER} with sgdlab:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        stamp.write_text(key)
        print(f"\nbuilt {VENV} in {time.perf_counter() - start:.0f} s")
    # sgdlab itself, editable: always the working tree
    proc = run([uv(), "pip", "install", "-q", "--python", str(py), "--no-deps", "-e", str(ROOT / "code")])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return VENV


def env_for(tmp: Path) -> dict[str, str]:
    """nbgrader's own process and kernels: the venv first on PATH, no user Jupyter state."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SGDLAB_", "PYTHON", "VIRTUAL_ENV", "JUPYTER", "IPYTHON", "MPL"))}
    for d in ("jupyter-data", "jupyter-config", "ipython"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    env.update(PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(VENV),
               SGDLAB_SCALE="smoke", SGDLAB_CACHE=str(tmp / "sgdlab-cache"), MPLBACKEND="Agg",
               JUPYTER_DATA_DIR=str(tmp / "jupyter-data"), JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
               IPYTHONDIR=str(tmp / "ipython"), PYTHONDONTWRITEBYTECODE="1")
    return env


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    return run([str(VENV / "bin" / "nbgrader"), *args], cwd=course, env=env_for(course.parent), timeout=TIMEOUT)


@pytest.fixture(scope="module")
def course(nbgrader_env, tmp_path_factory):
    """An nbgrader course folder: the exported source notebooks, every chapter released."""
    course = tmp_path_factory.mktemp("nbgrader") / "course"
    proc = run([str(VENV / "bin" / "python"), "-m", "sgdlab.coursework", "student", "--format", "nbgrader",
                "--chapters", str(ROOT / "chapters"), "--out", str(course)], env=env_for(course.parent))
    assert proc.returncode == 0, proc.stderr
    proc = nbgrader(course, "generate_assignment", "*")  # every chapter, one nbgrader start-up
    assert proc.returncode == 0, f"nbgrader generate_assignment failed:\n{proc.stdout[-3000:]}{proc.stderr[-4000:]}"
    return course


def notebook(course: Path, step: str, stem: str) -> dict:
    """A notebook of the course as JSON, each cell's source joined into one string."""
    nb = json.loads((course / step / stem / f"{stem}.ipynb").read_text())
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"])
    return nb


def graded(nb: dict, kind: str) -> list[dict]:
    """The cells of one nbgrader kind: solution (answers), grade (tests), locked."""
    return [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get(kind)]


def test_generate_assignment_releases_every_chapter(course):
    for md in CHAPTERS:
        src, rel = notebook(course, "source", md.stem), notebook(course, "release", md.stem)
        answers, tests = graded(rel, "solution"), [c for c in graded(rel, "grade") if not c["metadata"]["nbgrader"]["solution"]]
        assert len(answers) >= 2 and len(tests) == len(answers), f"{md.stem}: {len(answers)} answers, {len(tests)} tests"
        assert [c["source"] for c in tests] == [c["source"] for c in graded(src, "grade")], f"{md.stem}: tests changed"
        for cell in answers:
            assert "raise NotImplementedError()" in cell["source"] and "SOLUTION" not in cell["source"], cell["source"]
        for cell in graded(rel, "locked"):  # nbgrader's checksums, with which validate spots edited cells
            assert len(cell["metadata"]["nbgrader"].get("checksum", "")) == 32, cell["metadata"]
        text = "\n".join(c["source"] for c in rel["cells"])
        assert "### BEGIN SOLUTION" not in text and "# BEGIN SOLUTION" not in text, md.stem


def whole_course(course: Path, step: str) -> Path:
    """The nbgrader cells of every chapter, in order, in one notebook (grade ids are unique book-wide).

    What validate needs to judge the tests: each chapter's install and setup cells, exercise
    statements, answers and tests, without the experiments; one kernel for the whole course.
    """
    nbs = [notebook(course, step, md.stem) for md in CHAPTERS]
    cells = [c for nb in nbs for c in nb["cells"] if "nbgrader" in c["metadata"]]
    path = course.parent / "validate" / step / "course.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(nbs[0], cells=cells)))
    return path


def test_validate_passes_the_source_and_fails_the_release(course):
    tests = [c["source"] for md in CHAPTERS for c in graded(notebook(course, "source", md.stem), "grade")]
    src, rel = whole_course(course, "source"), whole_course(course, "release")
    start = time.perf_counter()
    proc = nbgrader(course, "validate", "--Execute.timeout=300", str(src), str(rel))
    seconds = time.perf_counter() - start
    out = proc.stdout
    assert proc.returncode == 0, f"nbgrader validate crashed:\n{out[-3000:]}{proc.stderr[-3000:]}"
    print(f"\nnbgrader validate of {len(CHAPTERS)} chapters' source and released cells in {seconds:.0f} s")
    # one verdict per notebook, in order: "" where it passes, else the number of failed cells
    verdicts = re.findall(r"Success! Your notebook passes all the tests\.|VALIDATION FAILED ON (\d+) CELL\(S\)", out)
    assert len(verdicts) == 2, f"expected two verdicts:\n{out[-4000:]}{proc.stderr[-3000:]}"
    assert verdicts[0] == "", f"the source notebooks fail nbgrader validate:\n{out[-6000:]}"
    released = out.split("VALIDATION FAILED", 1)[1]
    assert verdicts[1] == str(len(tests)), f"the released notebooks should fail all {len(tests)} tests:\n{out[-6000:]}"
    assert released.count("not implemented yet") == len(tests), f"a test fails for another reason:\n{released[-6000:]}"
    for test in tests:  # each chapter's own checks, by name
        name = re.search(r"ch\d\d\.check_\w+", test).group(0)
        assert name in released, f"{name} is not among the failed tests:\n{released[-6000:]}"
