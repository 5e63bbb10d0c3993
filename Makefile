# Two commands do all set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo robotics test test-slow bench lint docs clean venv

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# torch first (the CPU build on disk); a plain `torch` requirement would pull a CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# the reference robotics deployment (docs/robotics.md): train -> calibrate -> bundle -> strict inference -> fallback -> report
robotics: $(STAMP)
	$(PY) scripts/reference_robotics_deployment.py --device cpu --epochs 2 --n-samples 6000 --overwrite

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m slow

bench: $(STAMP)
	$(PY) -m pip install -e ".[dev,bench]" --quiet || echo "bench extras unavailable: sympytorch columns will be skipped"
	$(PY) benchmarks/run_all.py

# style, formatting and types: ruff (lint + format check) and mypy (config in pyproject [tool.mypy])
LINTED := zpml_core zpml_symbolic zpml_runtime tests benchmarks examples scripts
lint: $(STAMP)
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)
	$(PY) -m mypy

# the user docs and the API reference (from docstrings), built offline; any warning fails the build
docs: $(STAMP)
	$(PY) -m pip install -e ".[dev,docs]" --quiet
	$(PY) -m mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) build *.egg-info
