"""fastText, the library, as textcurate's fast scorer.

The binding is ``fasttext-numpy2-wheel``: the one datatrove pins (its fastText filters import the
same ``fasttext`` module, so the two never clash in one environment), a prebuilt wheel of
upstream fastText 0.9.2 whose Python side works with numpy 2 (upstream's 0.9.3 has no wheel and
its ``predict`` fails under numpy 2).

fastText has no regression: a score on the 0-5 scale is the *expected label* of a classifier
trained on the rounded labels (``__label__0`` ... ``__label__5``), the way textcurate reads an LLM
judge's answer distribution. A model whose labels are not numbers (DCLM's released classifier:
``__label__hq`` against ``__label__cc``) scores the probability of one named label.

A model file is fastText's own binary format (``.bin``; ``.ftz`` quantised): no pickle.
"""

from __future__ import annotations

import os
import re
import struct

import numpy as np

MAGIC = 793712314  # the first int32 of every fastText model file (0x2F4F16BA)
LABEL = "__label__"
_SPACE = re.compile(r"\s+")


def check_fasttext_file(path: str) -> None:
    """ValueError in one line naming ``path`` unless it starts as a fastText model does."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (a fastText model file)") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror})") from None
    if len(head) < 8 or struct.unpack("<i", head[:4])[0] != MAGIC:
        raise ValueError(f"{path}: not a fastText model (.bin/.ftz): its header is not fastText's")


def normalise(text: str, max_chars: int | None, lowercase: bool) -> str:
    """One line, as fastText reads one example: whitespace runs (newlines included) become one
    space; the text cut to ``max_chars`` characters first (None: whole)."""
    if max_chars:
        text = text[:max_chars]
    text = _SPACE.sub(" ", text).strip()
    return text.lower() if lowercase else text


def _quiet_load(path: str):
    import fasttext

    # fastText prints a deprecation warning on stderr at every load_model: not the user's concern
    fasttext.FastText.eprint = lambda *a, **k: None
    try:
        model = fasttext.load_model(path)
    except (ValueError, RuntimeError, MemoryError) as e:
        raise ValueError(f"{path}: fastText cannot load it ({str(e).splitlines()[0]})") from None
    # fastText reads a cut file without a word, its matrices then part garbage: the file must hold
    # at least the two matrices it declares (a quantised .ftz is compressed: not checked)
    if not model.f.isQuant():
        (a, b), (c, d) = model.get_input_matrix().shape, model.get_output_matrix().shape
        need = 4 * (a * b + c * d)
        if os.path.getsize(path) < need:
            raise ValueError(f"{path}: fastText cannot load it (cut short: {os.path.getsize(path):,} bytes, "
                             f"its matrices alone take {need:,})")
    return model


class FastTextScorer:
    """Scores from a fastText classifier: the expected label where every label is a number, else
    the probability of ``label``."""

    def __init__(self, path: str, *, label: str | None = None, lowercase: bool = False,
                 max_chars: int | None = None):
        check_fasttext_file(path)
        self.path, self.lowercase, self.max_chars = path, lowercase, max_chars
        self.model = _quiet_load(path)
        labels = list(self.model.get_labels())
        values = {}
        for lab in labels:
            try:
                values[lab] = float(lab[len(LABEL):] if lab.startswith(LABEL) else lab)
            except ValueError:
                values = None
                break
        if label is not None:
            full = label if label.startswith(LABEL) else LABEL + label
            if full not in labels:
                raise ValueError(f"{path}: no label {label!r} (its labels: {', '.join(labels)})")
            self.label, self.values = full, None
        elif values is None:
            raise ValueError(f"{path}: its labels ({', '.join(labels[:6])}) are not numbers; name the one to "
                             f"score with label: (for example {labels[0][len(LABEL):]})")
        else:
            self.label, self.values = None, values
        self.n_labels = len(labels)

    def predict(self, texts: list[str]) -> np.ndarray:
        """One float per text: the expected label, or P(label)."""
        if not texts:
            return np.zeros(0, np.float32)
        lines = [normalise(t, self.max_chars, self.lowercase) for t in texts]
        labels, probs = self.model.predict(lines, k=self.n_labels)
        out = np.empty(len(texts), np.float32)
        if self.label is not None:
            for i, (lab, pr) in enumerate(zip(labels, probs)):
                out[i] = dict(zip(lab, pr)).get(self.label, 0.0)
        else:
            v = self.values
            for i, (lab, pr) in enumerate(zip(labels, probs)):
                p = np.asarray(pr, np.float64)
                out[i] = float(np.dot(p, [v[x] for x in lab]) / max(p.sum(), 1e-12))
        return out


DEFAULTS = {"dim": 16, "wordNgrams": 2, "minCount": 2, "bucket": 1 << 18, "loss": "softmax"}
GRID = ({"epoch": 5, "lr": 0.1}, {"epoch": 15, "lr": 0.1}, {"epoch": 15, "lr": 0.5}, {"epoch": 30, "lr": 0.5})


def _train_in_child(train_file: str, out: str, params: dict) -> str | None:
    """Train and save in a child process: None, or the error in one line. fastText 0.9.2 keeps
    state between trainings in one process (measured here: after two trainings, every further one
    raised "Encountered NaN" on rows a fresh process trains), and a failure in its threads ends
    the process that runs it; a child contains both."""
    import json
    import subprocess
    import sys

    code = ("import fasttext, json, sys; p = json.loads(sys.argv[3]); q = p.pop('quantize', False); "
            "m = fasttext.train_supervised(sys.argv[1], verbose=0, **p)\n"
            "if q: m.quantize(input=sys.argv[1], qnorm=True, retrain=False, cutoff=0)\n"
            "m.save_model(sys.argv[2])")
    r = subprocess.run([sys.executable, "-c", code, train_file, out, json.dumps(params)], capture_output=True,
                       text=True)
    if r.returncode == 0 and os.path.exists(out):
        return None
    lines = [x for x in (r.stderr or "").strip().splitlines() if x.strip()]
    return lines[-1] if lines else f"exit status {r.returncode}"


def train_fasttext(texts: list[str], y: np.ndarray, folder: str, *, val_texts: list[str], val_y: np.ndarray,
                   seed: int = 0, max_chars: int | None = 20000, lowercase: bool = True,
                   grid=GRID, name: str = "fasttext.bin", quantize: bool = False) -> tuple[FastTextScorer, dict]:
    """A fastText classifier on the rounded 0-5 labels, its epochs and learning rate chosen by the
    Spearman correlation of its expected label with ``val_y`` (ties: the first in ``grid``);
    written to ``folder/name``. One thread, a fixed seed: the same data gives the same model.
    ``quantize``: the chosen model is trained again and product-quantised (fastText's
    ``quantize``: about an eighth of the bytes, the file a ``.ftz``). Returns the scorer and the
    card's ``fasttext`` entry."""
    from textcurate.classify.metrics import regression_report, spearman, to_int

    os.makedirs(folder, exist_ok=True)
    train_file = os.path.join(folder, ".fasttext.train.txt")
    labels = to_int(np.asarray(y, float))
    with open(train_file, "w", encoding="utf-8", errors="surrogatepass") as fh:
        for t, lab in zip(texts, labels):
            fh.write(f"{LABEL}{lab} {normalise(t, max_chars, lowercase)}\n")
    path = os.path.join(folder, name)
    best = None
    try:
        failed = []
        for base in grid:
            model = None
            # "Encountered NaN": fastText 0.9.2 raises it now and then on rows that train the next time
            # (measured: the same file, parameters and seed failed once and passed twice), and when
            # training diverges (fastText's advice: a lower rate). Try again, then at half the rate.
            for tries in range(4):
                g = {**base, "lr": base["lr"] / (2 if tries >= 2 else 1) ** (tries - 1 if tries >= 2 else 0)}
                err = _train_in_child(train_file, path + ".try", {**DEFAULTS, **g, "thread": 1, "seed": seed})
                if err is None:
                    model = True
                    break
                failed.append(f"epoch {g['epoch']} lr {g['lr']}: {err}")
            if model is None:
                continue
            scorer = FastTextScorer(path + ".try", lowercase=lowercase, max_chars=max_chars)
            pred = scorer.predict(val_texts)
            key = spearman(np.asarray(val_y, float), pred)
            key = -1.0 if key != key else key
            if best is None or key > best[0]:
                best = (key, g, pred)
                os.replace(path + ".try", path)
        if best is not None and quantize:
            err = _train_in_child(train_file, path + ".try", {**DEFAULTS, **best[1], "thread": 1, "seed": seed,
                                                              "quantize": True})
            if err is not None:
                raise ValueError(f"fastText could not quantise its model: {err}")
            os.replace(path + ".try", path)
    finally:
        for p in (train_file, path + ".try"):
            if os.path.exists(p):
                os.unlink(p)
    if best is None:
        raise ValueError(f"fastText did not train on these {len(texts)} rows: {'; '.join(failed)}")
    _, g, pred = best
    scorer = FastTextScorer(path, lowercase=lowercase, max_chars=max_chars)
    if quantize:
        pred = scorer.predict(val_texts)
    info = {"file": name, "library": "fasttext-numpy2-wheel (fastText 0.9.2)", "labels": "rounded 0-5 target",
            "score": "expected label", "lowercase": lowercase, "max_chars": max_chars,
            "params": {**DEFAULTS, **g, "thread": 1, "seed": seed},
            "chosen_by": "Spearman of the expected label on the validation rows, over "
                         + "; ".join(f"epoch {x['epoch']} lr {x['lr']}" for x in grid),
            "metrics": {"validation": regression_report(np.asarray(val_y, float), pred)},
            **({"failed": failed} if failed else {}), "quantized": quantize,
            "bytes": os.path.getsize(path)}
    return scorer, info
