# stare-robot: fresh-machine entry points. `make demo` and `make test` set up what is missing first.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
TASK     ?= PushCube-v1
NUM      ?= 100
STEPS    ?= 2000
EPISODES ?= 100
RUN      ?= runs/$(TASK)

.PHONY: setup demo test test-all lint clean

setup:  ## system packages (Mesa Vulkan, libusb) + .venv with the project; idempotent
	bash scripts/setup.sh

demo: setup  ## the main job on the embedded defaults: demos -> stages -> SFT -> evaluation
	TASK="$(TASK)" NUM="$(NUM)" STEPS="$(STEPS)" EPISODES="$(EPISODES)" RUN="$(RUN)" bash scripts/main_job.sh

test: setup  ## the default test suite (everything but `slow`)
	$(VENV)/bin/pytest -m "not slow"

test-all: setup  ## every test, slow ones included
	$(VENV)/bin/pytest

lint:
	$(VENV)/bin/ruff check .

clean:
	rm -rf data runs .pytest_cache
