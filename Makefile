# Noisy Descent: `make book` builds the HTML book, `make test` runs every check.
# Both create the virtual environment .venv from requirements.txt when it is missing or stale.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: book test test-unit test-book-html sync clean student bench

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

## test: unit tests, sync and coursework checks, the full book build, then the built-HTML checks
test: $(STAMP)
	$(PY) -m pytest tests -m "not built_book" -q
	$(MAKE) book
	$(PY) -m pytest tests -m built_book -q

clean:
	rm -rf _build student
