# The README contract: `make setup`, `make reproduce`, `make test`.
# Not CI: `make lab-check` (do notebooks/*.py open as notebooks in JupyterLab? needs chromium), bench, mutation.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PARAMS ?= params/smoke.yaml

.PHONY: setup lab-settings lab-check reproduce test bench bench-paper mutation clean-runs

# Create the virtual environment and install the kit (CPU torch 2.13.0 first, so
# nothing else can pull a multi-GB CUDA build); then lab-settings.
setup:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(MAKE) --no-print-directory lab-settings VENV=$(VENV)

# JupyterLab opens notebooks/*.py (py:percent) as notebooks on double-click: jupytext's default viewer
# for Python files, written into the venv (read from sys.prefix/etc/jupyter/labconfig), not into ~/.jupyter.
# Unset, then set: the same file whatever was there; re-running is harmless.
LAB_OVERRIDES := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json
lab-settings:
	$(BIN)/jupytext-config --settings-file $(LAB_OVERRIDES) unset-default-viewer python
	$(BIN)/jupytext-config --settings-file $(LAB_OVERRIDES) set-default-viewer python

# Open each notebooks/0*.py in JupyterLab in headless Chromium; screenshots to reports/lab_check/;
# fails when one opens as text. Needs Debian's chromium (apt-get install -y chromium). Not CI.
CHROMIUM ?= /usr/bin/chromium
lab-check:
	@test -x $(CHROMIUM) || { echo "lab-check needs Chromium at $(CHROMIUM): apt-get install -y chromium (or CHROMIUM=/path/to/chromium)"; exit 2; }
	$(BIN)/python scripts/lab_check.py --chromium $(CHROMIUM)

# The main job: the whole pipeline on the embedded synthetic default, small params.
reproduce:
	$(BIN)/stccl reproduce --params $(PARAMS)

# pytest's exit 5 (nothing collected) is not a failure of the kit.
test:
	$(BIN)/python -m pytest -q; s=$$?; if [ $$s -eq 5 ]; then echo "no tests collected"; s=0; fi; exit $$s

# Named bugs put into a temporary copy, one at a time: which does the suite catch? (~15 min; not CI)
mutation:
	$(BIN)/python tests/mutation.py $(MUTATION_ARGS)

# Plug-in loss step: today's path, each fast-path switch, the fast path, the backbone floors (one run,
# interleaved). bench-paper: the reference configuration of issue 18 (~5 s a step on 2 idle cores).
bench:
	$(BIN)/python benchmarks/loss_step.py --config params/metric_tiny.yaml
bench-paper:
	$(BIN)/python benchmarks/loss_step.py --config params/paper.yaml --size 112 --batch 2 --threads 2 --reps 3
	$(BIN)/python benchmarks/metric_step.py --config params/paper.yaml --batch 1 --steps 2 --threads 2
