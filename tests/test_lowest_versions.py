"""The package's unit tests pass at the lowest versions code/pyproject.toml allows.

``code/pyproject.toml`` states lower bounds only (Colab ships its own JAX). This test installs
every dependency at exactly its lower bound (``name>=X`` becomes ``name==X``; ``jaxlib`` follows
``jax``) in a virtual environment of the current Python (or ``LOWEST_PYTHON``), installs ``sgdlab`` there in editable mode
without its dependencies, and runs the unit tests of ``tests/`` (everything except the built
book, the browser and the environment tests) in it. The environment is cached in
``~/.cache/noisy-descent/venv-lowest`` and rebuilt only when the dependency list or the Python changes.
The main environment (requirements.txt) runs the same tests at the pinned newest versions.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: this module is collected (and deselected) in that env
    tomllib = None

pytestmark = pytest.mark.lowest_versions

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "noisy-descent"
# outside the repository: a venv inside it would be read by the book build (exclude_patterns)
VENV = Path(os.environ.get("NOISY_LOWEST_VENV", CACHE / "venv-lowest"))
PYPROJECT = ROOT / "code" / "pyproject.toml"
TEST_TOOLS = ["pytest", "pyyaml"]  # what the tests themselves import besides sgdlab's dependencies
# the book's own artefacts (chapter pairs, coursework notebooks, the benchmark script) are checked
# in the main environment; here only the package's unit tests run
NOT_PACKAGE = os.environ.get("NOISY_LOWEST_IGNORE", "test_chapters.py test_coursework.py test_benchmarks.py").split()
UNIT_TESTS = os.environ.get("NOISY_LOWEST_MARKERS", "not built_book and not colab_runtime and not lowest_versions and not nbgrader")


def lower_bounds() -> list[str]:
    """``name==X`` for every ``name>=X`` dependency; fails on a dependency without a lower bound."""
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = []
    for dep in deps:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9A-Za-z.\-+]*)\s*(?:,\s*<[^;]*)?", dep)
        assert m, f"code/pyproject.toml: {dep!r} must state a lower bound `name>=X`"
        name, version = m.groups()
        pins.append(f"{name}=={version}")
        if name.lower() == "jax":
            pins.append(f"jaxlib=={version}")
    return pins


def lowest_python() -> str:
    """The Python of the lowest-versions env: ``LOWEST_PYTHON``, else the one running the tests.

    (Python 3.10, the floor of requires-python, sends pip's resolver into a long backtrack over
    the Jupyter stack that ipywidgets 7 pulls in; the book and Colab use 3.11 and 3.12.)
    """
    return os.environ.get("LOWEST_PYTHON") or sys.executable


def run(cmd, **kw):
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def installer(py: Path) -> list[str]:
    """uv (requirements-test.txt) resolves the old stack in seconds; pip backtracks for many minutes."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if os.path.exists(uv):
        return [uv, "pip", "install", "--python", str(py)]
    return [str(py), "-m", "pip", "install"]


@pytest.fixture(scope="module")
def lowest_env():
    python = lowest_python()
    version = run([python, "-c", "import sys; print(sys.version)"]).stdout.strip()
    pins = lower_bounds()
    key = hashlib.sha256("\n".join([version, *pins, *TEST_TOOLS]).encode()).hexdigest()
    stamp = VENV / ".lowest-inputs"
    py = VENV / "bin" / "python"
    if not (stamp.exists() and stamp.read_text() == key):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(VENV)], check=True)
        proc = run([*installer(py), "-q", *pins, *TEST_TOOLS])
        assert proc.returncode == 0, f"cannot install the lower bounds {pins}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        stamp.write_text(key)
    # sgdlab itself, editable (always the working tree), checked against the pinned versions
    proc = run([*installer(py), "-q", "--no-deps", "-e", str(ROOT / "code")])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check = run([*installer(py)[:2], "check", "--python", str(py)] if "uv" in Path(installer(py)[0]).name
                else [str(py), "-m", "pip", "check"])
    assert check.returncode == 0, f"the lower bounds are inconsistent:\n{check.stdout}{check.stderr}"
    return py, version, pins


def test_lower_bounds_are_installed(lowest_env):
    py, version, pins = lowest_env
    names = [p.split("==")[0] for p in pins]
    code = ("import importlib.metadata as m, json, sys; "
            f"print(json.dumps({{n: m.version(n) for n in {names!r}}}))")
    proc = run([str(py), "-c", code])
    assert proc.returncode == 0, proc.stderr
    import json

    got = json.loads(proc.stdout)
    wrong = {p: got[p.split("==")[0]] for p in pins if got[p.split("==")[0]] != p.split("==")[1]}
    assert not wrong, f"not at the lower bound: {wrong}"
    print(f"\nlowest-versions environment: Python {version.split()[0]}; " + ", ".join(pins))


def test_unit_tests_pass_at_lower_bounds(lowest_env):
    py, version, pins = lowest_env
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "SGDLAB_STATIC"))}
    env.update(VIRTUAL_ENV=str(VENV), PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               MPLBACKEND="Agg")
    proc = subprocess.run(
        [str(py), "-m", "pytest", str(ROOT / "tests"), "-m", UNIT_TESTS, "-q", "-p", "no:cacheprovider",
         *[f"--ignore={ROOT / 'tests' / name}" for name in NOT_PACKAGE], "-W", "ignore::DeprecationWarning",
         "-x" if os.environ.get("NOISY_LOWEST_FAILFAST") else "-ra"],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=int(os.environ.get("NOISY_LOWEST_TIMEOUT", "1800")),
    )
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    print(f"\nunit tests at the lower bounds (Python {version.split()[0]}):\n" + proc.stdout[-1500:])
    assert proc.returncode == 0, f"unit tests fail at the lower bounds {pins}:\n{tail}"
