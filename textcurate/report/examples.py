"""What a curator reads before trusting a score: example documents at the top, the middle and the
bottom of every numeric score the run's scorers wrote, and the thresholds its ``select`` stages used
(drawn on the Attributes section's histograms).

The examples come from the documents the run kept (``documents/``): a dropped document's text is
not stored, so a score that a ``select`` cut shows its bottom among the kept ones, and the section
says so. One streamed pass; memory is a few hundred short previews per score, whatever the size of
the run. The middle is taken from a sample chosen by a hash of the id, so the same run gives the
same page."""

from __future__ import annotations

import heapq
import math

from textcurate.io.attributes import attribute_columns, list_attribute_steps
from textcurate.io.records import stable_hash
from textcurate.io.sampling import REPORT_SAMPLE_SALT as SALT
from textcurate.report.cuts import select_thresholds
from textcurate.report.html import EXAMPLE_CHARS, documents_read, esc, preview, reads_documents, section

PER_BAND = 3
MIDDLE_SAMPLE = 400  # documents (by smallest id-hash) the middle of a score is read from


def _score_fields(run_dir: str) -> list[str]:
    fields: list[str] = []
    for step in list_attribute_steps(run_dir):
        for c in attribute_columns(run_dir, step):
            if c != "id" and c not in fields:
                fields.append(c)
    return fields


class _Bands:
    """The PER_BAND highest and lowest values of one score, and a hash-chosen sample for the middle."""

    def __init__(self):
        self.top: list = []     # min-heap of (value, -hash, id, preview): the highest
        self.bottom: list = []  # min-heap of (-value, -hash, id, preview): the lowest
        self.sample: list = []  # max-heap by hash of (-hash, value, id, preview): the smallest hashes
        self.n = 0

    def add(self, value: float, h: int, doc_id: str, preview: str) -> None:
        self.n += 1
        item = (value, -h, doc_id, preview)
        (heapq.heappush if len(self.top) < PER_BAND else heapq.heappushpop)(self.top, item)
        (heapq.heappush if len(self.bottom) < PER_BAND else heapq.heappushpop)(self.bottom, (-value, -h, doc_id, preview))
        (heapq.heappush if len(self.sample) < MIDDLE_SAMPLE else heapq.heappushpop)(self.sample, (-h, value, doc_id, preview))

    def bands(self) -> list[tuple[str, list[tuple[float, str, str]]]]:
        top = sorted(((v, i, p) for v, _, i, p in self.top), key=lambda t: -t[0])
        bottom = sorted(((-v, i, p) for v, _, i, p in self.bottom), key=lambda t: -t[0])  # highest first
        mid = sorted((v, i, p) for _, v, i, p in self.sample)
        m = len(mid) // 2
        middle = mid[max(0, m - PER_BAND // 2): max(0, m - PER_BAND // 2) + PER_BAND]
        return [("top", top), ("middle", middle[::-1]), ("bottom", bottom)]


class _Examples:
    """Every score's bands, filled by the report's one pass over the kept documents."""

    def __init__(self, fields: list[str]):
        self.fields, self.kept = fields, 0
        self.bands = {f: _Bands() for f in fields}

    def add(self, doc) -> None:
        self.kept += 1
        meta, shown, h = doc.metadata, None, None
        for f in self.fields:
            v = meta.get(f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            if shown is None:
                shown, h = preview(doc.text), stable_hash(doc.id, SALT)
            self.bands[f].add(float(v), h, doc.id, shown)


@reads_documents
def _example_reader(run_dir: str, record: dict) -> _Examples | None:
    fields = _score_fields(run_dir)
    return _Examples(fields) if fields else None


@section("Examples", 35)
def _examples(run_dir: str, record: dict) -> str | None:
    seen = documents_read(_example_reader)
    if seen is None:
        return None
    fields, bands, kept = seen.fields, seen.bands, seen.kept
    cuts = select_thresholds(record)
    parts = [f"<p>From the {kept:,} documents the run kept (<code>documents/</code>; the text of a dropped "
             "document is not stored, so below a <code>select</code>'s threshold nothing shows). The first "
             f"{EXAMPLE_CHARS} characters of each; the middle is read from {MIDDLE_SAMPLE} documents chosen "
             "by a hash of their id.</p>"]
    for f in fields:
        b = bands[f]
        if not b.n:
            continue
        cut = "; ".join(label for _, label in cuts.get(f, []))
        rows = "".join(f"<tr><td>{band}</td><td>{v:.4g}</td><td>{esc(i)}</td><td class=text>{esc(p)}</td></tr>"
                       for band, docs in b.bands() for v, i, p in docs)
        parts.append(f"<details{' open' if cut else ''}><summary><b>{esc(f)}</b> ({b.n:,} kept documents"
                     f"{'; cut by ' + esc(cut) if cut else ''})</summary>"
                     f"<table><tr><th>band</th><th>value</th><th>id</th><th>text</th></tr>{rows}</table></details>")
    return "".join(parts)
