# Two commands do everything on a fresh machine (see README.md):
#   make book   build the executed HTML book into _build/html
#   make test   unit tests, nbval over every notebook, and a strict book build
# Both create the virtual environment .venv and install what the book needs when it is missing
# or when requirements.txt / pyproject.toml changed.

PYTHON       ?= python3
VENV         ?= .venv
BIN          := $(VENV)/bin
STAMP        := $(VENV)/.installed
CELL_TIMEOUT ?= 600
PYTEST_ARGS  ?=

# Every tool below runs from the virtual environment, and so does the Jupyter kernel that
# executes the notebooks (ipykernel's default kernel is the Python that asks for it).
export PATH := $(abspath $(BIN)):$(PATH)
# One thread of BLAS per numba/librosa worker is set by asrlib itself; keep pip quiet and offline
# friendly.
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Progress bars belong in live runs: in the executed HTML book they are empty boxes, and under
# nbval each update is a message the kernel queues until the cell ends (thousands in a training
# cell, past what ZeroMQ keeps: nbval then waits for messages that never come).
export ASRLIB_PROGRESS := 0

.PHONY: install book test unit nbval book-strict browser-check chromium synthesisers notebooks bench bench-gpu clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	@touch $@

# MathJax, RequireJS and the widget manager, for an HTML book that works offline (tests/vendor.py)
VENDOR := _build/vendor/.complete
$(VENDOR): tests/vendor.py
	$(BIN)/python tests/vendor.py

## make book: execute every notebook and build the HTML book into _build/html
book: $(STAMP) $(VENDOR)
	$(BIN)/jupyter-book build . --builder html
	@echo "open _build/html/index.html"

## make test: everything CI checks
test: unit nbval book-strict browser-check

unit: $(STAMP) $(VENDOR) chromium synthesisers
	$(BIN)/python -m pytest --doctest-modules asrlib tests --ignore=tests/benchmarks $(PYTEST_ARGS)

# nbval runs every notebook once; tests/nbval_plugin.py keeps each fully passed notebook, executed,
# in _build/executed (and prints the time of every chapter), for book-strict to render.
nbval: $(STAMP)
	rm -rf _build/executed
	$(BIN)/python -m pytest -p tests.nbval_plugin --nbval-lax --nbval-cell-timeout=$(CELL_TIMEOUT) book $(PYTEST_ARGS)

# The book as the tests ran it: the notebooks make nbval executed (tests/executed_book.py puts them
# in _build/src with execution off), rendered into _build/html without running them a second
# time. A full rebuild (--all) so that no warning hides in a cached page; -W makes every Sphinx
# warning an error. (make book executes every notebook itself, with nb_execution_raise_on_error.)
book-strict: $(STAMP) $(VENDOR)
	$(BIN)/python tests/executed_book.py
	$(BIN)/jupyter-book build _build/src --path-output . --builder html --all -W --keep-going

# Every page of the built book opened in headless Chromium: JavaScript errors, formulas MathJax
# cannot typeset, missing images and dead links fail; screenshots go to _build/screenshots.
browser-check: chromium
	$(BIN)/python tests/browser_check.py _build/html

# Debian's Chromium for the browser check, installed where apt-get can; elsewhere the check says so.
chromium:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "no Chromium and no way to install it here: the browser check will only read links and images"

# Debian's flite, festival and festival's ked voice for the corpus's Flite and Festival voice families
# (asrlib.corpus.flite, asrlib.corpus.festival), and MBROLA's US voices for Festival (from Debian's contrib and non-free
# sections: .ci/install-mbrola), installed where apt-get can; elsewhere their tests are skipped and the corpus that asks
# for them says how to install them.
SYNTHESISERS := flite festival festvox-kdlpc16k
synthesisers:
	@{ command -v flite && command -v festival && [ -d /usr/share/festival/voices/english/ked_diphone ]; } >/dev/null 2>&1 \
		|| { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && apt-get update -qq \
		     && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYNTHESISERS) >/dev/null; } \
		|| echo "no $(SYNTHESISERS) and no way to install them here: the Flite and Festival voices' tests are skipped"
	@bash .ci/install-mbrola || echo "MBROLA's voices could not be installed: their tests are skipped"

## make notebooks: strip outputs and write the canonical set-up cell into every notebook
notebooks: $(STAMP)
	$(BIN)/python tests/nbtools.py fix book

clean:
	rm -rf _build .pytest_cache

## make bench: speed ratios against the torch built-ins (not part of make test)
bench: $(STAMP)
	$(BIN)/pip install -q --no-deps "pyctcdecode>=0.5,<0.6" "pygtrie>=2.5" "flashlight-text>=0.0.7"  # the beam-search peers, for the benchmark only; their other deps are ours or optional (kenlm)
	$(BIN)/python tests/benchmarks/bench_lstm.py
	$(BIN)/python tests/benchmarks/bench_ctc.py
	$(BIN)/python tests/benchmarks/bench_rnnt.py
	$(BIN)/python tests/benchmarks/bench_transducer_decode.py

## make bench-gpu: the CUDA tests and the benchmarks' CUDA figures, on a machine with a GPU
bench-gpu: $(STAMP)
	PYTHON=$(BIN)/python tests/benchmarks/gpu.sh
