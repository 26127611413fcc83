# Two commands: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: test demo bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) setup.py constraints.txt
	$(PIP) install --quiet -c constraints.txt -e '.[test,data_prep]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile tests $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m ddsp.demo --output_dir=$(DEMO_OUT)

bench: $(STAMP)
	$(PY) bench/synths.py

clean:
	rm -rf $(VENV) build *.egg-info $(DEMO_OUT)
