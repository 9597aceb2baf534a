# stare-robot: fresh-machine entry points. `make demo` and `make test` set up what is missing first.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
TASK     ?= PushCube-v1
BUDGET   ?= default
RUN      ?= runs/$(TASK)

.PHONY: setup demo test test-all lint clean

setup:  ## system packages (Mesa Vulkan, libusb) + .venv with the project; idempotent
	bash scripts/setup.sh

demo: setup  ## the main job (IPI): demos -> stages -> SFT -> STA-TPO -> STA-PPO -> evaluation -> report
	$(VENV)/bin/stare-robot ipi --task "$(TASK)" --budget "$(BUDGET)" --out "$(RUN)"

test: setup lint  ## ruff, then the default test suite (everything but `slow`)
	$(VENV)/bin/pytest -m "not slow"

test-all: setup  ## every test, slow ones included
	$(VENV)/bin/pytest

lint: setup  ## ruff over the whole repository (part of `make test`)
	$(VENV)/bin/ruff check .

clean:
	rm -rf data runs .pytest_cache
