# Two commands do everything on a fresh clone: `make run` and `make test`.
# Each (re)creates .venv from constraints.txt when it is missing or older than pyproject.toml/constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TASK ?= albert-torch-fp32
HARDWARE ?= CPU

.PHONY: run test lint format venv clean-venv mutation

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]" -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)  ## the main job: ALBERT-base on SQuAD, fastest correct engine on this CPU, every batch size
	$(BIN)/python -m core.perf_engine --hardware_type $(HARDWARE) --task $(TASK)

test: $(STAMP) lint  ## lint, format check, then the test suite
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

mutation: $(STAMP)  ## mutation testing of the critical modules (pyproject's [tool.mutmut]); not part of test
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[mutation]" -c constraints.txt
	rm -rf mutants
	$(BIN)/mutmut run
	$(BIN)/python tests/mutation_score.py

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean-venv:
	rm -rf $(VENV)
