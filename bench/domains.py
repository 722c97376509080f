"""Domains: textcurate's ``domains`` stage against BERTopic, on runs whose documents carry a known kind.

Peer: BERTopic (``bertopic``, the library a corpus team reaches for to give a corpus topics: its
default UMAP + HDBSCAN clusters named by c-TF-IDF keywords), fitted on the very embeddings the run
stored, so that only the grouping and the naming are compared: once with its defaults and once with
k-means at the run's k (the run's own clustering, named BERTopic's way). WebOrganizer's topic and
format classifiers, the peer the issue names, are models on the Hugging Face hub, which these
machines cannot reach.

What is measured, against the documents' ``kind`` (the quality set's provenance: 24 kinds):
- topics: how many; the adjusted mutual information with the kinds; purity (the share of documents
  whose topic's commonest kind is their own); the share named (not left as ``cluster N``);
- formats: accuracy and macro-F1 against a kind -> format map written down before any run
  (``KIND_FORMAT``), beside the cheapest baselines: every document the commonest format, and the
  format whose description is nearest the document's embedding (the stage's ``format_by: embedding``:
  zero-shot, no judge);
- seconds: the judge's (from the run's ``domains.json``) and BERTopic's fit on the stored embeddings
  (embedding time, the same for both, left out).

    PYTHONPATH=/work/bertopic-pkgs .venv/bin/python bench/domains.py --runs runs/domains_evaluate runs/domains_judge

(BERTopic 0.17.4 and its clustering packages, installed with ``pip install --target /work/bertopic-pkgs
--no-deps bertopic hdbscan umap-learn pynndescent numba llvmlite plotly narwhals``; without them the
BERTopic rows are skipped and said so.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

# Written before any run was measured: the format of each kind of the quality set, in the stage's labels.
KIND_FORMAT = {
    "tutorial": "tutorial", "book": "tutorial", "manual": "reference", "manpage": "reference",
    "faq": "reference", "encyclopedia": "reference", "kernel-doc": "reference", "dictionary": "reference",
    "readme": "reference", "documented": "code", "plain-code": "code", "generated": "code",
    "changelog": "list or table", "release-notes": "news", "news": "news", "licence": "legal",
    "translation": "other", "config": "other", "log": "list or table", "table": "list or table",
    "json-data": "list or table", "index-page": "list or table", "package-records": "list or table",
    "wordlist": "list or table", "commit-log": "list or table", "fortunes": "other", "markov": "other",
    "generated-text": "other",
}


def read_run(run: str) -> dict:
    from textcurate.embed.stage import read_features
    from textcurate.io.readers import read_documents

    meta = {d.id: d.metadata for d in read_documents(run)}
    ids, emb = read_features(os.path.join(run, "features", "embed"))
    keep = [i for i, x in enumerate(ids) if x in meta]
    ids = [ids[i] for i in keep]
    with open(os.path.join(run, "artifacts", "domains", "domains.json")) as fh:
        card = json.load(fh)
    return {"ids": ids, "emb": np.asarray(emb[keep], dtype=np.float32), "card": card,
            "kind": [meta[i]["kind"] for i in ids], "topic": [meta[i]["topic"] for i in ids],
            "cluster": [meta[i]["cluster_id"] for i in ids], "format": [meta[i]["format"] for i in ids]}


def topic_scores(kinds: list[str], groups: list) -> dict:
    from sklearn.metrics import adjusted_mutual_info_score

    by: dict = {}
    for k, g in zip(kinds, groups):
        by.setdefault(g, Counter())[k] += 1
    purity = sum(c.most_common(1)[0][1] for c in by.values()) / len(kinds)
    return {"topics": len(by), "ami": adjusted_mutual_info_score(kinds, [str(g) for g in groups]), "purity": purity}


def format_scores(truth: list[str], pred: list[str]) -> dict:
    from sklearn.metrics import f1_score

    labels = sorted(set(truth))
    return {"accuracy": float(np.mean([a == b for a, b in zip(truth, pred)])),
            "macro_f1": float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0))}


def fit_bertopic(texts: list[str], emb: np.ndarray, k: int | None) -> tuple[list, float, list[str]]:
    from bertopic import BERTopic

    kwargs = {}
    if k is not None:
        from sklearn.cluster import KMeans

        kwargs["hdbscan_model"] = KMeans(n_clusters=k, n_init=1, random_state=0)
    else:
        from umap import UMAP

        kwargs["umap_model"] = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=0)
    model = BERTopic(calculate_probabilities=False, **kwargs)
    t0 = time.perf_counter()
    topics, _ = model.fit_transform(texts, embeddings=emb)
    seconds = time.perf_counter() - t0
    names = [str(n) for n in model.get_topic_info()["Name"].head(6)]
    return topics, seconds, names


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", nargs="+", required=True, help="finished runs with a domains stage")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from judge import cpu_flags

    from textcurate.embed.embedder import Embedder

    print(f"CPU: {cpu_flags()}")
    rows = []
    base = None
    for run in args.runs:
        r = read_run(run)
        card = r["card"]
        truth = [KIND_FORMAT.get(k, "other") for k in r["kind"]]
        named = float(np.mean([not t.startswith("cluster ") for t in r["topic"]]))
        secs = card.get("seconds") or {}
        label = f"textcurate domains ({card.get('model')}, {card.get('engine')})"
        rows.append((run, label, topic_scores(r["kind"], r["topic"]), named, format_scores(truth, r["format"]),
                     sum(secs.values()) if secs else None))
        rows.append((run, "k-means clusters alone (the run's cluster_id)", topic_scores(r["kind"], r["cluster"]),
                     0.0, None, None))
        if base is None:
            base = r
    # baselines and the peer, on the first run's embeddings (every run embeds the same pool the same way)
    truth = [KIND_FORMAT.get(k, "other") for k in base["kind"]]
    common = Counter(truth).most_common(1)[0][0]
    rows.append((args.runs[0], f"every document '{common}' (the commonest format)", None, None,
                 format_scores(truth, [common] * len(truth)), None))
    from textcurate.domains.domains_stage import DESCRIPTIONS

    formats = list(DESCRIPTIONS)  # what the stage's format_by: embedding compares with
    fe = np.asarray(Embedder("minilm").encode([DESCRIPTIONS[f] for f in formats]), dtype=np.float32)
    e = base["emb"] / np.maximum(np.linalg.norm(base["emb"], axis=1, keepdims=True), 1e-9)
    fe = fe / np.maximum(np.linalg.norm(fe, axis=1, keepdims=True), 1e-9)
    zero = [formats[j] for j in (e @ fe.T).argmax(axis=1)]
    rows.append((args.runs[0], "nearest format description (format_by: embedding, no judge)", None, None,
                 format_scores(truth, zero), None))
    rng = np.random.default_rng(0)
    rows.append((args.runs[0], "random topics (20, uniform)", topic_scores(base["kind"], list(rng.integers(0, 20,
                 len(base["kind"])))), 0.0, None, None))
    try:
        import bertopic  # noqa: F401
    except ImportError as e:
        print(f"BERTopic rows skipped: {e}")
    else:
        from textcurate.io.readers import read_documents

        text = {d.id: d.text for d in read_documents(args.runs[0])}
        texts = [text[i] for i in base["ids"]]
        k = len(set(base["cluster"]))
        for kk, what in ((None, "BERTopic 0.17 defaults (UMAP + HDBSCAN, c-TF-IDF names)"),
                         (k, f"BERTopic with k-means, k = {k} (c-TF-IDF names)")):
            topics, seconds, names = fit_bertopic(texts, base["emb"], kk)
            rows.append((args.runs[0], what, topic_scores(base["kind"], topics), float(np.mean([t != -1 for t in topics])),
                         None, seconds))
            print(f"{what}: first names {names}")
    print(f"{len(base['kind']):,} documents of {len(set(base['kind']))} kinds; format truth from KIND_FORMAT")
    print("| method | run | topics | AMI with kinds | purity | named (not an outlier) | format accuracy | "
          "format macro-F1 | fit seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run, what, t, named, f, secs in rows:
        tt = f"{t['topics']} | {t['ami']:.3f} | {t['purity']:.3f}" if t else "- | - | -"
        ff = f"{f['accuracy']:.3f} | {f['macro_f1']:.3f}" if f else "- | -"
        nn = f"{named:.0%}" if named is not None else "-"
        ss = f"{secs:.1f}" if secs is not None else "-"
        print(f"| {what} | {os.path.basename(run)} | {tt} | {nn} | {ff} | {ss} |")


if __name__ == "__main__":
    main()
