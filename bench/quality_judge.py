"""An LLM judge's scores on the quality set, for ``bench/quality.py --judge``.

    .venv-vllm/bin/python bench/quality_judge.py --model smollm2 --split validation \\
        --prompts edu-additive-v2,ask-llm-v1,edu-anchored-v1 --per-kind 80 --out runs/judge_q/smollm2_val
    .venv-vllm/bin/python bench/quality_judge.py --model smollm2 --split test --prompts edu-additive-v2 \\
        --per-kind 80 --out runs/judge_q/smollm2_test

A seeded sample of ``--per-kind`` documents of every kind of the split; for each prompt the
expected score of the answer's digit distribution (``Yes`` probability for Ask-LLM: one forward
pass, no generation; for ``pairwise-v1``, 5 x the mean win probability against ``--anchors``
training documents, one drawn by a seeded hash from each of the tiers 2, 3 and 4, every pair
asked in both orders), written to ``OUT.PROMPT.parquet`` (id, kind, label, score, seconds), with
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
    ap.add_argument("--anchors", type=int, default=3, help="pairwise-v1: anchor documents (tiers 2, 3, 4, ...)")
    ap.add_argument("--out", required=True, help="prefix of the score files")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import pyarrow as pa
    import pyarrow.parquet as pq

    from judge import cpu_flags, make_engine
    from textcurate.classify.metrics import auc
    from textcurate.engines.base import GenerationParams
    from textcurate.judge.prompt import PAIRWISE_CHOICES, PAIRWISE_PREFIX, PROMPTS, build_pairwise_prompt, pairwise_win

    every = pq.read_table(args.set).to_pylist()
    rows = [r for r in every if r["split"] == args.split]
    picked = []
    for kind in sorted({r["kind"] for r in rows}):
        group = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["id"])
        picked += random.Random(f"0:{kind}").sample(group, min(args.per_kind, len(group)))
    eng = make_engine(args.engine, args.model)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    print(f"{args.model} ({args.engine}) on {len(picked)} {args.split} documents; CPU: {cpu_flags()}", flush=True)
    for name in args.prompts.split(","):
        t = time.perf_counter()
        if name == "pairwise-v1":
            scores = pairwise(eng, picked, anchors(every, args.anchors), args.max_chars, build_pairwise_prompt,
                              pairwise_win, GenerationParams(assistant_prefix=PAIRWISE_PREFIX), PAIRWISE_CHOICES)
        else:
            jp = PROMPTS[name]
            dists = eng.answer_distribution([jp.build(r["text"], args.max_chars) for r in picked], jp.choices,
                                            GenerationParams(assistant_prefix=jp.answer_prefix))
            scores = [jp.score(d) for d in dists]
        sec = (time.perf_counter() - t) / len(picked)
        pq.write_table(pa.table({"id": [r["id"] for r in picked], "kind": [r["kind"] for r in picked],
                                 "label": [r["label"] for r in picked], "score": scores,
                                 "seconds": [sec] * len(picked)}), f"{args.out}.{name}.parquet")
        print(f"  {name}: AUC {auc([r['label'] for r in picked], scores):.3f}, {sec:.2f} s/doc", flush=True)


def anchors(rows: list[dict], n: int) -> list[dict]:
    """``n`` training documents, one per tier from 2 up (then round again), each the one with the
    smallest sha256 of its id: fixed before any measurement, never a validation or test document."""
    import hashlib

    tiers = [2, 3, 4, 5, 1]
    out = []
    for i in range(n):
        group = [r for r in rows if r["split"] == "train" and r["tier"] == tiers[i % len(tiers)] and r not in out]
        out.append(min(group, key=lambda r: hashlib.sha256(f"anchor:{r['id']}".encode()).hexdigest()))
    return out


def pairwise(eng, picked: list[dict], refs: list[dict], max_chars: int, build, win, params, choices) -> list[float]:
    """5 x the mean over ``refs`` of a document's win probability, each pair asked in both orders."""
    prompts = []
    for r in picked:
        for a in refs:
            prompts += [build(r["text"], a["text"], max_chars), build(a["text"], r["text"], max_chars)]
    dists = eng.answer_distribution(prompts, choices, params)
    per = 2 * len(refs)
    out = []
    for i in range(len(picked)):
        d = dists[i * per:(i + 1) * per]
        out.append(5.0 * sum(win(d[2 * k].probs[0], d[2 * k + 1].probs[1]) for k in range(len(refs))) / len(refs))
    return out


if __name__ == "__main__":
    main()
