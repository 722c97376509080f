"""Does influence beat embedding similarity at finding a held-out target's source in a mixed pool?

    .venv/bin/python bench/influence_targeted.py [--set classifiers/edu-smollm2-minilm/labels.parquet]
        [--target-source foldoc] [--seeds 0,1] [--configs less,less-2stage,trak]

The pool: a labelled set of local documents from many sources (by default the 1,483 documents
shipped with the edu classifier: manuals, tutorials, encyclopedia entries, code, READMEs,
licences, changelogs, logs, generated code, tables from 436 sources). The target: 30 % of one
source's documents, held out of the pool (the same rule as `textcurate influence
--target-expr`); the rest of that source stays in the pool, a few percent of it. Each
configuration runs `compute_influence` end to end (warm-up, checkpoints, gradients,
projection, scores; the baselines come from the same run) and the table gives, at the top
10 %, the share of each selection that comes from the target's source, with the seconds each
cost. Configurations: ``less`` and ``trak`` (the default small GPT), ``less-2stage`` (LESS on
the 30 % of the pool most similar to the target only).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from judge import cpu_flags  # noqa: E402

CONFIGS = {
    "less": dict(method="less", proj_kind="sparse"),
    "less-2stage": dict(method="less", proj_kind="sparse", candidates=0.3),
    "trak": dict(method="trak", proj_kind="sparse"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="classifiers/edu-smollm2-minilm/labels.parquet")
    ap.add_argument("--target-source", default="foldoc")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--configs", default="less,less-2stage,trak")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pyarrow.parquet as pq
    from datatrove.data import Document

    from textcurate.influence.run import InfluenceSpec, compute_influence, split_target

    rows = pq.read_table(args.set, columns=["id", "text", "source", "kind"]).to_pylist()
    docs = [Document(text=r["text"], id=r["id"], metadata={"source": r["source"], "kind": r["kind"]}) for r in rows]
    expr = f"source == '{args.target_source}'"
    pool, target = split_target(docs, expr, 0.3, log=lambda *_: None)
    share = sum(d.metadata["source"] == args.target_source for d in pool) / len(pool)
    print(f"CPU: {cpu_flags()}")
    print(f"pool {len(pool):,} documents from {len({d.metadata['source'] for d in pool})} sources; target "
          f"{len(target)} held-out documents of {args.target_source} (its other documents: {share:.1%} of the pool)")
    print("| configuration | seed | influence | target_sim | target_sim_nearest | random | influence ~ target_sim "
          "overlap | gradients | seconds (all) | seconds (similarity) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            spec = InfluenceSpec(seed=seed, compare_field="source", **CONFIGS[name])
            t = time.perf_counter()
            card = compute_influence(pool, target, spec, tempfile.mkdtemp(prefix="inf_"), log=lambda *_: None)
            seconds = time.perf_counter() - t
            c = card["comparison"]
            p = c["precision"]
            print(f"| {name} | {seed} | {p['influence']:.1%} | {p['target_sim']:.1%} | {p['target_sim_nearest']:.1%} "
                  f"| {p['random']:.1%} | {c['overlap']['influence~target_sim']:.0%} | {card['gradients']:,} "
                  f"| {seconds:.0f} | {card['similarity_seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
