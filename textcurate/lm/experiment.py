"""The small-LM experiment that ``evaluate``, the mixture proxies and the influence warm-up share.

(The salts of every id-hash split are in ``io/sampling.py``; which documents satisfy an expression,
and the held-out target, in ``select/targets.py``.)
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
from typing import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from textcurate.io.sampling import BPE_SAMPLE_SALT, in_share

CACHE_VERSION = 1        # bump when a run's result would change for the same inputs


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
    from textcurate.io.device import pick_device

    blob = {"v": CACHE_VERSION, "spec": spec.model_dump(mode="json"), "budget": int(token_budget),
            "seed": int(seed), "vocab": int(tokenizer.vocab_size), "eos": int(tokenizer.eos_id),
            "batch_size": options.batch_size, "lr": options.lr, "device": pick_device(options.device),
            "docs": tokens_digest(docs), "heldout": heldout.digest()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]


def train_and_score(docs: Sequence[np.ndarray], spec: LMSpec, token_budget: int, seed: int, *, tokenizer,
                    heldout: Heldout, options: TrainOptions | None = None, cache_dir: str | None = None,
                    reuse: Sequence[str] = ()) -> Score:
    """Train a fresh model of ``spec`` (initialised from ``seed``, data order from ``seed``) for
    ``token_budget`` tokens on ``docs`` (token ids of ``tokenizer``; a small set is repeated for
    more epochs) and score it on every set of ``heldout``. With ``cache_dir``, a finished run
    is kept there under its content key and a second call with the same inputs returns it
    without training (``Score.cached``). ``reuse``: other caches (another evaluation's ``runs``),
    only read: a run found there is copied into ``cache_dir`` and returned, so that a second
    evaluation of the same pool trains only what is new."""
    from textcurate.io.files import write_json_atomic
    from textcurate.lm.train import TrainConfig, heldout_loss, train_lm

    options = options or TrainOptions()
    key = run_key(docs, spec, token_budget, seed, tokenizer, heldout, options)
    path = os.path.join(cache_dir, f"{key}.json") if cache_dir else None
    if path and os.path.exists(path):
        with open(path) as fh:
            return Score(**json.load(fh), cached=True)
    for other in reuse:
        found = os.path.join(other, f"{key}.json")
        if os.path.exists(found):
            with open(found) as fh:
                data = json.load(fh)
            if path:
                os.makedirs(cache_dir, exist_ok=True)
                write_json_atomic(path, data)
            return Score(**data, cached=True)
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
