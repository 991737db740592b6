"""Every chapter runs in a Colab-like runtime, installed the way its hidden install cell does it.

1. A virtual environment holds only what Colab preinstalls for this book
   (``tools/colab-runtime.txt``: jax, flax, optax, numpy, scipy, matplotlib, ipywidgets, tqdm,
   ipykernel at the versions of Colab's 2026 runtime, with Python 3.13 when it is available)
   plus ``nbclient`` to execute (``tools/colab_execute.py``). It is cached in ``~/.cache/noisy-descent/venv-colab`` and rebuilt only when that file or the Python
   changes; before each run anything installed since (sgdlab and its own dependencies) is removed.
2. The repository's working tree (tracked and new files, not ignored ones) is committed to a
   throw-away git repository on branch ``main``, and the chapter's real install cell is run in
   a kernel with a stand-in ``google.colab`` module, its GitHub URL replaced by that repository's
   ``git+file://`` URL (or ``NOISY_COLAB_INSTALL_URL``): ``%pip install -q "sgdlab @ git+...@main#subdirectory=code"``.
3. The install must leave every preinstalled Colab package at its version.
4. Each ``chapters/NN-*.ipynb`` is copied alone into a temporary directory outside the
   repository and executed there at ``SGDLAB_SCALE=smoke`` without ``SGDLAB_STATIC``: explorers
   run live (ipywidgets) and must not fail headless; nothing may need the repository, ``data/``
   beside the notebook, or a package of the book's build that Colab lacks.
"""

from __future__ import annotations

import glob
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
import yaml

pytestmark = pytest.mark.colab_runtime

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "noisy-descent"
# outside the repository: a venv inside it would be read by the book build (exclude_patterns)
VENV = Path(os.environ.get("NOISY_COLAB_VENV", CACHE / "venv-colab"))
RUNTIME = ROOT / "tools" / "colab-runtime.txt"
EXECUTOR = ROOT / "tools" / "colab_execute.py"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]-*.ipynb"))
NOTEBOOK_TIMEOUT = int(os.environ.get("NOISY_COLAB_NOTEBOOK_TIMEOUT", "900"))


COLAB_PY = "3.13"  # Colab's Python of 2026


def colab_python() -> str:
    """Colab runs Python 3.13: use one when this machine has it, else the current Python."""
    if os.environ.get("COLAB_PYTHON"):
        return os.environ["COLAB_PYTHON"]
    candidates = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{COLAB_PY}*/bin/python{COLAB_PY}")))
    candidates += [shutil.which(f"python{COLAB_PY}")] + sorted(glob.glob(f"/usr/bin/python{COLAB_PY}"))
    for python in filter(None, candidates):
        ok = subprocess.run([python, "-c", "import venv, ensurepip"], capture_output=True).returncode == 0
        if ok:
            return python
    return sys.executable


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def pip(*args) -> subprocess.CompletedProcess:
    return run([str(VENV / "bin" / "python"), "-m", "pip", *args])


def installed_versions() -> dict[str, str]:
    rows = json.loads(pip("list", "--format=json").stdout)
    return {canon(r["name"]): r["version"] for r in rows}


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_pins() -> dict[str, str]:
    pins = {}
    for line in RUNTIME.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canon(name)] = version.strip()
    return pins


