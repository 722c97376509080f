"""Which quality signal holds on kinds of text it has never seen: every scorer and baseline on
the quality set's held-out kinds.

    .venv/bin/python classifiers/build_quality_set.py --out runs/quality_set.parquet
    .venv/bin/python bench/quality.py --set runs/quality_set.parquet [--judge NAME=SCORES.parquet ...]

The set (``classifiers/build_quality_set.py``) is split by kind and package, by a rule fixed
before anything was measured: three educational and three boilerplate kinds are *test* kinds,
two of each *validation* kinds, the rest train. Every learnt scorer is fitted on the training
kinds; every choice (a regularisation strength, a head, an epoch, a sign, a threshold) is made on
the validation kinds; the test kinds are only scored. Labels are provenance (``label``: the
kind's tier >= 3).

Printed, for every scorer: AUC on the test kinds overall and per test kind (that kind against
every test document of the other label), the validation AUC, the share of each test kind
above the scorer's keep threshold (``edu_int >= 3`` for a calibrated 0-5 classifier; otherwise
the threshold that best separates the validation kinds, Youden's J), and seconds per document
(MiniLM's embedding included where a scorer reads it; the CPU is named). LLM judges are slow:
score a sample with ``textcurate annotate`` or ``bench/quality_judge.py`` and pass the scores
(columns ``id`` and ``score``) with ``--judge``; their rows are on their sample, beside the
same sample's AUC of the best cheap scorer.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import re
import sys
import time

import numpy as np
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from judge import cpu_flags  # noqa: E402  (bench/judge.py: the CPU line every judge bench prints)
from textcurate.classify.metrics import auc  # noqa: E402


def embeddings(path: str, texts: list[str], model: str = "minilm") -> tuple[np.ndarray, float]:
    """MiniLM vectors of ``texts`` (cached in ``path``) and seconds per document to make them."""
    from safetensors.numpy import load_file, save_file

    if os.path.exists(path):
        from safetensors import safe_open

        with safe_open(path, "np") as fh:
            meta = fh.metadata() or {}
        X = load_file(path)["X"]
        if len(X) == len(texts):
            return X, float(meta.get("seconds", "nan")) / len(texts)
    from textcurate.embed.embedder import Embedder

    t = time.perf_counter()
    X = np.asarray(Embedder(model, max_tokens=256).encode(texts), np.float32)
    dt = time.perf_counter() - t
    save_file({"X": X}, path, metadata={"seconds": f"{dt:.1f}", "n": str(len(texts)), "model": model})
    return X, dt / len(texts)


def youden(y: np.ndarray, s: np.ndarray) -> float:
    """The cut on ``s`` that maximises sensitivity + specificity on (y, s)."""
    order = np.unique(s)
    best, cut = -1.0, float(order[0])
    for c in np.quantile(s, np.linspace(0.01, 0.99, 99)):
        pred = s >= c
        j = pred[y == 1].mean() + (~pred[y == 0]).mean()
        if j > best:
            best, cut = j, float(c)
    return cut


# ---- the cheap signals ----

def fit_logistic(Xtr, ytr, Xva, yva, Cs=(0.1, 0.3, 1, 3, 10)):
    """LogisticRegression, C chosen on validation AUC; returns the fitted model."""
    from sklearn.linear_model import LogisticRegression

    best = None
    for C in Cs:
        m = LogisticRegression(C=C, max_iter=3000).fit(Xtr, ytr)
        a = auc(yva, m.decision_function(Xva))
        if best is None or a > best[0]:
            best = (a, m)
    return best[1]


def fit_ridge(Xtr, ytr, Xva, yva_label, alphas=(0.1, 1, 10, 100)):
    from sklearn.linear_model import Ridge

    best = None
    for a_ in alphas:
        m = Ridge(alpha=a_).fit(Xtr, ytr)
        a = auc(yva_label, m.predict(Xva))
        if best is None or a > best[0]:
            best = (a, m)
    return best[1]


_WORD = re.compile(r"\w+|[^\w\s]")


def moore_lewis(ref: list[str], pool: list[str], texts: list[str], k: float = 0.1) -> np.ndarray:
    """Moore & Lewis (2010) with the paper's n-gram LMs: per-token cross-entropy under a bigram
    model of the pool minus under one of the reference (add-k smoothing, interpolated with the
    unigram); higher is more like the reference."""
    def counts(docs):
        uni, bi = collections.Counter(), collections.Counter()
        for d in docs:
            toks = ["<s>"] + _WORD.findall(d[:4000].lower())
            uni.update(toks)
            bi.update(zip(toks, toks[1:]))
        return uni, bi

    models = [counts(ref), counts(pool)]
    vocab = len(set(models[0][0]) | set(models[1][0])) + 1

    def xent(model, toks):
        uni, bi = model
        n = sum(uni.values())
        h = 0.0
        for a, b in zip(toks, toks[1:]):
            pu = (uni[b] + k) / (n + k * vocab)
            pb = (bi[(a, b)] + k * vocab * pu) / (uni[a] + k * vocab)
            h -= math.log(pb)
        return h / max(1, len(toks) - 1)

    out = np.zeros(len(texts))
    for i, t in enumerate(texts):
        toks = ["<s>"] + _WORD.findall(t[:4000].lower())
        out[i] = xent(models[1], toks) - xent(models[0], toks)
    return out


def shipped(name: str, X: np.ndarray, texts: list[str] | None = None) -> np.ndarray:
    """A classifier's ``edu_score`` (its calibration applied): its head on MiniLM vectors, or with
    ``texts`` its fastText model on the texts."""
    import torch

    from textcurate.assets import classifier_path
    from textcurate.classify.heads import calibrate, load_artifact

    head, card, fast = load_artifact(classifier_path(name))
    if texts is not None:
        if fast is None:
            raise ValueError(f"{name} has no fastText model")
        return calibrate(fast.predict(texts), card["fasttext"])
    with torch.inference_mode():
        raw = head(torch.tensor(X)).squeeze(-1).numpy()
    return calibrate(raw, card)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="runs/quality_set.parquet")
    ap.add_argument("--emb", default=None, help="embedding cache (default: beside the set)")
    ap.add_argument("--embedder", default="minilm", help="the embedder of the embedding rows: minilm | mpnet (make "
                                                        "setup-embedders) | a sentence-transformers folder")
    ap.add_argument("--classifiers", default="edu-smollm2-minilm,provenance-minilm,edu-default,runs/edu-quality-heldout",
                    help="shipped classifiers to score (comma-separated)")
    ap.add_argument("--judge", action="append", default=[], help="NAME=SCORES.parquet (id, score[, seconds])")
    ap.add_argument("--scores-out", default=None, help="write every scorer's scores here (parquet)")
    ap.add_argument("--pool-out", default=None,
                    help="write the test kinds' documents here (parquet: id, text, kind, label, tier, target_sim) as "
                         "the pool of bench/quality_evaluate.yaml")
    ap.add_argument("--loko", action="store_true", help="also leave-one-kind-out AUC over the training kinds")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rows = pq.read_table(args.set).to_pylist()
    texts = [r["text"] for r in rows]
    y = np.array([r["label"] for r in rows])
    tier = np.array([r["tier"] for r in rows], float)
    kind = np.array([r["kind"] for r in rows])
    split = np.array([r["split"] for r in rows])
    tr, va, te = (np.where(split == s)[0] for s in ("train", "validation", "test"))
    tag = "minilm" if args.embedder == "minilm" else os.path.basename(args.embedder.rstrip("/"))
    emb_path = args.emb or os.path.splitext(args.set)[0] + f".{tag}.safetensors"
    X, emb_s = embeddings(emb_path, texts, args.embedder)
    E = "MiniLM" if args.embedder == "minilm" else tag  # the name in the embedding rows
    print(f"{len(rows)} documents: train {len(tr)} ({len(set(kind[tr]))} kinds), validation {len(va)} "
          f"({', '.join(sorted(set(kind[va])))}), test {len(te)} ({', '.join(sorted(set(kind[te])))}); "
          f"CPU: {cpu_flags()}")

    scores: dict[str, np.ndarray] = {}
    cost: dict[str, float] = {}
    calibrated: set[str] = set()

    def timed(name, fn, per_doc_extra=0.0):
        t = time.perf_counter()
        s = np.asarray(fn(), float)
        scores[name] = s
        cost[name] = (time.perf_counter() - t) / len(rows) + per_doc_extra

    rng = np.random.default_rng(args.seed)
    timed("random", lambda: rng.random(len(rows)))
    timed("length (characters)", lambda: np.array([len(t) for t in texts]))
    for name in [c for c in args.classifiers.split(",") if c]:
        try:
            timed(f"shipped: {name}", lambda: shipped(name, X), emb_s)
            calibrated.add(f"shipped: {name}")
            timed(f"shipped: {name} (fastText)", lambda: shipped(name, X, texts))
            calibrated.add(f"shipped: {name} (fastText)")
        except Exception as e:  # noqa: BLE001  (a classifier not there: said, and the rest goes on)
            print(f"  (shipped classifier {name} not scored: {str(e).splitlines()[0]})")

    from sklearn.feature_extraction.text import TfidfVectorizer

    # learnt scorers: fit(training rows) -> scores of every row; choices inside on the validation rows
    def tfidf_lr(t):
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=200_000)
        A = vec.fit_transform([texts[i] for i in t])
        B = vec.transform(texts)
        return fit_logistic(A, y[t], B[va], y[va]).decision_function(B)

    def mlp(t):
        import torch

        from textcurate.classify.heads import fit_head

        head, _ = fit_head("mlp", X[t], tier[t].astype(np.float32), X[va], tier[va].astype(np.float32),
                           seed=args.seed, continuous=True)
        with torch.no_grad():
            return head(torch.tensor(X)).squeeze(-1).numpy()

    def fasttext_tiers(t):
        """train-classifier's fastText: a classifier on the rounded tiers, its expected label; epochs
        and rate chosen on the validation rows' Spearman."""
        import tempfile

        from textcurate.classify.fasttext_model import train_fasttext

        with tempfile.TemporaryDirectory() as d:
            sc, _ = train_fasttext([texts[i] for i in t], tier[t], d, val_texts=[texts[i] for i in va],
                                   val_y=tier[va], seed=args.seed)
            return sc.predict(texts)

    def fasttext_clf(t):
        """fastText (fasttext-numpy2-wheel, datatrove's pin) supervised on provenance, word bigrams;
        epochs and learning rate chosen on the validation AUC; the score is P(educational)."""
        import tempfile

        import fasttext

        clean = [" ".join(x.split()) for x in texts]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            for i in t:
                fh.write(f"__label__{y[i]} {clean[i]}\n")
        best = None
        for epoch in (5, 15, 30):
            for lr in (0.1, 0.5):
                m = fasttext.train_supervised(fh.name, epoch=epoch, lr=lr, wordNgrams=2, dim=64, minCount=2,
                                              bucket=1 << 20, thread=1, seed=args.seed, verbose=0)
                labels, probs = m.predict(clean, k=2)
                p1 = np.array([dict(zip(lab, pr)).get("__label__1", 0.0) for lab, pr in zip(labels, probs)])
                a = auc(y[va], p1[va])
                if best is None or a > best[0]:
                    best = (a, p1)
        os.unlink(fh.name)
        return best[1]

    try:
        import fasttext  # noqa: F401  (pip install fasttext-numpy2-wheel: datatrove's pin, works with numpy 2)
        have_ft = True
    except ImportError:
        have_ft = False
        print("  (fastText not scored: pip install fasttext-numpy2-wheel)")
    learnt = {"TF-IDF uni+bigram + logistic regression (provenance)": (tfidf_lr, 0.0),
              **({"fastText bigrams, supervised (provenance)": (fasttext_clf, 0.0)} if have_ft else {}),
              **({"fastText on tiers, expected label (train-classifier's)": (fasttext_tiers, 0.0)} if have_ft else {}),
              f"{E} + logistic regression (provenance)":
                  (lambda t: fit_logistic(X[t], y[t], X[va], y[va]).decision_function(X), emb_s),
              f"{E} + ridge on tiers (provenance)": (lambda t: fit_ridge(X[t], tier[t], X[va], y[va]).predict(X),
                                                       emb_s),
              f"{E} + MLP head on tiers (provenance)": (mlp, emb_s)}
    for name, (fn, extra) in learnt.items():
        timed(name, lambda: fn(tr), extra)
    # DCLM's recipe: a reference of good text against a random sample of the pool (not boilerplate labels)
    ref = tr[y[tr] == 1]
    pool = rng.choice(tr, size=len(ref), replace=False)

    def dclm(on_text: bool):
        lab = np.r_[np.ones(len(ref)), np.zeros(len(pool))]
        idx = np.r_[ref, pool]
        if on_text:
            vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=200_000)
            A = vec.fit_transform([texts[i] for i in idx])
            B = vec.transform(texts)
            return fit_logistic(A, lab, B[va], y[va]).decision_function(B)
        return fit_logistic(X[idx], lab, X[va], y[va]).decision_function(X)

    timed("DCLM-style: reference vs pool sample, TF-IDF + LR", lambda: dclm(True))
    timed(f"DCLM-style: reference vs pool sample, {E} + LR", lambda: dclm(False), emb_s)
    timed("Moore-Lewis: bigram LM cross-entropy difference, reference vs pool",
          lambda: moore_lewis([texts[i] for i in ref], [texts[i] for i in tr], texts))

    def target_sim():
        c = X[ref].mean(0)
        return X @ (c / np.linalg.norm(c))

    timed("similarity to the reference's mean embedding (target_sim)", target_sim, emb_s)

    def combo():
        a = scores[f"{E} + logistic regression (provenance)"]
        b = scores["TF-IDF uni+bigram + logistic regression (provenance)"]
        z = lambda s: (s - s[va].mean()) / (s[va].std() + 1e-9)  # noqa: E731
        return z(a) + z(b)

    timed(f"{E} LR + TF-IDF LR (z-scores on validation, summed)", combo,
          cost[f"{E} + logistic regression (provenance)"] + cost["TF-IDF uni+bigram + logistic regression (provenance)"])

    # leave-one-kind-out over the training kinds: every training row scored by a model fitted without
    # its kind (a second, larger view of how a scorer carries to unseen kinds; never the test kinds)
    loko = {}
    if args.loko:
        for name, (fn, _) in learnt.items():
            oof = np.zeros(len(rows))
            for k in sorted(set(kind[tr])):
                held = tr[kind[tr] == k]
                oof[held] = fn(tr[kind[tr] != k])[held]
            loko[name] = auc(y[tr], oof[tr])

    # signs and thresholds: from the validation kinds only
    for name in list(scores):
        if name not in calibrated and name != "random" and auc(y[va], scores[name][va]) < 0.5:
            scores[name] = -scores[name]  # the direction the validation kinds say (length: shorter is better?)

    test_kinds = sorted(set(kind[te]), key=lambda k: (-y[te][kind[te] == k][0], k))

    def row(name, s, idx, t_cost):
        lab = y[idx]
        cut = 2.5 if name in calibrated else youden(y[va], s[va])
        per_kind = []
        for k in test_kinds:
            m = idx[(kind[idx] == k) | (lab != y[kind == k][0])]
            per_kind.append(auc(y[m], s[m]) if len(set(kind[idx]) & {k}) else float("nan"))
        share = [float(np.mean(s[idx[kind[idx] == k]] >= cut)) if np.any(kind[idx] == k) else float("nan")
                 for k in test_kinds]
        lk = f"{loko[name]:.3f}" if name in loko else "-"
        return (f"| {name} | **{auc(lab, s[idx]):.3f}** | " + " | ".join(f"{a:.2f}" for a in per_kind) +
                f" | {auc(y[va], s[va]):.3f} | {lk} | " + " | ".join(f"{100 * v:.0f}%" for v in share) +
                f" | {t_cost:.4f} |")

    head = ("| scorer | test AUC | " + " | ".join(f"AUC {k}" for k in test_kinds) + " | validation AUC | "
            "leave-one-kind-out AUC (train) | " + " | ".join(f"kept {k}" for k in test_kinds) + " | s/doc |")
    print(head)
    print("|---" * (5 + 2 * len(test_kinds)) + "|")
    for name, s in scores.items():
        print(row(name, s, te, cost[name]))

    for spec in args.judge:  # LLM judges on their sample, with the best cheap scorer on the same sample
        name, path = spec.split("=", 1)
        j = {r["id"]: r for r in pq.read_table(path).to_pylist()}
        ids = [r["id"] for r in rows]
        idx = np.array([i for i, d in enumerate(ids) if d in j and j[d]["score"] is not None])
        js = np.zeros(len(rows))
        js[idx] = [j[ids[i]]["score"] for i in idx]
        sec = np.nanmean([j[ids[i]].get("seconds", float("nan")) for i in idx]) if "seconds" in \
            next(iter(j.values())) else float("nan")
        sub_te, sub_va = idx[split[idx] == "test"], idx[split[idx] == "validation"]
        print(f"\n{name}: {len(sub_te)} test and {len(sub_va)} validation documents ({path})")
        for nm, s in [(name, js)] + [(n, scores[n]) for n in scores if n.startswith("shipped: edu-default")]:
            lab = y[sub_te]
            print(f"  {nm}: test AUC {auc(lab, s[sub_te]):.3f}; validation AUC "
                  f"{auc(y[sub_va], s[sub_va]) if len(sub_va) else float('nan'):.3f}; per test kind " +
                  ", ".join(f"{k} {auc(y[m], s[m]):.2f}" for k in test_kinds
                            for m in [sub_te[(kind[sub_te] == k) | (lab != y[kind == k][0])]] if np.any(kind[m] == k))
                  + (f"; {sec:.2f} s/doc" if nm == name else ""))

    if args.pool_out:  # target_sim: cosine to the training reference's mean embedding (as the scorer above)
        import pyarrow as pa

        c = X[ref].mean(0)
        sim = X @ (c / np.linalg.norm(c))
        pq.write_table(pa.table({"id": [rows[i]["id"] for i in te], "text": [texts[i] for i in te],
                                 "kind": kind[te], "label": y[te], "tier": tier[te].astype(int),
                                 "target_sim": sim[te].astype(np.float32)}), args.pool_out)

    if args.scores_out:
        import pyarrow as pa

        pq.write_table(pa.table({"id": [r["id"] for r in rows], "kind": kind, "split": split, "label": y,
                                 **{n: s for n, s in scores.items()}}), args.scores_out)


if __name__ == "__main__":
    main()
