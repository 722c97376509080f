"""Train the shipped default classifier, ``edu-quality-minilm``, from the quality set.

    .venv/bin/python classifiers/build_quality_set.py --out runs/quality_set.parquet
    .venv/bin/python classifiers/train_edu_default.py --set runs/quality_set.parquet \
        --out textcurate/assets/classifiers/edu-quality-minilm

The labeller is the set's provenance tier (0-5 by kind, ``build_quality_set.py``): on the
held-out kinds no LLM judge that runs on these machines beat it (docs/quality.md). Two fits,
the same recipe (``train_classifier``: MiniLM head, linear or MLP and its epoch chosen on the
validation kinds, isotonic calibration onto 0-5 from rows of kinds the head did not train on,
fastText on the same labels, the cascade's margin for 0.99 agreement):

1. the *held-out* fit: the set's test kinds are only scored. Its figures go into the card under
   ``heldout`` (AUC overall and per test kind, precision and recall of ``edu_int >= 3``, the
   share kept per kind, the cascade on those kinds). This is what the recipe gives text of a
   kind it has never seen.
2. the *shipped* fit: the test kinds join the training kinds (more kinds to learn from, as a
   user's corpus will hold kinds the set lacks); the validation kinds still choose the head and
   the epoch and fit the calibration. Its own test figures do not exist: the held-out fit's are
   the ones to quote.

The card's ``speed`` block is added afterwards from ``bench/edu_score.py --classifier
edu-default`` (documents/s of fastText alone and of the exact path, with the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

PROVENANCE = ("provenance tiers of the quality set (classifiers/build_quality_set.py: {n} documents of {k} kinds "
              "from {p} Debian, npm and PyPI packages and this machine's files; each kind a tier on the 0-5 scale, "
              "e.g. book/tutorial 5, manual/man page 4, README/dictionary 3, code/news/release notes 2, "
              "licence/changelog/config 1, logs/tables/JSON/generated text 0)")


def embeddings(path: str, texts: list[str]) -> np.ndarray:
    from safetensors.numpy import load_file, save_file

    if os.path.exists(path):
        X = load_file(path)["X"]
        if len(X) == len(texts):
            return X
    from textcurate.embed.embedder import Embedder

    X = np.asarray(Embedder("minilm", max_tokens=256).encode(texts), np.float32)
    save_file({"X": X}, path, metadata={"n": str(len(texts)), "model": "minilm"})
    return X


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="runs/quality_set.parquet")
    ap.add_argument("--emb", default=None, help="MiniLM vectors of the set (cached; default: beside the set)")
    ap.add_argument("--out", default="textcurate/assets/classifiers/edu-quality-minilm")
    ap.add_argument("--heldout-out", default="runs/edu-quality-heldout",
                    help="keep the held-out fit here (the classifier that never saw the test kinds: bench/"
                         "quality_evaluate.yaml scores the pool of test kinds with it)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from textcurate.classify.train import train_classifier

    rows = pq.read_table(args.set).to_pylist()
    ids, texts = [r["id"] for r in rows], [r["text"] for r in rows]
    tier = np.array([r["tier"] for r in rows], int)
    kinds, labels, split = [r["kind"] for r in rows], [r["label"] for r in rows], [r["split"] for r in rows]
    X = embeddings(args.emb or os.path.splitext(args.set)[0] + ".minilm.safetensors", texts)
    prov = PROVENANCE.format(n=len(rows), k=len(set(kinds)), p=len({r["package"] for r in rows}))
    common = dict(embeddings=X, target="tier", calibrate=True, kinds=kinds, labels=labels, seed=args.seed,
                  fasttext="labels", quantize=True)
    if os.path.exists(args.heldout_out):
        shutil.rmtree(args.heldout_out)
    held = train_classifier(ids, texts, tier, args.heldout_out, prov + "; held-out fit: the test kinds never seen",
                            split=split, **common)
    shipped_split = ["train" if s == "test" else s for s in split]
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    card = train_classifier(ids, texts, tier, args.out, prov, split=shipped_split, **common)
    test_kinds = sorted({k for k, s in zip(kinds, split) if s == "test"})
    val_kinds = sorted({k for k, s in zip(kinds, split) if s == "validation"})
    card["heldout"] = {
        "how": "the same recipe fitted without the test kinds (classifiers/train_edu_default.py, fit 1); test kinds "
               "chosen by the hash rule of build_quality_set.py before any measurement",
        "test_kinds": test_kinds, "validation_kinds": val_kinds,
        "head": {"kind": held["head"]["kind"], **held["metrics"]["test_provenance"]},
        "fasttext": held["fasttext"]["metrics"].get("test_provenance"),
        "cascade": held["cascade"],
        "validation_provenance": held["metrics"].get("validation_provenance")}
    card["set"] = {"file": os.path.basename(args.set), "documents": len(rows), "kinds": len(set(kinds)),
                   "packages": len({r["package"] for r in rows})}
    card["split"].pop("val_ids", None)  # thousands of ids: the set's split column is the record
    card["split"].pop("test_ids", None)
    card["limits"] = ("labels are provenance tiers by kind, not a judge's reading of each document: every document "
                      "of a kind shares its tier; held-out-kind AUC is below the 0.90 goal of issue 34 (see heldout); "
                      "English-centred; 256 MiniLM tokens per document")
    from textcurate.io.files import write_json_atomic

    write_json_atomic(os.path.join(args.out, "card.json"), card)
    h = card["heldout"]
    print(json.dumps({"out": args.out, "head": card["head"]["kind"], "heldout_head_auc": round(h["head"]["auc"], 4),
                      "heldout_fasttext_auc": round((h["fasttext"] or {}).get("auc", float("nan")), 4),
                      "heldout_cascade": h["cascade"].get("test"),
                      "per_kind": {k: (round(v["auc"], 3), round(v["kept@3"], 3))
                                   for k, v in h["head"].get("per_kind", {}).items()},
                      "shipped_cascade": {k: v for k, v in card["cascade"].items() if k != "why"},
                      "bytes": {f: os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out)}}, indent=1))


if __name__ == "__main__":
    main()
