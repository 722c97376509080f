"""Does adding synthetic pages help a small LM on the seeds' domain more than adding real data?

    .venv/bin/python bench/synth_evaluate.py [--pages 96] [--model auto] [--out runs/synth_evaluate]
        [--budget 400k] [--seeds 0,1]

The real corpus: the shipped labelled set (classifiers/edu-smollm2-minilm/labels.parquet, 1,483
documents from 436 sources). The domain: its tutorials and manuals (``kind in ('tutorial',
'manual')``); 30 % of them are held out as the target (``evaluate``'s own rule), the rest are
the seed corpus of a ``textcurate synth`` run (so no extract comes from a target document).
Then one ``evaluate`` run (the small-LM kit: fresh GPTs, the same budget and seed for every
run) trains on
- ``base + synthetic``: a random half of the real pool plus every kept synthetic page;
- ``base + real``: the same half plus random real documents of the other half, as many
  characters as the synthetic pages;
- ``base``: the half alone,
and prints the loss on the held-out target and on a general held-out sample, per seed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from judge import cpu_flags  # noqa: E402

DOMAIN = "kind in ('tutorial', 'manual')"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="classifiers/edu-smollm2-minilm/labels.parquet")
    ap.add_argument("--pages", type=int, default=96)
    ap.add_argument("--model", default="auto", help="the writer (synth's engine.model)")
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--out", default="runs/synth_evaluate")
    ap.add_argument("--budget", default="400k")
    ap.add_argument("--seeds", default="0,1")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pyarrow.parquet as pq
    from datatrove.data import Document

    from textcurate.config import parse_pipeline
    from textcurate.evaluate.run import evaluate, split_documents
    from textcurate.evaluate.spec import EvaluateSpec
    from textcurate.io.readers import read_documents
    from textcurate.io.records import hash_share
    from textcurate.runner.run import run_pipeline

    os.makedirs(args.out, exist_ok=True)
    rows = pq.read_table(args.set, columns=["id", "text", "source", "kind"]).to_pylist()
    real = [Document(text=r["text"], id=r["id"], metadata={"source": r["source"], "kind": r["kind"]}) for r in rows]
    spec = EvaluateSpec(target={"expr": DOMAIN, "holdout": 0.3}, fractions=[0.5, 1.0],
                        seeds=[int(s) for s in args.seeds.split(",")], budget_tokens=args.budget, max_doc_tokens=512,
                        selections=[{"name": "x", "ids": "-"}])  # replaced below
    split = split_documents(real, spec)
    seeds_path = os.path.join(args.out, "seeds.jsonl")
    with open(seeds_path, "w") as fh:
        for d in split.pool:
            if d.metadata["kind"] in ("tutorial", "manual"):
                fh.write(json.dumps({"id": d.id, "text": d.text}) + "\n")
    run_dir = os.path.join(args.out, "synth")
    cfg = parse_pipeline({
        "name": "synth-evaluate",
        "input": {"type": "synth", "seeds": {"type": "jsonl", "path": seeds_path}, "clusters": 8,
                  "pages": args.pages, "extract_chars": 1000, "engine": {"kind": "transformers", "model": args.model},
                  "max_tokens": args.max_tokens, "temperature": 0.8, "top_p": 0.95, "batch_size": 16},
        "stages": [{"type": "synth_check", "min_chars": 300, "drop_truncated": False}, {"type": "minhash"}],
        "output": {"path": run_dir}, "executor": {"type": "local", "tasks": 1}})
    record = run_pipeline(cfg, report=False)
    synthetic = [Document(text=d.text, id=d.id, metadata={"kind": "synthetic", "source": "synth"})
                 for d in read_documents(os.path.join(run_dir, "documents"))]
    syn_chars = sum(len(d.text) for d in synthetic)
    base = [d for d in split.pool if hash_share(d.id, 0xBA5E) < 0.5]
    rest = [d for d in split.pool if hash_share(d.id, 0xBA5E) >= 0.5]
    order = np.random.default_rng(0).permutation(len(rest))
    extra, chars = [], 0
    for i in order:
        if chars >= syn_chars:
            break
        extra.append(rest[i])
        chars += len(rest[i].text)
    ids = {"base": [d.id for d in base], "base+synthetic": [d.id for d in base + synthetic],
           "base+real": [d.id for d in base + extra]}
    sels = []
    for name, lst in ids.items():
        path = os.path.join(args.out, f"{name}.ids")
        with open(path, "w") as fh:
            fh.write("\n".join(lst) + "\n")
        sels.append({"name": name, "ids": path})
    spec = EvaluateSpec(**{**spec.model_dump(), "selections": sels})
    result = evaluate(real + synthetic, spec, os.path.join(args.out, "evaluate"), log=lambda *_: None)
    print(f"CPU: {cpu_flags()}")
    print(f"synthetic pages: {len(synthetic)} kept of {record['ledger']['totals']['in']} prompts "
          f"({syn_chars:,} chars; writer {record.get('input', {}).get('writer')}); real extra: {len(extra)} documents "
          f"({chars:,} chars); base: {len(base)} documents; target: {result['target']['documents']} held-out "
          f"tutorial/manual documents; {result['spec']['budget_tokens']:,} training tokens per run, "
          f"{result['model']['parameters']:,}-parameter GPT")
    print("| training set | documents | tokens | target loss (per seed) | mean | general held-out loss (mean) |")
    print("|---|---|---|---|---|---|")
    for name in ids:
        runs = [r for r in result["runs"] if r["name"] == name]
        t = [r["target_loss"] for r in runs]
        g = [r.get("general_loss", float("nan")) for r in runs]
        print(f"| {name} | {runs[0]['documents']:,} | {runs[0]['tokens']:,} | "
              + ", ".join(f"{x:.4f}" for x in t) + f" | {np.mean(t):.4f} | {np.mean(g):.4f} |")


if __name__ == "__main__":
    main()
