"""``textcurate train-classifier``: heads on frozen embeddings (+ the n-gram model) from annotations."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from textcurate.classify.heads import fit_head, save_artifact, stratified_split
from textcurate.classify.metrics import regression_report
from textcurate.classify.ngram import train_ngram


def load_annotations(path: str) -> tuple[list[str], list[str], np.ndarray]:
    t = pq.read_table(path, columns=["id", "text", "score"]).to_pylist()
    rows = [r for r in t if r["score"] is not None]  # unparsed judge outputs carry no label
    if len(rows) < 10:
        raise ValueError(f"{path}: only {len(rows)} labelled rows; need at least 10")
    return [r["id"] for r in rows], [r["text"] for r in rows], np.array([r["score"] for r in rows], dtype=int)


def train_classifier(ids: list[str], texts: list[str], y: np.ndarray, out: str, provenance: str,
                     embedder_model: str = "minilm", max_tokens: int = 256, heads=("linear", "mlp"),
                     val_frac: float = 0.2, seed: int = 0, epochs: int = 300, with_ngram: bool = True,
                     embeddings: np.ndarray | None = None) -> dict:
    from textcurate.embed.embedder import Embedder

    X = embeddings if embeddings is not None else Embedder(embedder_model, max_tokens=max_tokens).encode(texts)
    X = np.asarray(X, dtype=np.float32)
    tr, va = stratified_split(y, val_frac, seed)
    per_head, best = {}, None
    for kind in heads:
        head, rep = fit_head(kind, X[tr], y[tr], X[va], y[va], epochs=epochs, seed=seed)
        per_head[kind] = rep
        if best is None or (rep["macro_f1"], -rep["mse"]) > (best[2]["macro_f1"], -best[2]["mse"]):
            best = (kind, head, rep)
    kind, head, rep = best
    card = {"type": "edu-classifier", "threshold": 3,
            "head": {"kind": kind, "dim": int(X.shape[1]), "hidden": 256},
            "embedder": {"model": embedder_model, "max_tokens": max_tokens},
            "labels": {"provenance": provenance, "n": int(len(y)),
                       "distribution": {str(c): int((y == c).sum()) for c in range(6)}},
            "split": {"seed": seed, "val_frac": val_frac, "n_train": int(len(tr)), "n_val": int(len(va)),
                      "val_ids": [ids[i] for i in va]},
            "metrics": {"validation": rep, "per_head": per_head}}
    ngram = None
    if with_ngram:
        ngram = train_ngram([texts[i] for i in tr], y[tr].astype(np.float32), seed=seed)
        card["ngram"] = {"n_buckets": ngram.n_buckets, "dim": ngram.dim, "max_chars": ngram.max_chars,
                         "metrics": {"validation": regression_report(y[va], ngram.predict([texts[i] for i in va]))}}
    if len(set(y.tolist())) < 2:  # a judge that gives every document one score teaches nothing
        card["warnings"] = [f"all {len(y)} labels are {int(y[0])}: the classifier predicts a constant"]
    save_artifact(out, head, card, ngram)
    return card
