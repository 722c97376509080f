#!/usr/bin/env bash
# A CPU venv with the H200 image's versions of the libraries textcurate's GPU stages call
# (transformers 5.17, sentence-transformers 6.0.1, huggingface_hub 1.33; torch stays the CPU
# 2.13 this project pins), plus the carried wheels' packages, and nothing else of textcurate's
# dependencies: the smoke run in it shows version skew before a device call does.
#   bash bench/gpu/h200_venv.sh && PYTHON=.venv-h200/bin/python bash bench/gpu/run_all.sh --smoke
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv-h200/bin/python ] || python3 -m venv .venv-h200
.venv-h200/bin/pip install -q torch==2.13.0
.venv-h200/bin/pip install -q transformers==5.17.0 sentence-transformers==6.0.1 huggingface_hub==1.33.0 accelerate \
  safetensors numpy scipy scikit-learn pyarrow pandas xxhash humanize tqdm fsspec pyyaml regex rich typer psutil
grep -v '^#' bench/gpu/wheels.txt | xargs .venv-h200/bin/pip install -q --no-deps
# the model and tokenizer come from the project's own .venv (the image has neither package)
.venv/bin/python bench/gpu/pack.py --out runs/gpu_bench/assets --no-wheels
