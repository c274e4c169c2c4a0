# Flower beside the course (issue 12, "Flower parity"): its own virtualenv, because flwr 1.42 needs protobuf<7
# and rich<15 and the course's .venv has TensorFlow's protobuf 7 and rich 15. The Makefile includes this file.
PYTHON       ?= python3
FLOWER_VENV  := .venv-flower
FLOWER_BIN   := $(FLOWER_VENV)/bin
FLOWER_STAMP := $(FLOWER_VENV)/.installed

.PHONY: flower flower-lock

$(FLOWER_STAMP): requirements-flower.txt pyproject.toml
	$(PYTHON) -m venv $(FLOWER_VENV)
	$(FLOWER_BIN)/python -m pip install -q --upgrade pip
	$(FLOWER_BIN)/python -m pip install -q -r requirements-flower.txt
	$(FLOWER_BIN)/python -m pip install -q --no-deps -e .
	touch $@

## Flower 1.42 and Ray in .venv-flower; the parity test (tests/kit/test_federated_flower.py) runs the
## Flower simulation there: .venv-flower/bin/python -m lepton_kit.federated.flower_app --clients 10 --rounds 5
flower: $(FLOWER_STAMP)

## Re-pin requirements-flower.txt from .venv-flower (its comment lines kept).
flower-lock:
	{ sed -n '/^#/p' requirements-flower.txt; \
	  $(FLOWER_BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//; s/^flwr==/flwr[simulation]==/'; \
	} > requirements-flower.txt.new && mv requirements-flower.txt.new requirements-flower.txt
