"""Token accounting per source: documents, characters and tokens, exactly or estimated.

A source is an input (a run folder, JSONL or Parquet files, a file tree), optionally
narrowed by a select expression over the documents' metadata, or one value of a metadata
field (``group_by``: one source per domain, per edu_int, ...).

Documents and characters are always counted exactly, in one streaming pass. Tokens are
counted exactly when the source has at most ``sample`` documents (or ``sample`` is 0);
otherwise the ``sample`` documents with the smallest id-hash are tokenised and the total is
the ratio estimate chars x (sample tokens / sample chars), with the ratio estimator's
standard error (finite-population corrected) reported as ``token_error`` (relative).
Numeric quality attributes (edu_score, difficulty, ...) are summarised per source.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from textcurate.io.records import stable_hash

QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class SourceCount:
    name: str
    documents: int = 0
    chars: int = 0
    tokens: float = 0.0
    exact: bool = True
    sampled_documents: int = 0
    token_error: float = 0.0  # relative standard error of ``tokens`` (0 when exact)
    attributes: dict = field(default_factory=dict)  # field -> {mean, p10, p50, p90, n}

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def interval(self) -> tuple[float, float]:
        """95% interval of the token count."""
        half = 1.96 * self.token_error * self.tokens
        return self.tokens - half, self.tokens + half


class _Counter:
    """Streaming counts of one source: exact docs and chars; tokens of every document (sample
    0: tokenised in batches as they stream past, never held) or of a bottom-k sample.
    ``doc_tokens``, when given, receives {(source, id): tokens} of every document tokenised
    while the count is exact, so that materialising does not tokenise them again."""

    FLUSH = 512

    def __init__(self, name: str, sample: int, seed: int, attributes: list[str], tokenize=None,
                 doc_tokens: dict | None = None):
        self.count = SourceCount(name)
        self.sample, self.seed = sample, seed
        self.tokenize, self.doc_tokens = tokenize, doc_tokens
        self._heap: list = []  # (-hash, id, text): the `sample` smallest hashes
        self._pending: list = [] if sample == 0 else None  # (id, text) waiting for a tokenizer batch
        self._exact_tokens = 0.0
        self._attrs = {a: [] for a in attributes}

    def _flush(self) -> None:
        if not self._pending:
            return
        for (doc_id, _), ids in zip(self._pending, self.tokenize([t for _, t in self._pending])):
            self._exact_tokens += len(ids)
            if self.doc_tokens is not None:
                self.doc_tokens[(self.count.name, doc_id)] = len(ids)
        self._pending.clear()

    def add(self, doc) -> None:
        c = self.count
        c.documents += 1
        c.chars += len(doc.text)
        for a, values in self._attrs.items():
            v = doc.metadata.get(a)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                values.append(float(v))
        if self._pending is not None:
            self._pending.append((doc.id, doc.text))
            if len(self._pending) >= self.FLUSH:
                self._flush()
            return
        key = -stable_hash(doc.id, self.seed)
        if len(self._heap) < self.sample:
            heapq.heappush(self._heap, (key, doc.id, doc.text))
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, (key, doc.id, doc.text))

    def finish(self) -> SourceCount:
        c = self.count
        if self._pending is not None:  # sample 0: every document was tokenised on the way
            self._flush()
            c.sampled_documents, c.tokens, c.exact, c.token_error = c.documents, self._exact_tokens, True, 0.0
            self._summarise_attributes()
            return c
        texts = [t for _, _, t in self._heap]
        lengths = np.array([len(t) for t in texts], dtype=np.float64)
        tokens = np.array([len(ids) for ids in self.tokenize(texts)], dtype=np.float64) if texts else np.zeros(0)
        c.sampled_documents = len(texts)
        if len(texts) == c.documents:  # every document tokenised: exact
            c.tokens, c.exact, c.token_error = float(tokens.sum()), True, 0.0
            if self.doc_tokens is not None:
                for (_, doc_id, _), n in zip(self._heap, tokens):
                    self.doc_tokens[(c.name, doc_id)] = int(n)
        else:
            ratio = tokens.sum() / max(lengths.sum(), 1.0)
            n, big_n = len(texts), c.documents
            resid = tokens - ratio * lengths
            var_ratio = (1 - n / big_n) * resid.var(ddof=1) / (n * lengths.mean() ** 2) if n > 1 else float("inf")
            c.tokens, c.exact = float(ratio * c.chars), False
            c.token_error = float(math.sqrt(var_ratio) / ratio) if ratio > 0 else float("inf")
        self._summarise_attributes()
        return c

    def _summarise_attributes(self) -> None:
        c = self.count
        for a, values in self._attrs.items():
            if values:
                v = np.asarray(values)
                c.attributes[a] = {"mean": float(v.mean()), "n": len(v),
                                   **{f"p{int(q * 100)}": float(np.quantile(v, q)) for q in QUANTILES}}


def make_tokenize(tokenizer: str, batch_size: int = 256):
    """``tokenizer``: ``smollm2`` (the packaged SmolLM2's, a real 49k-vocabulary LLM tokenizer),
    ``minilm`` (the embedder's WordPiece), a local model folder, or a tokenizer.json. Returns
    texts -> token id lists, in batches."""
    from textcurate.lm.tokenizer import LMTokenizer

    if tokenizer == "minilm":
        from textcurate.embed.embedder import resolve_model

        tokenizer = resolve_model("minilm")
    tok = LMTokenizer.from_model(tokenizer) if tokenizer == "smollm2" else LMTokenizer.load(tokenizer)

    def tokenize(texts: list[str]) -> list[list[int]]:
        out: list[list[int]] = []
        for i in range(0, len(texts), batch_size):
            out.extend(tok.encode_batch(texts[i:i + batch_size]))
        return out

    return tokenize


def count_sources(pairs, tokenize, sample: int = 2000, seed: int = 0,
                  attributes: list[str] = ("edu_score", "edu_int", "difficulty"),
                  doc_tokens: dict | None = None) -> dict[str, SourceCount]:
    """One pass over ``pairs`` of (source name, document). Returns {source: SourceCount}, in
    order of first appearance. ``doc_tokens``: see ``_Counter``."""
    counters: dict[str, _Counter] = {}
    for name, doc in pairs:
        if name not in counters:
            counters[name] = _Counter(name, sample, seed, list(attributes), tokenize, doc_tokens)
        counters[name].add(doc)
    return {name: c.finish() for name, c in counters.items()}
