"""Does influence beat embedding similarity at finding a held-out target's source in a mixed pool?

    .venv/bin/python bench/influence_targeted.py [--set classifiers/edu-smollm2-minilm/labels.parquet]
        [--target-source foldoc] [--seeds 0,1] [--configs less,less-2stage,trak] [--out DIR]
        [--evaluate] [--budget 400k]

The pool: a labelled set of local documents from many sources (by default the 1,483 documents
shipped with the edu classifier: manuals, tutorials, encyclopedia entries, code, READMEs,
licences, changelogs, logs, generated code, tables from 436 sources). The target: 30 % of one
source's documents, held out of the pool (the same rule as `textcurate influence
--target-expr`); the rest of that source stays in the pool, a few percent of it. Each
configuration runs `compute_influence` end to end (warm-up, checkpoints, gradients,
projection, scores; the baselines come from the same run) and the table gives, at the top
10 %, the share of each selection that comes from the target's source, with the seconds each
cost. From each run's stored features (`rescore`, no new gradient) the same precision with the
last checkpoint only and with the other normalisation (LESS without unit normalisation, TRAK
with it).

Configurations: ``less`` and ``trak`` (the default small GPT), ``less-2stage`` (LESS on the
30 % of the pool most similar to the target only), ``smollm2-last2-2stage`` and
``smollm2-lora-2stage`` (the packaged SmolLM2-135M: gradients of its last two blocks, or of
rank-8 LoRA adapters warmed up as LESS does, on the 30 % candidates), ``smollm2-lora`` (the
whole pool).

``--evaluate``: then trains fresh small GPTs (``textcurate evaluate``, the pipeline's own
evaluation) on the top 10 % by each run's influence, by target_sim, by target_sim_nearest and
on random 10 %, two seeds, and prints their loss on the held-out target. ``--out`` keeps every
run (a rerun reuses finished ones).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from judge import cpu_flags  # noqa: E402

SMOL = dict(model="smollm2", warmup_tokens=20_000, checkpoints=2, candidates=0.3, method="less", proj_kind="sparse")
CONFIGS = {
    "less": dict(method="less", proj_kind="sparse"),
    "less-2stage": dict(method="less", proj_kind="sparse", candidates=0.3),
    "trak": dict(method="trak", proj_kind="sparse"),
    "smollm2-last2-2stage": dict(SMOL, params="last:2"),
    "smollm2-lora-2stage": dict(SMOL, params="lora"),
    "smollm2-lora": dict(SMOL, params="lora", candidates=1.0),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="classifiers/edu-smollm2-minilm/labels.parquet")
    ap.add_argument("--target-source", default="foldoc")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--configs", default="less,less-2stage,trak")
    ap.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--evaluate", action="store_true", help="target loss of each selection through evaluate")
    ap.add_argument("--budget", default=None, help="evaluate's tokens per training run (default: its own)")
    ap.add_argument("--verbose", action="store_true", help="print the runs' progress lines")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pyarrow.parquet as pq
    from datatrove.data import Document

    from textcurate.influence.run import InfluenceSpec, compare_selections, compute_influence, rescore, split_target

    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.verbose else (lambda *_: None)
    out = args.out or tempfile.mkdtemp(prefix="inf_bench_")
    rows = pq.read_table(args.set, columns=["id", "text", "source", "kind"]).to_pylist()
    docs = [Document(text=r["text"], id=r["id"], metadata={"source": r["source"], "kind": r["kind"]}) for r in rows]
    expr = f"source == '{args.target_source}'"
    pool, target = split_target(docs, expr, 0.3, log=lambda *_: None)
    share = sum(d.metadata["source"] == args.target_source for d in pool) / len(pool)
    print(f"CPU: {cpu_flags()}")
    print(f"pool {len(pool):,} documents from {len({d.metadata['source'] for d in pool})} sources; target "
          f"{len(target)} held-out documents of {args.target_source} (its other documents: {share:.1%} of the pool)")
    print("| configuration | seed | influence | last checkpoint only | other normalisation | target_sim "
          "| target_sim_nearest | random | influence ~ target_sim overlap | gradients | seconds (all) "
          "| seconds (similarity) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    selections = {}
    for name in args.configs.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            spec = InfluenceSpec(seed=seed, compare_field="source", **CONFIGS[name])
            run = os.path.join(out, f"{name}-s{seed}")
            if os.path.exists(os.path.join(run, "card.json")):
                with open(os.path.join(run, "card.json")) as fh:
                    card = json.load(fh)
                seconds = card["seconds"]
            else:
                t = time.perf_counter()
                card = compute_influence(pool, target, spec, run, log=log)
                seconds = time.perf_counter() - t
            other = not (spec.method == "less")  # the method's default is LESS yes, TRAK no
            variants = {"last": rescore(run, checkpoints=[len(card["checkpoints"]) - 1]),
                        "other": rescore(run, normalize=other),
                        "influence": rescore(run)}
            p = compare_selections(pool, target, variants, 0.1, "source")["precision"]
            c = card["comparison"]
            b = c["precision"]
            print(f"| {name} | {seed} | {b['influence']:.1%} | {p['last']:.1%} | {p['other']:.1%} "
                  f"| {b['target_sim']:.1%} | {b['target_sim_nearest']:.1%} | {b['random']:.1%} "
                  f"| {c['overlap']['influence~target_sim']:.0%} | {card['gradients']:,} | {seconds:.0f} "
                  f"| {card['similarity_seconds']:.0f} |", flush=True)
            if seed == 0 or name not in selections:
                table = pq.read_table(os.path.join(run, "influence.parquet")).to_pydict()
                selections[name] = table["influence"]
                selections["target_sim"], selections["target_sim_nearest"] = (table["target_sim"],
                                                                             table["target_sim_nearest"])
    if args.evaluate:
        evaluate_selections(docs, pool, expr, selections, out, args.budget, log)


def evaluate_selections(docs, pool, expr, selections, out, budget, log) -> None:
    """Train fresh small GPTs on the top 10 % by each score and on random 10 %: target loss, 2 seeds."""
    from datatrove.data import Document

    from textcurate.evaluate.run import evaluate
    from textcurate.evaluate.spec import EvaluateSpec

    row = {d.id: i for i, d in enumerate(pool)}
    scored = []
    for d in docs:
        meta = dict(d.metadata)
        if d.id in row:
            meta.update({k: float(v[row[d.id]]) for k, v in selections.items()})
        scored.append(Document(text=d.text, id=d.id, metadata=meta))
    spec = EvaluateSpec(target={"expr": expr, "holdout": 0.3}, fractions=[0.1, 0.3, 1.0], seeds=[0, 1],
                        budget_tokens=budget, max_doc_tokens=256,
                        selections=[{"name": k, "by": k, "fractions": [0.1]} for k in selections])
    result = evaluate(scored, spec, os.path.join(out, "evaluate"), log=log)
    print(f"\nevaluate: fresh {result['model']['parameters']:,}-parameter GPTs, {result['spec']['budget_tokens']:,} "
          f"tokens each, on 10 % of the pool's tokens; loss on the {result['target']['documents']} held-out target "
          "documents (seeds 0 and 1; lower is better)")
    print("| selection | target loss, seed 0 | seed 1 | mean |")
    print("|---|---|---|---|")
    runs = [r for r in result["runs"] if r["requested"] == 0.1]
    for name in ["random"] + list(selections):
        loss = [r["target_loss"] for r in runs if r["name"] == name]
        print(f"| {name} | " + " | ".join(f"{x:.4f}" for x in loss) + f" | {np.mean(loss):.4f} |")
    full = [r["target_loss"] for r in result["runs"] if r["name"] == "random" and r["requested"] == 1.0]
    print("| (the whole pool) | " + " | ".join(f"{x:.4f}" for x in full) + f" | {np.mean(full):.4f} |")


if __name__ == "__main__":
    main()
