# Two commands do everything on a fresh clone: `make run` and `make test`.
# Each readies .venv (tools/venv.sh) when it lacks the stamp or pyproject.toml/constraints.txt changed: a working
# .venv, made by hand or by make, is installed into, never made again; torch comes from PyTorch's CPU index where
# it can be reached (TORCH_INDEX= empty: the default index).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TASK ?= albert-torch-fp32
HARDWARE ?= CPU

.PHONY: run test lint docs format venv clean-venv mutation gpu-wheels gpu-check

$(STAMP): pyproject.toml constraints.txt tools/venv.sh
	PYTHON="$(PYTHON)" VENV="$(VENV)" TORCH_INDEX="$(TORCH_INDEX)" tools/venv.sh
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)  ## the main job: ALBERT-base on SQuAD, fastest correct engine on this CPU, every batch size
	$(BIN)/python -m core.perf_engine --hardware_type $(HARDWARE) --task $(TASK)

test: $(STAMP) lint docs  ## lint, format check, the docs site (strict: a broken link fails), then the test suite
	$(BIN)/python -m pytest -q

docs: $(STAMP)  ## the user guide as a site, offline, into build/site (open build/site/index.html)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

mutation: $(STAMP)  ## mutation testing of the critical modules (pyproject's [tool.mutmut]); not part of test
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[mutation]" -c constraints.txt
	rm -rf mutants
	$(BIN)/mutmut run
	$(BIN)/python tests/mutation_score.py

# Wheels of what a GPU host's own python3 lacks of ours, for benchmarks/gpu_check.py --wheels (README, Accelerators).
GPU_WHEELS := pydantic pydantic-core annotated-types typing-inspection typing-extensions
gpu-wheels: $(STAMP)  ## wheels (cp312, manylinux x86_64) for the GPU device check, into build/gpu-wheels
	$(BIN)/pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
		--python-version 3.12 --implementation cp --platform manylinux2014_x86_64 \
		-c constraints.txt -d build/gpu-wheels $(GPU_WHEELS)

# On a GPU host, from a copy of the repository with build/gpu-wheels beside it (made here by make gpu-wheels):
# the probe (~3 min), then the device check (~7 min by its --plan); the check keeps what it measured.
gpu-check:  ## on a GPU host: the device probe, then the device check, with the host's own python3
	python3 benchmarks/gpu_probe.py --wheels build/gpu-wheels
	python3 benchmarks/gpu_check.py --wheels build/gpu-wheels --out build/gpu-check --resume

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean-venv:
	rm -rf $(VENV)
