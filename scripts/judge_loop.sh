#!/usr/bin/env bash
# The whole educational-value loop, offline: the packaged SmolLM2-135M judge behind a real
# vLLM server (from .venv-vllm) rates a sample of the quickstart corpus, a head is trained
# on its ratings, the corpus is scored and filtered with it, and a report is written.
#   N=200 bash scripts/judge_loop.sh        (needs `make run` and `make setup-vllm` first)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200}
PORT=${PORT:-8765}
OUT=${OUT:-runs/judge_loop}
export HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_OMP_THREADS_BIND=0-1 VLLM_CPU_NUM_OF_RESERVED_CPU=0
MODEL=$(.venv/bin/python -m textcurate.assets.smollm | tail -n 1)
mkdir -p "$OUT"
.venv-vllm/bin/python -m vllm.entrypoints.openai.api_server --model "$MODEL" --host 127.0.0.1 --port "$PORT" \
  --max-model-len 1024 --enforce-eager --dtype float32 > "$OUT/vllm-server.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 1; done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { echo "vLLM server did not come up; see $OUT/vllm-server.log" >&2; exit 1; }
time .venv/bin/textcurate annotate runs/quickstart --out "$OUT/annotations.parquet" --sample "$N" \
  --engine openai --model "$MODEL" --base-url "http://127.0.0.1:$PORT/v1" --batch-size 16 --scoring generate
time .venv/bin/textcurate train-classifier "$OUT/annotations.parquet" --out "$OUT/classifier" \
  --provenance "SmolLM2-135M-Instruct (packaged GGUF, dequantised) via vLLM, prompt edu-additive-v2 (written answers, parsed), $N quickstart documents"
time .venv/bin/textcurate run pipelines/edu_filter.yaml --overwrite --set output.path="$OUT/filtered" \
  --set stages.1.classifier="$OUT/classifier"
