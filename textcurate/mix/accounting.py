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
TOKENIZE_BATCH = 512
ATTRIBUTE_SAMPLE = 8192  # values per attribute and source behind the quantiles (the mean and count are exact)


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
    weight_chars: dict = field(default_factory=dict)  # weight_field's value -> characters (a mixture's weight)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def interval(self) -> tuple[float, float]:
        """95% interval of the token count."""
        half = 1.96 * self.token_error * self.tokens
        return self.tokens - half, self.tokens + half


class _Counter:
    """Streaming counts of one source: exact docs and chars; tokens of every document (sample 0:
    ``count_sources`` tokenises them in batches as they stream past, never held) or of a
    bottom-k sample. Attributes: an exact count and mean, quantiles from a uniform sample of at
    most ``ATTRIBUTE_SAMPLE`` values, so memory does not grow with the source."""

    def __init__(self, name: str, sample: int, seed: int, attributes: list[str], weight_field: str | None = None):
        from textcurate.io.attributes import NumericSummary

        self.count = SourceCount(name)
        self.weight_field = weight_field
        self.sample, self.seed = sample, seed
        self._heap: list = []  # (-hash, id, text): the `sample` smallest hashes
        self.exact_tokens = 0.0
        self._attrs = {a: NumericSummary(keep=ATTRIBUTE_SAMPLE, seed=seed) for a in attributes}

    def add(self, doc) -> None:
        c = self.count
        c.documents += 1
        c.chars += len(doc.text)
        if self.weight_field:  # how the source's text splits by the weight copies will follow (exact, in characters)
            w = doc.metadata.get(self.weight_field)
            key = str(float(w)) if isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) \
                else "1.0"
            c.weight_chars[key] = c.weight_chars.get(key, 0) + len(doc.text)
        for a, summary in self._attrs.items():
            v = doc.metadata.get(a)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                summary.append(float(v))
        if self.sample == 0:
            return
        key = -stable_hash(doc.id, self.seed)
        if len(self._heap) < self.sample:
            heapq.heappush(self._heap, (key, doc.id, doc.text))
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, (key, doc.id, doc.text))

    def finish(self, tokenize) -> SourceCount:
        c = self.count
        if self.sample == 0:  # every document was tokenised on the way
            c.sampled_documents, c.tokens, c.exact, c.token_error = c.documents, self.exact_tokens, True, 0.0
            self._summarise_attributes()
            return c
        texts = [t for _, _, t in self._heap]
        lengths = np.array([len(t) for t in texts], dtype=np.float64)
        tokens = np.array([len(ids) for ids in tokenize(texts)], dtype=np.float64) if texts else np.zeros(0)
        c.sampled_documents = len(texts)
        if len(texts) == c.documents:  # every document tokenised: exact
            c.tokens, c.exact, c.token_error = float(tokens.sum()), True, 0.0
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
        for a, summary in self._attrs.items():
            if summary.finite:
                v = summary.values[np.isfinite(summary.values)]
                c.attributes[a] = {"mean": summary.mean, "n": summary.finite,
                                   **{f"p{int(q * 100)}": float(np.quantile(v, q)) for q in QUANTILES}}
                if summary.sampled:
                    c.attributes[a]["quantiles_from"] = len(v)


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
                  token_log=None, weight_field: str | None = None) -> dict[str, SourceCount]:
    """One pass over ``pairs`` of (source name, document). Returns {source: SourceCount}, in
    order of first appearance. With ``sample`` 0 every document is tokenised, in batches of
    ``TOKENIZE_BATCH`` across sources, in the order they come; ``token_log`` (a
    ``materialise.TokenLog``), when given, receives (source, id, tokens) of each in that order,
    so that materialising reads the counts instead of tokenising again."""
    counters: dict[str, _Counter] = {}
    pending: list = []  # (counter, id, text) waiting for a tokenizer batch (sample 0)

    def flush():
        if not pending:
            return
        for (c, doc_id, _), ids in zip(pending, tokenize([t for _, _, t in pending])):
            c.exact_tokens += len(ids)
            if token_log is not None:
                token_log.add(c.count.name, doc_id, len(ids))
        pending.clear()

    for name, doc in pairs:
        c = counters.get(name)
        if c is None:
            c = counters[name] = _Counter(name, sample, seed, list(attributes), weight_field)
        c.add(doc)
        if sample == 0:
            pending.append((c, doc.id, doc.text))
            if len(pending) >= TOKENIZE_BATCH:
                flush()
    flush()
    return {name: c.finish(tokenize) for name, c in counters.items()}
