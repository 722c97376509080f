"""The quality gates of synthetic pages, each a stage with its own ledger line and rejects.

``synth_check``: drops what generation did not deliver (an engine error, an empty answer, a
page cut at max_tokens, a page shorter than ``min_chars``) and a page that copies its seed
extract (the overlap coefficient of their word 5-gram sets: shared 5-grams over the smaller
set, exact for the one pair that matters, where a MinHash would estimate it).

``decontaminate``: drops a page that contains an evaluation set's text (Cosmopedia's rule):
texts normalised (Unicode NFD, combining marks stripped, lowercase, words by ``\\w+``), a
benchmark text is a candidate when it shares a 10-gram with the page (or its whole text, when
shorter), and is confirmed when ``difflib.SequenceMatcher(autojunk=False)`` matches more than
``threshold`` (default half) of its words in the page (counting matched runs of at least
three words, so that scattered common words do not add up). The reject names the benchmark file and
the benchmark text's id.
"""

from __future__ import annotations

import glob
import os
import re
import unicodedata
from difflib import SequenceMatcher

from pydantic import Field, field_validator

from textcurate.io.rejects import Reject
from textcurate.registry import RunPaths, ScorerParams, stage
from textcurate.steps.base import Scorer

_WORD = re.compile(r"\w+")
MIN_BLOCK = 3  # matched runs shorter than this many words (scattered common words) do not count


def normalise_words(text: str) -> list[str]:
    """NFD, combining marks stripped, lowercase, ``\\w+`` words."""
    text = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _WORD.findall(text.lower())


def shingles(words: list[str], n: int) -> set[tuple]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def seed_overlap(page: str, seed: str, n: int = 5) -> float:
    a, b = shingles(normalise_words(page), n), shingles(normalise_words(seed), n)
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def _reject(doc, reason: str) -> Reject:
    """A dropped page: its id (``synth-<prompt_id>``), the reason, and the start of its text."""
    r = Reject.for_doc(doc, "text", reason)
    r.preview = doc.text[:200]
    return r


class SynthCheck(Scorer):
    name = "synth_check"
    columns = {"page_chars": "int32", "seed_overlap": "float32"}

    def __init__(self, *, min_chars: int, drop_truncated: bool, max_seed_overlap: float, **kwargs):
        super().__init__(**kwargs)
        self.min_chars, self.drop_truncated, self.max_seed_overlap = min_chars, drop_truncated, max_seed_overlap

    def score(self, docs):
        out = []
        for d in docs:
            m = d.metadata
            text = d.text.strip()
            if m.get("synth_error"):
                out.append(_reject(d, f"engine error: {m['synth_error']}"))
                continue
            if not text:
                out.append(_reject(d, "empty answer"))
                continue
            if self.drop_truncated and m.get("finish_reason") == "length":
                out.append(_reject(d, f"truncated at max_tokens ({len(text):,} chars)"))
                continue
            if len(text) < self.min_chars:
                out.append(_reject(d, f"shorter than min_chars: {len(text)} < {self.min_chars}"))
                continue
            ov = seed_overlap(text, m.get("seed_extract") or "")
            if ov > self.max_seed_overlap:
                out.append(_reject(d, f"copies its seed extract: 5-gram overlap {ov:.2f} > "
                                      f"{self.max_seed_overlap:g} (seed {m.get('seed_id')})"))
                continue
            out.append({"page_chars": len(text), "seed_overlap": ov})
        return out


@stage("synth_check")
class SynthCheckParams(ScorerParams):
    """Drops failed, empty, truncated, short and seed-copying generated pages, each with its reason."""
    min_chars: int = Field(300, ge=0, description="pages shorter than this are dropped")
    drop_truncated: bool = Field(True, description="drop pages the engine cut at max_tokens")
    max_seed_overlap: float = Field(0.5, ge=0, le=1, description="drop a page whose word 5-grams overlap its seed "
                                                                 "extract's more than this (overlap coefficient)")
    provides = frozenset(SynthCheck.columns)

    def build(self, paths: RunPaths, name: str):
        return SynthCheck(**self.step_kwargs(), **self.scorer_kwargs(paths, name))


