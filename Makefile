# Noisy Descent: `make book` builds the HTML book, `make test` runs every check.
# Both create the virtual environment .venv from requirements.txt when it is missing or stale.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv book test sync clean student bench test-deps test-browser test-colab test-lowest

$(STAMP): requirements.txt code/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

## book: execute every chapter and build the HTML book into _build/html
book: $(STAMP)
	SGDLAB_STATIC=1 $(VENV)/bin/jupyter-book build . -W --keep-going

## sync: rewrite the chapters' install cells and paired .ipynb notebooks from the .md sources
sync: $(STAMP)
	$(PY) tools/sync_chapters.py

## student: write student notebooks (solutions removed) into student/
student: $(STAMP)
	$(PY) -m sgdlab.coursework student --chapters chapters --out student

## bench: training-throughput benchmark (prints steps/s and ratios)
bench: $(STAMP)
	$(PY) code/benchmarks/train_throughput.py

## test: unit, sync and coursework tests; the unit tests at the lowest supported versions; every
## chapter in a Colab-like runtime; the full book build; the built pages in headless Chromium.
## Two stages at a time (tools/test_stages.py), logs in _build/test-logs, a time table at the end.
test: $(STAMP) test-deps
	$(PY) tools/test_stages.py

## test-deps: Debian chromium and an offline MathJax (tools/node_modules) for the browser test
test-deps:
	sh tools/install_test_deps.sh

## test-browser: every page of the built book (_build/html) in headless Chromium; screenshots in _build/screenshots
test-browser: $(STAMP) test-deps
	$(PY) -m pytest tests/test_browser.py -q

## test-colab: every chapter's .ipynb in a fresh Colab-like venv (~/.cache/noisy-descent/venv-colab), sgdlab installed by the install cell
test-colab: $(STAMP)
	$(PY) -m pytest tests/test_colab_runtime.py -q

## test-lowest: the unit tests at the lower bounds of code/pyproject.toml (~/.cache/noisy-descent/venv-lowest)
test-lowest: $(STAMP)
	$(PY) -m pytest tests/test_lowest_versions.py -q

clean:
	rm -rf _build student
