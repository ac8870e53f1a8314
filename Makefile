# Everyday commands. `make demo` and `make test` set themselves up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint format bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cpu,dev]'
	@# backend: torch's tests need the CPU wheel the torch extra pins; where no index offers it,
	@# they skip with the reason instead of the whole install failing (or pulling CUDA)
	$(BIN)/pip install --quiet -e '.[torch]' \
		|| echo "torch==2.13.0+cpu is not offered here: the torch backend's tests will skip"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cnncli train configs/seed.yaml
	$(BIN)/cnncli predict --input 3,30,5

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check cnncli tests benchmarks
	$(BIN)/ruff format --check cnncli tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format cnncli tests benchmarks
	$(BIN)/ruff check --fix cnncli tests benchmarks

bench: $(STAMP)  # not CI: prints the tables the README quotes (about 45 minutes on 2 cores)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/predict.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/tune.py
	$(BIN)/python benchmarks/serve.py

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache
