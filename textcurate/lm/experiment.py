"""The small-LM experiment that ``evaluate``, the mixture proxies and the influence warm-up share.

- Salts of every id-hash split and sample, named here once. ``TARGET_SALT`` is the held-out
  target's: ``split_target`` is the one rule for it, so ``evaluate`` and ``influence`` hold
  out the same documents by construction.
- ``match``: which documents satisfy an expression. A document that does not match is fine;
  a field that no document has is an error that names it, and a field that some lack is a
  warning with the count (those documents do not match).
- ``LMSpec``: the one model spec (layers, heads, width, context, BPE size or a local
  model's tokenizer); ``make_tokenizer`` and ``build_model`` turn it into a tokenizer and
  a freshly initialised GPT (or a local causal LM).
- ``train_and_score(docs, spec, token_budget, seed, ...)``: train a fresh model for a fixed
  token budget on token-id documents and score it on held-out sets, per document and per
  domain. Finished runs are cached on disk under a key of their content (the documents'
  tokens, the held-out sets, the spec, budget, seed and optimiser settings), so a second
  call with the same inputs trains nothing, whoever calls it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# --- salts of the id-hash splits and samples: the one place they are written ----------------------------
TARGET_SALT = 101        # the held-out target of evaluate and influence (``split_target``): the same documents
GENERAL_SALT = 202       # evaluate's general held-out sample
BPE_SAMPLE_SALT = 303    # evaluate's sample of the pool for training the BPE
PROXY_BPE_SALT = 404     # the mixture proxies' sample of the sources for training the BPE
MIX_TARGET_SALT = 505    # a fitted mixture's held-out target (mix.run.fit_weights)
MATERIALISE_SALT = 7919  # mix/materialise.py's per-pass document order
RANDOM_SUBSET_SALT = 7   # evaluate's seeded permutation of the pool: rng([seed, 7])
WARMUP_SALT = 11         # influence's seeded warm-up subset: rng([seed, 11])
HEAD_VALIDATION_SALT = 13  # value's annotations held out as the head's validation loss: hash salt seed + 13

CACHE_VERSION = 1        # bump when a run's result would change for the same inputs


# --- which documents satisfy an expression ----------------------------------------------------------------
class FieldMissing(ValueError):
    """A field an expression or a ranking reads that no document of the set has."""


def match(expr, docs: Sequence, what: str, log: Callable | None = None) -> np.ndarray:
    """Boolean mask of the documents whose metadata satisfy ``expr`` (an ``Expr`` or its source).

    A document lacking a field the expression reads does not match; when *no* document has
    the field, that is a misspelt or absent field, and ``FieldMissing`` names it with the
    count. When some lack it, ``log`` gets a warning with the count. Other evaluation
    errors (comparing a string with a number) are raised, naming the expression."""
    from textcurate.select.expr import Expr, MissingField

    e = expr if isinstance(expr, Expr) else Expr(expr)
    hit = np.zeros(len(docs), dtype=bool)
    missing: dict[str, int] = {}
    for i, d in enumerate(docs):
        try:
            hit[i] = e.keep(d.metadata)
        except MissingField as err:
            missing[err.name] = missing.get(err.name, 0) + 1
        except ValueError as err:
            raise ValueError(f"{what}: {e.source!r} on document {d.id!r}: {err}") from None
    _report_missing(missing, {k for k in missing if any(k in d.metadata for d in docs)}, len(docs), what,
                    e.source, log)
    return hit


def _report_missing(missing: dict[str, int], present: set, n: int, what: str, source: str, log) -> None:
    """``missing``: documents that lacked each field an expression read; ``present``: those of the
    fields that some document has."""
    if not missing:
        return
    for name, count in missing.items():
        if name not in present:
            raise FieldMissing(f"{what}: {source!r} reads {name!r}, which no document has "
                               f"({count:,} of {n:,} documents lack it; misspelt, or not computed for this pool?)")
    if log is not None:
        for name, count in missing.items():
            log(f"[yellow]warning[/]: {what}: {count:,} of {n:,} documents lack {name!r} read by {source!r}; "
                f"they do not match")


def field_scores(docs: Sequence, key: str, what: str, log: Callable | None = None) -> np.ndarray:
    """The numeric attribute ``key`` of every document (NaN where absent or not a number);
    ``FieldMissing`` when no document has it, a warning with the count when some lack it."""
    out = np.full(len(docs), np.nan)
    absent = bad = 0
    for i, d in enumerate(docs):
        v = d.metadata.get(key)
        if v is None:
            absent += key not in d.metadata
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            bad += 1
    n = len(docs)
    if absent == n:
        raise FieldMissing(f"{what}: ranks by {key!r}, which no document has ({n:,} of {n:,} documents lack "
                           f"it; misspelt, or not computed for this pool?)")
    if np.isnan(out).all():
        raise FieldMissing(f"{what}: ranks by {key!r}, which is not a number in any document "
                           f"({bad:,} non-numeric, {n - bad:,} missing or null)")
    if log is not None and (absent or bad):
        log(f"[yellow]warning[/]: {what}: {absent:,} of {n:,} documents lack {key!r}"
            + (f" and {bad:,} hold a non-number" if bad else "") + "; they are not ranked")
    return out


# --- the held-out target ---------------------------------------------------------------------------------
def in_share(doc_id: str, share: float, salt: int) -> bool:
    from textcurate.io.records import hash_share

    return hash_share(doc_id, salt) < share


def split_target(docs: Sequence, expr: str, holdout: float, salt: int = TARGET_SALT, log: Callable | None = None
                 ) -> tuple[list, list]:
    """(rest, target): the documents matching ``expr`` whose id-hash falls in the ``holdout``
    share are the target. One rule for evaluate and influence (``TARGET_SALT``), so a later
    evaluation scores a selection on exactly the documents the influence stage held out."""
    rule = TargetRule(expr, holdout, salt)
    rest, target = [], []
    for d in docs:
        (target if rule(d) else rest).append(d)
    rule.finish(log)
    return rest, target


class TargetRule:
    """``split_target``'s rule one document at a time, for a pool read as a stream: ``rule(doc)``
    says whether the document is in the target and counts it; ``finish`` then raises or warns as
    ``match`` does (a field no document has, a field some lack) and raises on an empty target.
    ``is_target(doc)`` is the same rule without counting (a later pass over the same stream)."""

    def __init__(self, expr, holdout: float, salt: int = TARGET_SALT, what: str = "target"):
        from textcurate.select.expr import Expr

        self.expr = expr if isinstance(expr, Expr) else Expr(expr)
        self.holdout, self.salt, self.what = holdout, salt, what
        self.n = self.hits = self.targets = 0
        self.missing: dict[str, int] = {}
        self.unseen = set(self.expr.names)

    def _match(self, doc) -> bool:
        from textcurate.select.expr import MissingField

        try:
            return bool(self.expr.keep(doc.metadata))
        except MissingField as err:
            self.missing[err.name] = self.missing.get(err.name, 0) + 1
            return False
        except ValueError as err:
            raise ValueError(f"{self.what}: {self.expr.source!r} on document {doc.id!r}: {err}") from None

    def __call__(self, doc) -> bool:
        self.n += 1
        if self.unseen:  # the fields the expression reads that no document has shown yet
            self.unseen.difference_update(doc.metadata)
        hit = self._match(doc)
        self.hits += hit
        out = hit and in_share(doc.id, self.holdout, self.salt)
        self.targets += out
        return out

    def is_target(self, doc) -> bool:
        try:
            return bool(self.expr.keep(doc.metadata)) and in_share(doc.id, self.holdout, self.salt)
        except ValueError:  # MissingField is a ValueError: the counting pass said it once
            return False

    def finish(self, log: Callable | None = None) -> None:
        _report_missing(self.missing, {k for k in self.missing if k not in self.unseen}, self.n, self.what,
                        self.expr.source, log)
        if not self.targets:
            raise ValueError(f"the target is empty: {self.hits:,} of {self.n:,} documents match "
                             f"{self.expr.source!r}, none of them in the held-out {self.holdout:.0%}")


# --- the model spec, its tokenizer and model ---------------------------------------------------------------
class LMSpec(BaseModel):
    """A small GPT from the kit, on a BPE of the pool (or on a local model's tokenizer)."""
    model_config = ConfigDict(extra="forbid")
    n_layer: int = Field(2, ge=1)
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(128, ge=8)
    block_size: int = Field(128, ge=8, description="context length")
    vocab_size: int = Field(2048, ge=256, description="of the BPE trained on the pool")
    tokenizer: str | None = Field(None, description="a local model's tokenizer instead of training a BPE")


def bpe_sample(docs: Sequence, max_chars: float = 2e6, salt: int = BPE_SAMPLE_SALT) -> list[str]:
    """Texts of an id-hash sample of about ``max_chars`` characters (all texts when fewer)."""
    total = sum(len(d.text) for d in docs)
    share = min(1.0, max_chars / max(1, total))
    return [d.text for d in docs if in_share(d.id, share, salt)] or [d.text for d in docs]


def make_tokenizer(spec: LMSpec, texts: Iterable[str]):
    from textcurate.lm.tokenizer import LMTokenizer

    if spec.tokenizer:
        return LMTokenizer.from_model(spec.tokenizer)
    return LMTokenizer.train(texts, vocab_size=spec.vocab_size)


def build_model(spec: LMSpec, vocab_size: int, seed: int, local: str | None = None):
    """A fresh GPT of ``spec`` initialised from ``seed``; or the local causal LM ``local``."""
    import torch

    from textcurate.lm.model import GPT, load_causal_lm

    if local:
        return load_causal_lm(local)
    torch.manual_seed(seed)
    return GPT(gpt_config(spec, vocab_size))


def gpt_config(spec: LMSpec, vocab_size: int):
    from textcurate.lm.model import GPTConfig

    return GPTConfig(vocab_size=vocab_size, block_size=spec.block_size, n_layer=spec.n_layer, n_head=spec.n_head,
                     n_embd=spec.n_embd)


# --- train and score, cached -----------------------------------------------------------------------------
@dataclass
class Heldout:
    """What a run is scored on: token-id documents per named set (``target``, ``general``, ...),
    with an optional domain label per document of a set."""
    sets: dict[str, list[np.ndarray]]
    domains: dict[str, Sequence[str]] = field(default_factory=dict)
    _digest: str | None = None

    def digest(self) -> str:
        if self._digest is None:
            h = hashlib.sha256()
            for name in sorted(self.sets):
                h.update(name.encode() + b"\0" + tokens_digest(self.sets[name]).encode())
                if name in self.domains:
                    h.update(json.dumps([str(v) for v in self.domains[name]]).encode())
            self._digest = h.hexdigest()
        return self._digest


@dataclass
class Score:
    """A finished run: mean loss (nats/token) per held-out set, per-document summed loss and
    token counts, loss per domain, and the training record."""
    loss: dict[str, float]
    doc_loss_sum: dict[str, list[float]]
    doc_tokens: dict[str, list[int]]
    by_domain: dict[str, dict[str, float]]
    train: dict
    key: str = ""
    cached: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("cached")
        return d

    def doc_losses(self, name: str = "target") -> np.ndarray:
        """Mean loss of every document of a held-out set (nats/token)."""
        return np.asarray(self.doc_loss_sum[name]) / np.maximum(1, np.asarray(self.doc_tokens[name]))


def tokens_digest(docs: Sequence[np.ndarray]) -> str:
    """sha256 of a list of token-id documents (lengths and ids): equal for equal content."""
    h = hashlib.sha256()
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    h.update(lengths.tobytes())
    if len(docs):
        h.update(np.concatenate([np.asarray(d, dtype=np.int32) for d in docs]).tobytes())
    return h.hexdigest()


@dataclass
class TrainOptions:
    batch_size: int = 16
    lr: float = 1e-3
    device: str = "auto"


def run_key(docs: Sequence[np.ndarray], spec: LMSpec, token_budget: int, seed: int, tokenizer, heldout: Heldout,
            options: TrainOptions) -> str:
    from textcurate.io.files import pick_device

    blob = {"v": CACHE_VERSION, "spec": spec.model_dump(mode="json"), "budget": int(token_budget),
            "seed": int(seed), "vocab": int(tokenizer.vocab_size), "eos": int(tokenizer.eos_id),
            "batch_size": options.batch_size, "lr": options.lr, "device": pick_device(options.device),
            "docs": tokens_digest(docs), "heldout": heldout.digest()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]


def train_and_score(docs: Sequence[np.ndarray], spec: LMSpec, token_budget: int, seed: int, *, tokenizer,
                    heldout: Heldout, options: TrainOptions | None = None, cache_dir: str | None = None) -> Score:
    """Train a fresh model of ``spec`` (initialised from ``seed``, data order from ``seed``) for
    ``token_budget`` tokens on ``docs`` (token ids of ``tokenizer``; a small set is repeated for
    more epochs) and score it on every set of ``heldout``. With ``cache_dir``, a finished run
    is kept there under its content key and a second call with the same inputs returns it
    without training (``Score.cached``)."""
    from textcurate.io.files import write_json_atomic
    from textcurate.lm.train import TrainConfig, heldout_loss, train_lm

    options = options or TrainOptions()
    key = run_key(docs, spec, token_budget, seed, tokenizer, heldout, options)
    path = os.path.join(cache_dir, f"{key}.json") if cache_dir else None
    if path and os.path.exists(path):
        with open(path) as fh:
            return Score(**json.load(fh), cached=True)
    t0 = time.perf_counter()
    model = build_model(spec, tokenizer.vocab_size, seed)
    res = train_lm(model, list(docs), tokenizer.eos_id, spec.block_size,
                   TrainConfig(budget_tokens=int(token_budget), batch_size=options.batch_size, lr=options.lr,
                               seed=seed, device=options.device))
    loss, sums, counts, by_domain = {}, {}, {}, {}
    for name, held in heldout.sets.items():
        if not len(held):
            continue
        s, c = heldout_loss(model, held, tokenizer.eos_id, spec.block_size, device=options.device)
        loss[name] = float(s.sum() / max(1, c.sum()))
        sums[name], counts[name] = s.tolist(), c.astype(int).tolist()
        if name in heldout.domains:
            labels = np.asarray([str(v) for v in heldout.domains[name]])
            by_domain[name] = {v: float(s[labels == v].sum() / c[labels == v].sum())
                               for v in sorted(set(labels)) if c[labels == v].sum()}
    train = {"steps": res.steps, "tokens": res.tokens, "epochs": res.epochs, "seconds": res.seconds,
             "tokens_per_s": res.tokens_per_s, "final_train_loss": float(np.mean(res.losses[-5:])),
             "wall_seconds": round(time.perf_counter() - t0, 3)}
    score = Score(loss=loss, doc_loss_sum=sums, doc_tokens=counts, by_domain=by_domain, train=train, key=key)
    if path:
        write_json_atomic(path, score.to_dict(), indent=None)
    return score
