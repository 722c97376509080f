"""Does a head trained on the judge's labels earn its place? Per embedder, on held-out sources.

    .venv/bin/python bench/edu_head.py --annotations classifiers/edu-smollm2-minilm/labels.parquet \
        [--set runs/edu_set.parquet] [--embedders minilm,bge-small,mpnet] [--judge-scores runs/judge/auc_smollm2.parquet]

The annotations are `textcurate annotate` run over classifiers/build_edu_set.py's labelled set
(so each row carries its ``source`` and ``split``); the set gives each document's provenance
label (1 educational, 0 boilerplate). For each embedder, on the same split (train sources ->
test sources, no source on both sides):

- ``head``: `train-classifier`'s head on the judge's continuous score ``score_expected``, fitted
  on the training sources (linear or MLP and the epoch chosen on a fifth of them, held out whole);
- ``LR (judge)``: scikit-learn ``LogisticRegression`` on the same embeddings and the judge's
  rounded scores, read as its expected class (the peer the head must match or beat);
- ``LR (provenance)``: the same on the provenance labels of the training sources, which no
  judge is needed for (what the judge's labels must be worth their cost against).

Printed: Spearman with the judge and AUC against provenance, on the test sources, for each;
the judge's own AUC and what a cut on its score keeps of each class; embedding speed (documents/s, the first 256 tokens); the CPU. With
``--judge-scores`` (bench/judge.py --scores-out), the judge's agreement with itself across
prompts, the bar the head's agreement is read against.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from judge import cpu_flags  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--annotations", required=True)
    ap.add_argument("--set", default=None, help="the labelled set (id, label, kind); default: the annotations "
                                                "file itself (the shipped labels.parquet carries both)")
    ap.add_argument("--embedders", default="minilm,bge-small,mpnet")
    ap.add_argument("--judge-scores", default=None)
    ap.add_argument("--save", default=None, help="keep the head of the first embedder in this folder")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pyarrow.parquet as pq
    from textcurate.classify.heads import load_artifact
    from textcurate.classify.metrics import auc, spearman
    from textcurate.classify.train import load_annotations, logistic_scores, train_classifier
    from textcurate.embed.embedder import Embedder

    ids, texts, y, extra = load_annotations(args.annotations, "score_expected")
    prov = {r["id"]: r for r in pq.read_table(args.set or args.annotations, columns=["id", "label", "kind"]).to_pylist()}
    label = np.array([prov[i]["label"] for i in ids])
    split = np.array(extra["split"])
    tr, te = np.flatnonzero(split != "test"), np.flatnonzero(split == "test")
    sources = extra["source"]
    print(f"CPU: {cpu_flags()}")
    print(f"{len(ids)} documents judged ({args.annotations}); train {len(tr)} from "
          f"{len({sources[i] for i in tr})} sources, test {len(te)} from {len({sources[i] for i in te})} sources")
    print(f"the judge itself on the test sources: AUC against provenance {auc(label[te], y[te]):.3f}")
    print("the judge's score kept by a cut (all rows): " + "; ".join(
        f">= {cut}: {np.mean(y[label == 1] >= cut):.0%} of the educational, {np.mean(y[label == 0] >= cut):.0%} of "
        "the boilerplate" for cut in (2.4, 2.5, 2.6, 2.7)))
    if args.judge_scores:
        js = pq.read_table(args.judge_scores).to_pydict()
        names = [k for k in js if k.startswith("score_") and k != "score_parsed"]
        pairs = [(a, b, spearman(js[a], js[b])) for i, a in enumerate(names) for b in names[i + 1:]]
        print("the judge with itself across prompts (Spearman): " + "; ".join(
            f"{a[6:]} ~ {b[6:]} {r:.3f}" for a, b, r in pairs))
    print("| embedder | dim | documents/s | head | head: Spearman with judge | head: AUC | "
          "LR (judge): Spearman | LR (judge): AUC | LR (provenance): AUC |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, name in enumerate(args.embedders.split(",")):
        emb = Embedder(name)
        try:
            emb.load()
        except Exception as e:  # a package that is not installed: say so, go on
            print(f"| {name} | skipped: {type(e).__name__}: {str(e).splitlines()[0][:120]} |")
            continue
        emb.encode(texts[:8])
        t = time.perf_counter()
        X = np.asarray(emb.encode(texts), dtype=np.float32)
        speed = len(texts) / (time.perf_counter() - t)
        out = args.save if (args.save and k == 0) else tempfile.mkdtemp(prefix="edu_head_")
        # the head is fitted and selected on the training sources only (a fifth of them, whole, for the
        # choice of head and epoch); the test sources stay out of every decision
        card = train_classifier([ids[i] for i in tr], [texts[i] for i in tr], y[tr], out, "bench", name,
                                embeddings=X[tr], sources=[sources[i] for i in tr], target="score_expected",
                                fasttext="none")
        head, _, _ = load_artifact(out)
        import torch

        with torch.no_grad():
            pred = head(torch.tensor(X[te])).squeeze(-1).numpy()
        lr_pred = logistic_scores(X[tr], y[tr], X[te])  # train-classifier's own peer
        lrp_pred = logistic_scores(X[tr], label[tr], X[te])  # 0/1 provenance: P(1)
        print(f"| {name} | {X.shape[1]} | {speed:.1f} | {card['head']['kind']} | {spearman(y[te], pred):.3f} | "
              f"{auc(label[te], pred):.3f} | {spearman(y[te], lr_pred):.3f} | {auc(label[te], lr_pred):.3f} | "
              f"{auc(label[te], lrp_pred):.3f} |")


if __name__ == "__main__":
    main()
