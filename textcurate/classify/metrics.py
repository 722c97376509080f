"""Metrics for 0-5 regression scores, as FineWeb-Edu reports them."""

from __future__ import annotations

import numpy as np


def to_int(pred: np.ndarray) -> np.ndarray:
    return np.clip(np.round(pred), 0, 5).astype(int)


def _rank(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged."""
    from scipy.stats import rankdata

    return rankdata(x)


def spearman(a, b) -> float:
    ra, rb = _rank(np.asarray(a, float)), _rank(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def auc(labels, scores) -> float:
    """Area under the ROC curve (Mann-Whitney U), ties counted half."""
    labels = np.asarray(labels, bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    r = _rank(np.asarray(scores, float))
    return float((r[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def prf(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    tp = int(np.sum(y_true & y_pred))
    p = tp / max(int(y_pred.sum()), 1)
    r = tp / max(int(y_true.sum()), 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 of rounded scores over the classes present in either, vectorised (used per epoch)."""
    pi = to_int(pred)
    labels = np.union1d(y, pi)
    tp = np.array([np.sum((y == c) & (pi == c)) for c in labels], dtype=float)
    p = tp / np.maximum([np.sum(pi == c) for c in labels], 1)
    r = tp / np.maximum([np.sum(y == c) for c in labels], 1)
    f = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    return float(f.mean())


def regression_report(y: np.ndarray, pred: np.ndarray, threshold: int = 3) -> dict:
    y_raw = np.asarray(y, float)  # a continuous label (the judge's expected score) is rounded for the classes
    y = to_int(y_raw)
    pi = to_int(np.asarray(pred, float))
    labels = sorted(set(y.tolist()) | set(pi.tolist()))
    f1s = [prf(y == c, pi == c)[2] for c in labels]
    p, r, f = prf(y >= threshold, pi >= threshold)
    cm = np.zeros((6, 6), dtype=int)
    for t, q in zip(y, pi):
        cm[t, q] += 1
    return {"n": int(len(y)), "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
            "mse": float(np.mean((pred - y_raw) ** 2)),
            f"precision@{threshold}": p, f"recall@{threshold}": r, f"f1@{threshold}": f,
            f"auc@{threshold}": auc(y_raw >= threshold, pred), "spearman": spearman(y_raw, pred),
            "confusion": cm.tolist()}