class BenchmarkIndex:
    """Every benchmark text's words, and an index from each of its n-grams to the texts that hold it."""

    def __init__(self, texts: list[tuple[str, str, str]], n: int):
        self.n = n
        self.items = []  # (file, id, words)
        self.index: dict[int, list[int]] = {}
        for file, tid, text in texts:
            words = normalise_words(text)
            if not words:
                continue
            k = len(self.items)
            self.items.append((file, tid, words))
            for g in shingles(words, n):
                self.index.setdefault(hash(g), []).append(k)
        self.short = sorted({len(w) for _, _, w in self.items if len(w) < n})  # lengths of texts under n words

    def candidates(self, words: list[str]) -> set[int]:
        found: set[int] = set()
        for g in shingles(words, self.n):
            found.update(self.index.get(hash(g), ()))
        for m in self.short:  # a benchmark text shorter than n: its whole text as the gram
            for g in shingles(words, m):
                found.update(k for k in self.index.get(hash(g), ()) if len(self.items[k][2]) == m)
        return found

    def worst(self, text: str) -> tuple[float, int | None]:
        """(the largest share of a benchmark text matched in ``text``, that text's index)."""
        words = normalise_words(text)
        best, which = 0.0, None
        for k in self.candidates(words):
            bench = self.items[k][2]
            sm = SequenceMatcher(None, words, bench, autojunk=False)
            matched = sum(b.size for b in sm.get_matching_blocks() if b.size >= MIN_BLOCK)
            share = matched / len(bench)
            if share > best:
                best, which = share, k
        return best, which


def read_benchmark_texts(paths: list[str], text_key: str, id_key: str) -> list[tuple[str, str, str]]:
    """(file, id, text) of every record of the named JSONL / Parquet files (or folders of them). A
    record without text is an error naming the file, line and field."""
    import orjson
    import pyarrow.parquet as pq

    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(f for f in glob.glob(os.path.join(p, "**", "*"), recursive=True)
                            if f.endswith((".jsonl", ".json", ".parquet", ".jsonl.gz")))
        elif os.path.exists(p):
            files.append(p)
        else:
            raise ValueError(f"benchmark {p}: no such file or folder")
    out = []
    for f in files:
        if f.endswith(".parquet"):
            t = pq.read_table(f)
            if text_key not in t.column_names:
                raise ValueError(f"benchmark {f}: no column {text_key!r} (columns: {', '.join(t.column_names)})")
            ids = t.column(id_key).to_pylist() if id_key in t.column_names else range(len(t))
            out += [(f, str(i), x) for i, x in zip(ids, t.column(text_key).to_pylist()) if isinstance(x, str)]
            continue
        opener = __import__("gzip").open if f.endswith(".gz") else open
        with opener(f, "rb") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    raise ValueError(f"benchmark {f}:{line_no}: not JSON ({e})") from None
                text = rec.get(text_key) if isinstance(rec, dict) else None
                if not isinstance(text, str):
                    raise ValueError(f"benchmark {f}:{line_no} field {text_key!r}: missing or not a string")
                out.append((f, str(rec.get(id_key, line_no)), text))
    if not out:
        raise ValueError(f"benchmarks {paths}: no text found")
    return out


class Decontaminate(Scorer):
    name = "decontaminate"
    columns = {"contamination": "float32"}

    def __init__(self, *, benchmarks: list[str], text_key: str, id_key: str, ngram: int, threshold: float,
                 **kwargs):
        super().__init__(**kwargs)
        self.benchmarks, self.text_key, self.id_key = benchmarks, text_key, id_key
        self.ngram, self.threshold = ngram, threshold
        self._index: BenchmarkIndex | None = None

    def setup(self, rank: int) -> None:
        if self._index is None:
            self._index = BenchmarkIndex(read_benchmark_texts(self.benchmarks, self.text_key, self.id_key),
                                         self.ngram)

    def score(self, docs):
        out = []
        for d in docs:
            share, k = self._index.worst(d.text)
            if k is not None and share > self.threshold:
                file, tid, words = self._index.items[k]
                out.append(_reject(d, f"contains a benchmark text: {share:.0%} of its {len(words)} words matched "
                                      f"(> {self.threshold:.0%}); benchmark {file} id {tid}"))
            else:
                out.append({"contamination": share})
        return out


@stage("decontaminate")
class DecontaminateParams(ScorerParams):
    """Drops documents that contain an evaluation set's text (10-gram candidates, difflib-confirmed)."""
    benchmarks: list[str] = Field(..., description="JSONL / Parquet files or folders of evaluation texts")
    text_key: str = Field("text", description="the benchmark records' text field")
    id_key: str = Field("id", description="the benchmark records' id field (else the line number)")
    ngram: int = Field(10, ge=1, description="candidate benchmark texts share a word n-gram of this length")
    threshold: float = Field(0.5, gt=0, le=1, description="dropped when more than this share of a benchmark "
                                                          "text's words is matched")

    provides = frozenset(Decontaminate.columns)

    @field_validator("benchmarks")
    @classmethod
    def _some(cls, v):
        if not v:
            raise ValueError("name at least one benchmark file")
        return v

    def preflight(self) -> None:
        for b in self.benchmarks:
            if not os.path.exists(b):
                raise ValueError(f"benchmarks: {b}: no such file or folder")

    def build(self, paths: RunPaths, name: str):
        return Decontaminate(**self.step_kwargs(), **self.scorer_kwargs(paths, name))