def repository_install() -> tuple[str, str]:
    """(repository git URL with branch, the %pip line every chapter's install cell must hold)."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    url = f"git+{repo['url'].rstrip('/')}@{repo['branch']}"
    return url, f'%pip install -q "sgdlab @ {url}#subdirectory=code"'


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def colab_env():
    """The cached Colab-like venv, restored to exactly what Colab preinstalls."""
    python = colab_python()
    version = run([python, "-c", "import sys; print(sys.version)"]).stdout.strip()
    key = hashlib.sha256(RUNTIME.read_bytes() + version.encode()).hexdigest()
    stamp, base = VENV / ".colab-inputs", VENV / ".colab-base.json"
    if not (stamp.exists() and stamp.read_text() == key and base.exists()):
        start = time.perf_counter()
        shutil.rmtree(VENV, ignore_errors=True)
        run([python, "-m", "venv", str(VENV)])
        uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
        if os.path.exists(uv):  # same packages as pip would install, resolved in seconds
            run([uv, "pip", "install", "-q", "--python", str(VENV / "bin" / "python"), "-r", str(RUNTIME)])
        else:
            pip("install", "-q", "-r", str(RUNTIME))
        base.write_text(json.dumps(installed_versions()))
        stamp.write_text(key)
        print(f"\nbuilt {VENV} (Python {version.split()[0]}) in {time.perf_counter() - start:.0f} s")
    else:  # drop what an earlier run installed (sgdlab and its extra dependencies)
        extra = sorted(set(installed_versions()) - set(json.loads(base.read_text())))
        if extra:
            pip("uninstall", "-y", "-q", *extra)
    return VENV


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("colab")


@pytest.fixture(scope="module")
def source_url(work) -> str:
    """A git URL serving the working tree on branch main (CI's clean checkout: exactly HEAD)."""
    if os.environ.get("NOISY_COLAB_INSTALL_URL"):
        return os.environ["NOISY_COLAB_INSTALL_URL"]
    src = work / "repo"
    files = run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "code"]).stdout
    for rel in filter(None, files.split("\0")):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    git = ["git", "-C", str(src), "-c", "user.name=noisy-test", "-c", "user.email=noisy-test@localhost",
           "-c", "commit.gpgsign=false"]
    run(["git", "init", "-q", "-b", "main", str(src)])
    run([*git, "add", "-A"])
    run([*git, "commit", "-q", "-m", "working tree snapshot for the Colab runtime test"])
    return f"git+{src.as_uri()}@main"


def kernel_env(tmp: Path) -> dict[str, str]:
    """The environment of a fresh Colab runtime: no book settings, no repository on any path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SGDLAB_", "PYTHON", "VIRTUAL_ENV", "JUPYTER", "IPYTHON", "MPL", "CONDA"))}
    for d in ("home-cache", "jupyter-data", "jupyter-config", "ipython"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    env.update(
        PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(VENV),
        SGDLAB_SCALE="smoke",
        SGDLAB_CACHE=str(tmp / "home-cache" / "sgdlab"),
        JUPYTER_DATA_DIR=str(tmp / "jupyter-data"),
        JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
        IPYTHONDIR=str(tmp / "ipython"),
        MPLCONFIGDIR=str(VENV / ".mplconfig"),  # Colab ships a built font cache; build ours once
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def execute(notebook: Path, tmp: Path, *extra: str) -> tuple[dict, dict]:
    """Run the notebook from ``tmp`` in the Colab venv; return (summary, executed notebook)."""
    out = tmp / ("executed-" + notebook.name)
    proc = subprocess.run(
        [str(VENV / "bin" / "python"), str(EXECUTOR), str(notebook), "--out", str(out), "--cwd", str(tmp), *extra],
        cwd=tmp, env=kernel_env(tmp), text=True, capture_output=True, timeout=NOTEBOOK_TIMEOUT,
    )
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {
        "status": "error", "error": proc.stdout[-3000:] + proc.stderr[-3000:], "seconds": None}
    executed = json.loads(out.read_text()) if out.exists() else {"cells": []}
    return summary, executed


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def failure_report(summary: dict, executed: dict) -> str:
    """The failing cell, its error and the end of its traceback, without terminal colours."""
    for cell, tags, out in outputs(executed):
        if out.get("output_type") == "error" and "raises-exception" not in tags:
            tb = ANSI.sub("", "\n".join(out.get("traceback", [])))
            src = "".join(cell["source"])
            return (f"cell:\n{src[:800]}\n---\n{out.get('ename')}: {out.get('evalue')}\n"
                    f"--- end of traceback:\n{tb[-2500:]}")
    return ANSI.sub("", summary.get("error") or "")[-4000:]


def outputs(nb: dict):
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            tags = cell.get("metadata", {}).get("tags", [])
            for out in cell.get("outputs", []):
                yield cell, tags, out


def text_of(out: dict) -> str:
    text = out.get("text", "")
    return "".join(text) if isinstance(text, list) else text


@pytest.fixture(scope="module")
def installed(colab_env, source_url, work):
    """Run the hidden install cell as on Colab, in a kernel of the Colab venv."""
    if not CHAPTERS:
        pytest.skip("no chapters/NN-*.ipynb yet")
    github_url, _ = repository_install()
    tmp = work / "install"
    tmp.mkdir()
    nb = json.loads(CHAPTERS[0].read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    check = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source":
             "import json, sys, sgdlab\nprint(json.dumps({'file': sgdlab.__file__, 'python': sys.executable}))"}
    probe = dict(nb, cells=[first, check])
    path = tmp / "install-cell.ipynb"
    path.write_text(json.dumps(probe))
    summary, executed = execute(path, tmp, "--fake-colab-install", github_url, source_url)
    assert summary["status"] == "ok", f"the install cell failed on the Colab-like runtime:\n{failure_report(summary, executed)}"
    printed = [text_of(o) for _, _, o in outputs(executed) if o.get("name") == "stdout" and "{" in text_of(o)]
    info = json.loads(printed[-1].strip().splitlines()[-1])
    info["seconds"] = summary["seconds"]
    print(f"\ninstall cell: {summary['seconds']} s; sgdlab at {info['file']}")
    return info


# -------------------------------------------------------------------------------------- tests


def test_every_chapter_has_the_colab_install_cell():
    _, line = repository_install()
    for nb_path in CHAPTERS:
        nb = json.loads(nb_path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        src = "".join(code[0]["source"]) if code else ""
        assert line in src and 'if "google.colab" in sys.modules:' in src, (
            f"{nb_path.name}: the first code cell must be the Colab install cell with {line!r} (run `make sync`)")


def test_lower_bounds_are_below_colab():
    """sgdlab may not ask for more than Colab ships, or its install would replace Colab's packages."""
    import tomllib

    from packaging.version import Version

    deps = tomllib.loads((ROOT / "code" / "pyproject.toml").read_text())["project"]["dependencies"]
    pins, above = runtime_pins(), {}
    for dep in deps:
        name, _, bound = dep.partition(">=")
        colab = pins.get(canon(name.strip()))
        if colab and Version(bound.split(",")[0].strip()) > Version(colab):
            above[name.strip()] = f">={bound.strip()} but Colab ships {colab}"
    assert not above, f"code/pyproject.toml asks for more than Colab's runtime: {above}"


