# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.glacierxr-installed
DEV    := $(VENV)/.glacierxr-dev-installed

.PHONY: install install-dev demo lint test test-all bench clean

# `install`: the library and its command only (what `make demo` needs); `install-dev`: plus the
# test tools and the pgstac test server (what `make test` needs).
install: $(STAMP)
install-dev: $(DEV)

# torch==2.13.0 is installed FIRST: it is the local CPU build; any other spec pulls GBs of CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $(STAMP)

$(DEV): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,pgstac]'
	touch $(DEV)

demo: install
	$(VENV)/bin/glacierxr demo --out demo-output

lint: install-dev
	$(PY) -m ruff check .

# pytest exits 5 when it collects no test; that is not a failure of the suite.
test: install-dev lint
	$(PY) -m pytest -q -m "not slow and not gpu" -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-all: install-dev
	$(PY) -m pytest -q -p no:cacheprovider

bench: install-dev
	$(PY) benchmarks/bench_cube.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
