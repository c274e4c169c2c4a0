# Lepton Kit. Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PYTHONWARNINGS := ignore::DeprecationWarning
export TF_CPP_MIN_LOG_LEVEL := 2
include flower.mk

.PHONY: install sandbox browser postgres lab test-e2e demo test test-fast release run lessons gpu lock clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

## bubblewrap: the autograder's sandbox (Debian/Ubuntu package)
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; else sudo apt-get install -y -qq bubblewrap; fi; }

## chromium: the browser of the browser tests (tests/e2e, Playwright drives the system browser offline)
browser:
	@[ -x /usr/bin/chromium ] || { if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }

## PostgreSQL: the server the gradebook tests start and stop (tests/grading/test_postgres.py)
postgres:
	@command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq postgresql; else sudo apt-get update -qq && sudo apt-get install -y -qq postgresql; fi; }

install: $(STAMP) sandbox

release: install
	$(BIN)/lepton release

run: install flower
	$(BIN)/lepton run --profile ci --output build/run --check-targets

## The main job: release, execute every notebook (ci profile), autograde the sample submissions in
## the sandbox, write their feedback, print the gradebook, write build/report/index.html.
demo: install release run
	@for a in $$(ls autograder/samples); do \
	  [ -d source/$$a ] || continue; \
	  $(BIN)/lepton autograde $$a --submissions autograder/samples/$$a --jobs 2 || exit 1; \
	  $(BIN)/lepton feedback $$a || exit 1; \
	done
	$(BIN)/lepton grades --csv build/grades.csv
	$(BIN)/lepton report
	@echo "open build/report/index.html"

## The whole suite (what CI runs): every notebook, every sample and common mistake graded, browser, cluster, PostgreSQL and Flower tests (about 47 min on 2 cores).
## Flower's parity and deployment tests run in .venv-flower (make flower, about 80 s once).
test: install flower
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --durations=30

## What to run while working: everything not marked slow (about 2 min on 2 cores).
test-fast: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "not slow"

## JupyterLab in the course (formgrader and the nbgrader toolbar; jupyter-config/ encrypts kernel traffic).
lab: install
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter-config" JUPYTER_PATH="$(CURDIR)/jupyter-data" $(BIN)/jupyter lab

## The browser tests alone (JupyterLab and formgrader in chromium; screenshots in build/e2e/index.html).
test-e2e: install browser
	$(BIN)/python -m pytest tests/e2e -q --durations=0

## Re-execute the lesson notebooks in place (their stored outputs are what nbval compares), without progress bars,
## and stamp each with the kit code it ran (make test fails on a lesson whose kit code changed since).
## One lesson: make lessons LESSONS=notebooks/05_convolutional_networks.ipynb
lessons: install flower
	for nb in $(or $(LESSONS),notebooks/*.ipynb); do LEPTON_PROGRESS=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace --KernelManager.transport_encryption=auto --ExecutePreprocessor.store_widget_state=False $$nb && $(BIN)/python -m lepton_kit.course.staleness --stamp $$nb || exit 1; done

## Every notebook in the full profile, on the GPU when there is one; the summary names the device.
gpu: install flower
	$(BIN)/lepton run --profile full --output build/full
	$(BIN)/python -m lepton_kit.course.results build/full/summary.json

lock:
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//' > requirements.lock.new && mv requirements.lock.new requirements.lock

clean:
	rm -rf build submitted autograded feedback gradebook.db