def test_install_cell_installs_sgdlab_outside_the_repository(installed):
    assert Path(installed["python"]).is_relative_to(VENV), installed
    file = Path(installed["file"]).resolve()
    assert not file.is_relative_to((ROOT / "code").resolve()), (
        f"sgdlab was imported from the repository ({file}), not from the installed package")
    assert file.is_relative_to(VENV.resolve()) and "site-packages" in file.parts, file


def test_install_cell_leaves_colab_packages_alone(installed):
    now = installed_versions()
    changed = {name: f"{want} -> {now.get(name, 'removed')}" for name, want in runtime_pins().items()
               if now.get(name) != want}
    assert not changed, f"installing sgdlab replaced Colab's own packages: {changed} (loosen code/pyproject.toml)"


@pytest.mark.parametrize("chapter", CHAPTERS or [None], ids=lambda p: p.stem if p else "no-chapters")
def test_chapter_runs_on_colab(installed, chapter, tmp_path):
    if chapter is None:
        pytest.skip("no chapters yet")
    nb_copy = tmp_path / chapter.name
    shutil.copy2(chapter, nb_copy)  # alone: no data/, no repository next to it
    summary, executed = execute(nb_copy, tmp_path)
    print(f"\n{chapter.name}: {summary['status']} in {summary['seconds']} s (SGDLAB_SCALE=smoke, live widgets)")
    assert summary["status"] == "ok", f"{chapter.name} fails on the Colab-like runtime:\n{failure_report(summary, executed)}"
    problems, widget_views = [], 0
    for cell, tags, out in outputs(executed):
        if out.get("output_type") == "error" and "raises-exception" not in tags:
            problems.append(f"error output: {out.get('ename')}: {out.get('evalue')}")
        if out.get("name") == "stderr" and "Traceback" in text_of(out) and "raises-exception" not in tags:
            problems.append(f"traceback on stderr: {text_of(out)[-500:]}")
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
            widget_views += 1
    source = "".join("".join(c["source"]) for c in executed["cells"] if c["cell_type"] == "code")
    if "explorer(" in source and widget_views == 0:
        problems.append("the chapter calls widgets.explorer but shows no live widget (is SGDLAB_STATIC leaking?)")
    assert not problems, f"{chapter.name}:\n  " + "\n  ".join(problems)
