"""An LLM judge's scores on the quality set, for ``bench/quality.py --judge``.

    .venv-vllm/bin/python bench/quality_judge.py --model smollm2 --split validation \\
        --prompts edu-additive-v2,ask-llm-v1,edu-anchored-v1 --per-kind 80 --out runs/judge_q/smollm2_val
    .venv-vllm/bin/python bench/quality_judge.py --model smollm2 --split test --prompts edu-additive-v2 \\
        --per-kind 80 --out runs/judge_q/smollm2_test

A seeded sample of ``--per-kind`` documents of every kind of the split; for each prompt the
expected score of the answer's digit distribution (``Yes`` probability for Ask-LLM: one forward
pass, no generation), written to ``OUT.PROMPT.parquet`` (id, kind, label, score, seconds), with
the AUC against provenance printed. Prompts are chosen on the validation split: run the test
split with the one prompt that won there.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="runs/quality_set.parquet")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--engine", default="vllm", choices=["vllm", "transformers"])
    ap.add_argument("--split", default="validation", choices=["train", "validation", "test"])
    ap.add_argument("--prompts", default="edu-additive-v2")
    ap.add_argument("--per-kind", type=int, default=80)
    ap.add_argument("--max-chars", type=int, default=1000)
    ap.add_argument("--out", required=True, help="prefix of the score files")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import pyarrow as pa
    import pyarrow.parquet as pq

    from judge import cpu_flags, make_engine
    from textcurate.classify.metrics import auc
    from textcurate.engines.base import GenerationParams
    from textcurate.judge.prompt import PROMPTS

    rows = [r for r in pq.read_table(args.set).to_pylist() if r["split"] == args.split]
    picked = []
    for kind in sorted({r["kind"] for r in rows}):
        group = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["id"])
        picked += random.Random(f"0:{kind}").sample(group, min(args.per_kind, len(group)))
    eng = make_engine(args.engine, args.model)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    print(f"{args.model} ({args.engine}) on {len(picked)} {args.split} documents; CPU: {cpu_flags()}", flush=True)
    for name in args.prompts.split(","):
        jp = PROMPTS[name]
        t = time.perf_counter()
        dists = eng.answer_distribution([jp.build(r["text"], args.max_chars) for r in picked], jp.choices,
                                        GenerationParams(assistant_prefix=jp.answer_prefix))
        sec = (time.perf_counter() - t) / len(picked)
        scores = [jp.score(d) for d in dists]
        pq.write_table(pa.table({"id": [r["id"] for r in picked], "kind": [r["kind"] for r in picked],
                                 "label": [r["label"] for r in picked], "score": scores,
                                 "seconds": [sec] * len(picked)}), f"{args.out}.{name}.parquet")
        print(f"  {name}: AUC {auc([r['label'] for r in picked], scores):.3f}, {sec:.2f} s/doc", flush=True)


if __name__ == "__main__":
    main()
