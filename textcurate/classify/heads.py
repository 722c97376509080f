"""Regression heads on frozen embeddings, their training, and the artifact (safetensors + card)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from textcurate import __version__
from textcurate.classify.metrics import macro_f1, regression_report, spearman
from textcurate.io.files import write_json_atomic


def make_head(kind: str, dim: int, hidden: int = 256) -> torch.nn.Module:
    if kind == "linear":
        return torch.nn.Sequential(torch.nn.Linear(dim, 1))
    if kind == "mlp":
        return torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Dropout(0.1),
                                   torch.nn.Linear(hidden, 1))
    raise ValueError(f"unknown head {kind!r}: linear or mlp")


def stratified_split(y: np.ndarray, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(len(idx) * val_frac)) if len(idx) > 1 else 0
        val.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(val, dtype=int))


SELECT_BY = {"macro_f1": macro_f1, "spearman": spearman}


def selection_metric(continuous: bool) -> str:
    """What chooses a head and its epoch on the validation rows (ties: the lower MSE): for integer
    labels the macro-F1 of rounded scores (FineWeb-Edu's measure), for continuous labels Spearman
    (ranking is what a filter needs)."""
    return "spearman" if continuous else "macro_f1"


def fit_head(kind: str, Xtr, ytr, Xva, yva, epochs: int = 300, lr: float = 3e-3, seed: int = 0,
             hidden: int = 256, continuous: bool = False) -> tuple[torch.nn.Module, dict]:
    """Full-batch AdamW on MSE; the epoch that is best by ``selection_metric`` on validation wins."""
    torch.manual_seed(seed)
    head = make_head(kind, Xtr.shape[1], hidden)
    with torch.no_grad():
        head[-1].bias.fill_(float(np.mean(ytr)))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-2)
    xt, yt = torch.tensor(Xtr), torch.tensor(ytr, dtype=torch.float32)
    xv = torch.tensor(Xva)
    metric = SELECT_BY[selection_metric(continuous)]
    best, best_state = None, None
    for _ in range(epochs):
        head.train()
        loss = torch.nn.functional.mse_loss(head(xt).squeeze(-1), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        head.eval()
        with torch.no_grad():
            pred = head(xv).squeeze(-1).numpy()
        key = (metric(yva, pred), -float(np.mean((pred - yva) ** 2)))
        if best is None or key > best:
            best = key
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    head.eval()
    with torch.no_grad():
        return head, regression_report(yva, head(xv).squeeze(-1).numpy())


def save_artifact(folder: str, head: torch.nn.Module, card: dict) -> None:
    """``head.safetensors`` and ``card.json`` (a fastText model, when there is one, is already in
    the folder: ``fasttext_model.train_fasttext`` writes it)."""
    os.makedirs(folder, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, os.path.join(folder, "head.safetensors"))
    card = {**card, "textcurate_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json_atomic(os.path.join(folder, "card.json"), card)


def calibrate(raw: np.ndarray, card: dict) -> np.ndarray:
    """The head's raw output mapped onto the 0-5 scale by the card's ``calibration`` (a monotone
    piecewise-linear map: ``x`` knots of raw output, ``y`` their scores; quantile mapping or isotonic regression fitted
    on rows of kinds the head did not train on); unchanged where the card has none."""
    cal = card.get("calibration")
    if not cal:
        return np.asarray(raw, np.float32)
    raw = np.asarray(raw, float)
    # the map is flat beyond its ends (and an isotonic one between knots): documents it would tie keep
    # their raw order through a strictly increasing term of at most 0.001 (the ranking, and so
    # AUC, is the raw output's; edu_int moves only for a score within 0.001 of a boundary)
    tie_break = 0.001 * (np.arctan(raw) / np.pi + 0.5)  # in (0, 0.001)
    return (np.interp(raw, cal["x"], cal["y"]) * (1 - 0.0002) + tie_break).astype(np.float32)  # within [0, 5]


def check_artifact(folder: str) -> dict:
    """The card of the classifier in ``folder``, after checking that its files would load; ValueError
    naming the file otherwise."""
    from textcurate.io.files import check_safetensors

    path = os.path.join(folder, "card.json")
    try:
        with open(path) as fh:
            card = json.load(fh)
        if not isinstance(card.get("head"), dict) or "kind" not in card["head"] or "dim" not in card["head"]:
            raise ValueError("no head.kind / head.dim")
    except FileNotFoundError:
        raise ValueError(f"{folder}: not a textcurate classifier (no card.json)") from None
    except (OSError, ValueError, AttributeError) as e:
        raise ValueError(f"{path}: not a classifier card ({type(e).__name__}: {e})") from None
    head = os.path.join(folder, "head.safetensors")
    if not os.path.exists(head):
        raise ValueError(f"{head}: missing (the classifier's weights)")
    check_safetensors(head)
    if card.get("fasttext"):
        from textcurate.classify.fasttext_model import check_fasttext_file

        check_fasttext_file(os.path.join(folder, card["fasttext"].get("file", "fasttext.bin")))
    return card


def load_artifact(folder: str):
    """(head, card, fastText scorer or None); ValueError naming the file that does not load."""
    card = check_artifact(folder)
    try:
        head = _load_head(folder, card)
    except (RuntimeError, KeyError, ValueError) as e:  # a head whose tensors do not fit its card
        raise ValueError(f"{folder}: its weights do not fit its card.json: {str(e).splitlines()[0]}") from None
    return head, card, load_fasttext(folder, card)  # its errors name the fastText file


def _load_head(folder: str, card: dict):
    h = card["head"]
    head = make_head(h["kind"], h["dim"], h.get("hidden", 256))
    head.load_state_dict(load_file(os.path.join(folder, "head.safetensors")))
    return head.eval()


def load_fasttext(folder: str, card: dict):
    """The classifier's fastText model as a scorer (raw expected label; ``calibrate(raw,
    card["fasttext"])`` maps it onto 0-5), or None when the card has none."""
    ft = card.get("fasttext")
    if not ft:
        return None
    from textcurate.classify.fasttext_model import FastTextScorer

    return FastTextScorer(os.path.join(folder, ft.get("file", "fasttext.bin")), lowercase=ft.get("lowercase", False),
                          max_chars=ft.get("max_chars"))
