#!/usr/bin/env bash
# Every GPU stage, each checked against the CPU path on a sample, then one table.
#
# On the H200 (one device call; build .gpu/ here first with bench/gpu/pack.py):
#   run(command="bash bench/gpu/run_all.sh", carry=[".gpu"], timeout_s=600)
# Here, on the CPU, tiny sizes, to check the script itself (tests/test_gpu_bench.py does this):
#   PYTHON=.venv/bin/python bash bench/gpu/run_all.sh --smoke
#
# Writes $OUT/log.txt, $OUT/rows.jsonl and $OUT/table.md ($OUT: the device tool's output
# folder, else runs/gpu_bench). Exit 1 when a stage failed or disagreed with the CPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
out=${OUT:-runs/gpu_bench}
mkdir -p "$out"
rows="$out/rows.jsonl"
log="$out/log.txt"
: >"$rows"
: >"$log"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true

if [ "${1:-}" = "--smoke" ]; then
  # the same scripts on the CPU, and only the imports the H200 image (plus the wheels) allows
  sizes=(--device cpu --smoke)
  export TEXTCURATE_H200_IMPORTS=1 TEXTCURATE_CACHE=${TEXTCURATE_CACHE:-$out/cache}
  assets=$out/assets
  "$PY" bench/gpu/pack.py --out "$assets" --no-wheels >>"$log" 2>&1 || { echo "pack.py failed: see $log"; exit 1; }
  limit=300
else
  sizes=(--device cuda)
  assets=.gpu
  [ -d "$assets/minilm" ] || { echo "no $assets/minilm: run bench/gpu/pack.py here and carry .gpu"; exit 1; }
  if ls "$assets"/wheels/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$assets"/wheels/*.whl >>"$log" 2>&1 || { echo "wheel install failed: see $log"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
  limit=65  # 8 stages: at most 560 s with the kills, inside one call of 600
fi
"$PY" -c "import torch, transformers, sentence_transformers as st; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'sentence-transformers', st.__version__)" | tee -a "$log"

finish() { "$PY" bench/gpu/table.py "$rows" --expect edu_score,edu_score_cascade,kmeans,semdedup,influence,generate,synth,distill,distill_labels | tee "$out/table.md"; }
trap 'finish; exit 1' INT TERM  # killed from outside: still leave the table of what finished

stage() {  # stage NAME SCRIPT ARGS...: run one script under a time limit; a crash is a failed row
  local name=$1 script=$2
  shift 2
  echo "== $name" | tee -a "$log"
  local t0=$SECONDS
  timeout -k 5 "$limit" "$PY" "bench/gpu/$script" "${sizes[@]}" --json "$rows" "$@" >>"$log" 2>&1
  local rc=$?
  grep "^RESULT $name" "$log" | tail -1
  if ! grep -q "\"stage\": \"$name\"" "$rows"; then
    tail -5 "$log"
    echo "{\"stage\": \"$name\", \"ok\": false, \"error\": \"exit $rc after $((SECONDS - t0)) s (see log.txt)\"}" >>"$rows"
  fi
}

stage edu_score edu_score.py --model "$assets/minilm"
stage kmeans kmeans.py
stage semdedup semdedup.py
stage influence influence.py
stage generate generate.py --tokenizer "$assets/smollm2-tok"
stage synth synth.py --tokenizer "$assets/smollm2-tok"
stage distill distill.py
stage distill_labels distill_labels.py

trap - INT TERM
finish
