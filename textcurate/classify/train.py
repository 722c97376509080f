"""``textcurate train-classifier``: heads on frozen embeddings (+ a fastText model) from annotations.

Labels are the judge's integer ``score`` or, where the annotations have it, its continuous
``score_expected`` (the answer's distribution: a small judge ranks far better with it). Rows
whose ``split`` column says ``test`` are held out of everything and scored at the end
(``metrics.test``). The head and its epoch are chosen on a validation set from the other rows:
whole *sources* (a ``source`` column) chosen by a hash of their name, so no source is on both
sides, else a split stratified by rounded score (the card says which). Beside the head, the card
reports the cheapest peer on the same embeddings and rows: scikit-learn's
``LogisticRegression`` on the rounded scores, read as its expected score.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import torch

from textcurate.classify.heads import fit_head, save_artifact, selection_metric, stratified_split
from textcurate.classify.metrics import regression_report, to_int
from textcurate.io.records import hash_share

TARGETS = ("auto", "score", "score_expected")


EXTRA = ("source", "split", "kind", "label")


def load_annotations(path: str, target: str = "auto") -> tuple[list[str], list[str], np.ndarray, dict]:
    """(ids, texts, labels, extra): ``labels`` float (the continuous score) or int; ``extra`` holds
    the ``source``, ``split``, ``kind`` and ``label`` columns when the file has them, and ``target``,
    the column used (``auto``: score_expected where it has values, else score; or any 0-5 column of
    the file, such as a labelled set's ``tier``)."""
    names = pq.read_schema(path).names
    if target not in TARGETS and target not in names:
        raise ValueError(f"{path}: no {target!r} column (target: {', '.join(TARGETS)} or a column of the file)")
    if target == "auto":
        target = "score"
        if "score_expected" in names:
            col = pq.read_table(path, columns=["score_expected"]).column("score_expected")
            if col.null_count < len(col):
                target = "score_expected"
    if target not in names:
        raise ValueError(f"{path}: no {target!r} column")
    cols = ["id", "text", target] + [c for c in EXTRA if c in names and c != target]
    rows = [r for r in pq.read_table(path, columns=cols).to_pylist() if r[target] is not None]
    # unparsed judge outputs carry no label
    if len(rows) < 10:
        raise ValueError(f"{path}: only {len(rows)} labelled rows; need at least 10")
    vals = [r[target] for r in rows]
    integral = all(float(v).is_integer() for v in vals)
    y = np.array(vals, dtype=int if integral and target != "score_expected" else np.float32)
    extra = {"target": target, **{c: [r[c] for r in rows] for c in EXTRA if c in names and c != target}}
    return [r["id"] for r in rows], [r["text"] for r in rows], y, extra


def holdout_split(y: np.ndarray, val_frac: float, seed: int, sources: list | None = None,
                  split: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(train, validation, test indices, how). ``test``: the rows whose ``split`` is ``test`` (empty
    without that column); they never take part in a choice. ``validation`` (the choice of head and
    epoch): the rows whose ``split`` is ``validation`` where there are any, else from the rest whole
    sources by a seeded hash of their name, else stratified by rounded score."""
    idx = np.arange(len(y))
    test = np.array([], dtype=int)
    if split is not None and any(s == "test" for s in split) and any(s != "test" for s in split):
        test = np.array([i for i, s in enumerate(split) if s == "test"], dtype=int)
        idx = np.setdiff1d(idx, test)
    how = "test: the rows whose split is 'test'; " if len(test) else ""
    if split is not None and any(s == "validation" for s in split):
        va = np.array([i for i, s in enumerate(split) if s == "validation"], dtype=int)
        if len(va) < len(idx):
            return np.setdiff1d(idx, va), va, test, how + "validation: the rows whose split is 'validation'"
    if sources is not None:
        pool = sorted({sources[i] for i in idx})
        if len(pool) >= 2:
            names = sorted(pool, key=lambda s: hash_share(str(s), seed))
            held = set(names[:max(1, int(round(val_frac * len(names))))])
            va = np.array([i for i in idx if sources[i] in held], dtype=int)
            if 0 < len(va) < len(idx):
                return (np.setdiff1d(idx, va), va, test,
                        how + f"validation: {len(held)} of {len(names)} sources held out whole")
    yi = to_int(y[idx]) if y.dtype.kind == "f" else y[idx]
    tr, va = stratified_split(yi, val_frac, seed)
    return idx[tr], idx[va], test, how + "validation: random, stratified by rounded score (no source column)"


def logistic_scores(Xtr, ytr, Xev, seed: int = 0) -> np.ndarray | None:
    """scikit-learn LogisticRegression on the rounded labels, its score on ``Xev`` the expected
    class; None when the labels have one class."""
    from sklearn.linear_model import LogisticRegression

    classes = to_int(ytr)
    if len(set(classes.tolist())) < 2:
        return None
    lr = LogisticRegression(max_iter=2000, C=1.0, random_state=seed).fit(Xtr, classes)
    return lr.predict_proba(Xev) @ lr.classes_.astype(np.float32)


def logistic_baseline(Xtr, ytr, Xev, yev, seed: int = 0) -> dict:
    """The report of ``logistic_scores`` on the evaluation rows ({} with one class)."""
    pred = logistic_scores(Xtr, ytr, Xev, seed)
    return {} if pred is None else regression_report(yev, pred)


def out_of_group(tr: np.ndarray, groups: list, score_without) -> np.ndarray:
    """Each training row scored by a model fitted without its whole group (its kind, or its
    source): ``score_without(rest, held)`` fits on the rows ``rest`` and scores the rows ``held``.
    What a model gives text of a kind it never saw."""
    out = np.zeros(len(tr), np.float32)
    g = np.array([groups[i] for i in tr])
    for name in sorted(set(g.tolist())):
        m = g == name
        if not m.all():
            out[m] = score_without(tr[~m], tr[m])
    return out


def out_of_group_scores(kind: str, X: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray, groups: list,
                        epochs: int, seed: int, continuous: bool) -> np.ndarray:
    """``out_of_group`` for the head: the epoch chosen on the validation rows as the head's own was."""
    def score_without(rest, held):
        head, _ = fit_head(kind, X[rest], y[rest], X[va], y[va], epochs=epochs, seed=seed, continuous=continuous)
        with torch.no_grad():
            return head(torch.tensor(X[held])).squeeze(-1).numpy()

    return out_of_group(tr, groups, score_without)


def fit_calibration(raw: np.ndarray, y: np.ndarray, rows: str, method: str = "quantile") -> dict:
    """The raw output mapped onto the labels' 0-5 scale, as the card's knots.

    ``quantile`` (the default): the score at each percentile of ``raw`` becomes the label at the
    same percentile of ``y``, so that on these rows the scores are distributed as the labeller's
    are (the share with ``edu_int >= 3`` is the labels' share) and the ranking is the head's.
    ``isotonic``: scikit-learn's isotonic regression of ``y`` on ``raw`` (the expected label given
    the score; on rows of kinds a model never saw it pulls every score towards the mean)."""
    raw, y = np.asarray(raw, float), np.asarray(y, float)
    if method == "quantile":
        q = np.linspace(0, 1, 101)
        x, t = np.quantile(raw, q), np.quantile(y, q)
        keep = np.r_[True, np.diff(x) > 0]  # knots must increase in x
        return {"method": "quantile", "rows": rows, "n": int(len(y)),
                "x": [float(v) for v in x[keep]], "y": [float(v) for v in t[keep]]}
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=5.0, increasing=True, out_of_bounds="clip").fit(raw, y)
    return {"method": "isotonic", "rows": rows, "n": int(len(y)),
            "x": [float(v) for v in iso.X_thresholds_], "y": [float(v) for v in iso.y_thresholds_]}


def heldout_report(score: np.ndarray, label: np.ndarray, kinds: list | None, threshold: float = 2.5) -> dict:
    """Against provenance labels (1 educational): AUC, precision and recall of ``edu_int >= 3``
    (score >= 2.5), and per kind its AUC against every row of the other label and the share kept."""
    from textcurate.classify.metrics import auc, prf

    label = np.asarray(label, int)
    keep = score >= threshold
    p, r, f = prf(label == 1, keep)
    rep = {"auc": auc(label, score), "precision@3": p, "recall@3": r, "f1@3": f, "n": int(len(label))}
    if kinds is not None:
        k = np.array(kinds)
        rep["per_kind"] = {}
        for name in sorted(set(k.tolist())):
            m = k == name
            lab = int(label[m][0])
            other = (label != lab) | m
            rep["per_kind"][name] = {"label": lab, "n": int(m.sum()), "auc": auc(label[other], score[other]),
                                     "kept@3": float(keep[m].mean()), "mean": float(score[m].mean())}
    return rep


def train_classifier(ids: list[str], texts: list[str], y: np.ndarray, out: str, provenance: str,
                     embedder_model: str = "minilm", max_tokens: int = 256, heads=("linear", "mlp"),
                     val_frac: float = 0.2, seed: int = 0, epochs: int = 300, fasttext: str = "labels",
                     embeddings: np.ndarray | None = None, sources: list | None = None,
                     split: list | None = None, target: str = "score", calibrate: bool = False,
                     kinds: list | None = None, labels: list | None = None, tolerance: float = 0.99,
                     quantize: bool = False) -> dict:
    """``calibrate``: map the head's output onto the 0-5 scale by quantile mapping fitted on rows
    of kinds the head did not see (the validation rows, and each training kind scored by a head
    fitted without it); the head and its epoch are then chosen by Spearman, the ranking that the
    map keeps. ``labels``: provenance (1 educational), for the held-out report.

    ``fasttext``: ``labels`` trains a fastText classifier on the same labels (a scorer of its own,
    mapped onto the head's scale on the validation rows), ``head`` on the head's scores of the
    training rows (it learns to agree with the head), ``none`` trains none. With one, the card's
    ``cascade`` holds the margin chosen on the validation rows for ``tolerance`` (``cascade.py``)."""
    from textcurate.embed.embedder import Embedder

    X = embeddings if embeddings is not None else Embedder(embedder_model, max_tokens=max_tokens).encode(texts)
    X = np.asarray(X, dtype=np.float32)
    continuous = y.dtype.kind == "f" or calibrate
    tr, va, te, how = holdout_split(y, val_frac, seed, sources, split)
    per_head, best = {}, None
    metric = selection_metric(continuous)  # the same choice as each head's epoch

    def select(r: dict) -> tuple:
        return r[metric], -r["mse"]

    for kind in heads:
        head, rep = fit_head(kind, X[tr], y[tr], X[va], y[va], epochs=epochs, seed=seed, continuous=continuous)
        per_head[kind] = rep
        if best is None or select(rep) > select(best[2]):
            best = (kind, head, rep)
    kind, head, rep = best
    with torch.no_grad():
        raw_all = head(torch.tensor(X)).squeeze(-1).numpy()  # the chosen head on every row, once
    ints = to_int(y)
    groups = kinds if kinds is not None else sources
    calibration, out_of_kind = None, None
    if calibrate:
        raw, ys, rows = raw_all[va], y[va].astype(float), f"the {len(va)} validation rows"
        if groups is not None:
            oof = out_of_group_scores(kind, X, y, tr, va, groups, epochs, seed, continuous)
            raw, ys = np.r_[raw, oof], np.r_[ys, y[tr].astype(float)]
            rows += f" and the {len(tr)} training rows, each scored by a head fitted without its " + \
                ("kind" if kinds is not None else "source")
        calibration = fit_calibration(raw, ys, rows)
        out_of_kind = regression_report(ys, raw)  # the rows of kinds (or sources) the head never saw
    card = {"type": "edu-classifier", "threshold": 3,
            "head": {"kind": kind, "dim": int(X.shape[1]), "hidden": 256},
            "embedder": {"model": embedder_model, "max_tokens": max_tokens},
            "labels": {"provenance": provenance, "n": int(len(y)), "target": target,
                       "distribution": {str(c): int((ints == c).sum()) for c in range(6)},
                       **({"sources": len(set(sources))} if sources is not None else {})},
            "split": {"seed": seed, "val_frac": val_frac, "how": how, "n_train": int(len(tr)), "n_val": int(len(va)),
                      "n_test": int(len(te)), "val_ids": [ids[i] for i in va], "test_ids": [ids[i] for i in te]},
            "metrics": {"validation": rep, "per_head": per_head,
                        **({"out_of_kind": out_of_kind} if out_of_kind is not None else {})}}
    # the cheapest peer, on the rows no choice saw (the test rows; else the validation rows)
    ev = te if len(te) else va
    exact = raw_all  # what edu_score's exact path gives every row: the head, calibrated where it is
    if calibration is not None:
        from textcurate.classify.heads import calibrate as apply_calibration

        card["calibration"] = calibration
        exact = apply_calibration(raw_all, card)
        card["metrics"]["validation_calibrated"] = regression_report(y[va], exact[va])
        if labels is not None:
            card["metrics"]["validation_provenance"] = heldout_report(
                exact[va], np.asarray(labels)[va], None if kinds is None else [kinds[i] for i in va])
    if len(te):
        card["metrics"]["test"] = regression_report(y[te], exact[te])
        if labels is not None:
            card["metrics"]["test_provenance"] = heldout_report(
                exact[te], np.asarray(labels)[te], None if kinds is None else [kinds[i] for i in te])
    card["metrics"]["logistic_regression"] = logistic_baseline(X[tr], y[tr], X[ev], y[ev], seed)
    if fasttext != "none":
        card["fasttext"], card["cascade"] = fit_fasttext(fasttext, exact, texts, y, tr, va, te, out, card, seed,
                                                         labels, kinds, tolerance, quantize, groups=groups)
        card["recommended_mode"], card["modes"] = recommend_mode(card)
    warnings = []
    if len(set(y.tolist())) < 2:  # a judge that gives every document one score teaches nothing
        warnings.append(f"all {len(y)} labels are {y[0]}: the classifier predicts a constant")
    base, mine = card["metrics"]["logistic_regression"], card["metrics"].get("test", rep)
    if base and base["spearman"] == base["spearman"] and mine["spearman"] < base["spearman"] - 0.01:
        warnings.append(f"the {kind} head ranks the held-out rows worse than a logistic regression on the same "
                        f"embeddings (Spearman {mine['spearman']:.3f} against {base['spearman']:.3f})")
    if warnings:
        card["warnings"] = warnings
    save_artifact(out, head, card)
    return card


FASTTEXT_MODES = ("labels", "head", "none")


def out_of_group_fasttext(texts, y, tr, va, groups, info: dict, seed: int) -> np.ndarray:
    """Each training row scored by a fastText model (the chosen parameters) trained without its
    whole group: what fastText gives text of a kind it never saw."""
    import tempfile

    from textcurate.classify.fasttext_model import train_fasttext

    p, y = info["params"], np.asarray(y, float)
    with tempfile.TemporaryDirectory() as d:
        def score_without(rest, held):
            sc, _ = train_fasttext([texts[i] for i in rest], y[rest], d, val_texts=[texts[i] for i in va[:50]],
                                   val_y=y[va[:50]], seed=seed, grid=({"epoch": p["epoch"], "lr": p["lr"]},),
                                   max_chars=info["max_chars"], lowercase=info["lowercase"])
            return sc.predict([texts[i] for i in held])

        return out_of_group(tr, groups, score_without)


def fit_fasttext(mode: str, exact: np.ndarray, texts, y, tr, va, te, out: str, card: dict, seed: int, labels, kinds,
                 tolerance: float, quantize: bool = False, groups: list | None = None) -> tuple[dict, dict]:
    """The card's ``fasttext`` entry (the model written to ``out/fasttext.bin``, or ``.ftz``
    quantised) and ``cascade``; ``exact``: the exact path's score of every row."""
    from textcurate.classify.cascade import choose_margin
    from textcurate.classify.fasttext_model import train_fasttext
    from textcurate.classify.heads import calibrate as apply_calibration

    if mode not in FASTTEXT_MODES:
        raise ValueError(f"fasttext: {mode!r} is not one of {', '.join(FASTTEXT_MODES)}")
    target = exact if mode == "head" else np.asarray(y, float)
    scorer, info = train_fasttext([texts[i] for i in tr], target[tr], out, val_texts=[texts[i] for i in va],
                                  val_y=target[va], seed=seed, quantize=quantize,
                                  name="fasttext.ftz" if quantize else "fasttext.bin")
    info["labels"] = ("the head's calibrated scores of the training rows, rounded" if mode == "head"
                      else "the training rows' labels, rounded")
    raw = scorer.predict(texts)
    if mode == "head":  # onto the head's scale (isotonic, validation rows): its edu_int means the head's
        info["calibration"] = fit_calibration(raw[va], exact[va], f"the {len(va)} validation rows, against the "
                                                                  f"exact path's scores", method="isotonic")
    else:  # onto the labels' 0-5 scale (an expected label is pulled towards the mean): the validation rows,
        # and with --calibrate, as for the head, the training rows scored without their kind
        xs, ys, rows = raw[va], np.asarray(y, float)[va], f"the {len(va)} validation rows"
        if groups is not None and "calibration" in card:
            oof = out_of_group_fasttext(texts, y, tr, va, groups, info, seed)
            xs, ys = np.r_[xs, oof], np.r_[ys, np.asarray(y, float)[tr]]
            rows += f" and the {len(tr)} training rows, each scored by a fastText model trained without its group"
        info["calibration"] = fit_calibration(xs, ys, rows)
        info["metrics"]["out_of_kind"] = regression_report(ys, xs)
    fast = apply_calibration(raw, info)
    info["metrics"]["validation_calibrated"] = regression_report(np.asarray(y, float)[va], fast[va])
    if len(te):
        info["metrics"]["test"] = regression_report(np.asarray(y, float)[te], fast[te])
        if labels is not None:
            info["metrics"]["test_provenance"] = heldout_report(
                fast[te], np.asarray(labels)[te], None if kinds is None else [kinds[i] for i in te])
    cascade = choose_margin(fast[va], exact[va], tolerance)
    if len(te):
        from textcurate.classify.cascade import to_exact

        inside = to_exact(fast[te], cascade["margin"])
        mixed = np.where(inside, exact[te], fast[te])
        cascade["test"] = {"share_to_exact": float(inside.mean()),
                           "same_edu_int": float((to_int(mixed) == to_int(exact[te])).mean())}
        if labels is not None:
            from textcurate.classify.metrics import auc

            lab = np.asarray(labels)[te]
            cascade["test"].update(auc=auc(lab, mixed), auc_exact=auc(lab, exact[te]), auc_fasttext=auc(lab, fast[te]))
    return info, cascade


MIN_VALIDATION = 200  # fewer rows than this choose nothing but the exact path


def recommend_mode(card: dict) -> tuple[str, dict]:
    """What ``edu_score``'s ``mode: auto`` runs, chosen on rows of kinds each scorer never saw (the
    validation rows, and with ``--calibrate`` each training kind scored by a model fitted without
    it; else the validation rows alone): fastText alone where it ranks them at least as well as
    the head (Spearman against the labels), else the cascade where its margin met the tolerance
    leaving at least 100 validation rows to fastText and sending at most 80 % to the head, else
    the head for every document."""
    m, f = card["metrics"], card["fasttext"]["metrics"]
    if "out_of_kind" in m and "out_of_kind" in f:
        rows = "validation rows and training rows scored without their kind"
        modes = {"exact": m["out_of_kind"]["spearman"], "fasttext": f["out_of_kind"]["spearman"]}
    else:
        rows = "validation rows"
        modes = {"exact": m.get("validation_calibrated", m["validation"])["spearman"],
                 "fasttext": f["validation_calibrated"]["spearman"]}
    modes = {k: (-1.0 if v != v else float(v)) for k, v in modes.items()}
    n_val = card["split"]["n_val"]
    c = card["cascade"]
    cascade_ok = bool(c.get("recommended")) and c["share_to_exact"] <= 0.8 and \
        (1 - c["share_to_exact"]) * c["n"] >= 100
    if n_val < MIN_VALIDATION:
        mode = "exact"
    elif modes["fasttext"] >= modes["exact"]:
        mode = "fasttext"
    elif cascade_ok:
        mode = "cascade"
    else:
        mode = "exact"
    return mode, {"spearman": modes, "rows": rows, "chosen": mode,
                  "rule": f"with at least {MIN_VALIDATION} validation rows ({n_val} here): fastText alone where its "
                          f"Spearman on the {rows} is at least the head's; else the cascade where its margin met the "
                          f"tolerance, leaving at least 100 validation rows to fastText and at most 80 % to the head; "
                          f"else (and with fewer rows) exact"}
