# Two commands: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: test lint demo demo-fit bench soak install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) setup.py constraints.txt
	$(PIP) install --quiet -c constraints.txt -e '.[test,data_prep]'
	touch $(STAMP)

install: $(STAMP)

# Lint (ruff, ruff.toml) and the import contracts between the layers (.importlinter).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) scripts/check_imports.py

test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile tests $(PYTEST_ARGS)

# The whole workflow on the bundled violin: prepare (Beam) -> train (tiny_instrument) -> eval -> sample;
# it ends by printing the command that opens the studio (ddsp_studio) on the model it trained.
demo: $(STAMP)
	$(PY) -m ddsp.training.demo --output_dir=$(DEMO_OUT)

# Analysis by synthesis: fit a synthesizer's controls to one bundled note (no network, ~1 min).
demo-fit: $(STAMP)
	$(PY) -m ddsp.demo --output_dir=$(DEMO_OUT)/fit

# Every benchmark but the stamina soak (about 13 min: `make soak`); train_setup.py is their shared helper.
bench: $(STAMP)
	for b in bench/*.py; do case $$b in bench/soak.py|bench/train_setup.py) ;; *) $(PY) $$b || exit 1;; esac; done

soak: $(STAMP)
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) build *.egg-info $(DEMO_OUT)
