"""The report's domain x quality table: every topic the ``domains`` stage named, with its documents,
their formats, the quality score's mean and the share at or above FineWeb-Edu's threshold (3),
and a few of its kept documents to read."""

from __future__ import annotations

import heapq
import json
import math
import os

from textcurate.io.records import stable_hash
from textcurate.io.sampling import REPORT_SAMPLE_SALT
from textcurate.report.html import artifact_cards, documents_read, esc, preview, reads_documents, section

QUALITY = "edu_score"
THRESHOLD = 3.0
PER_TOPIC = 2  # example documents shown per topic


class _Table:
    def __init__(self):
        self.n: dict[str, int] = {}
        self.formats: dict[str, dict[str, int]] = {}
        self.q_n: dict[str, int] = {}
        self.q_sum: dict[str, float] = {}
        self.q_high: dict[str, int] = {}
        self.examples: dict[str, list] = {}

    def add(self, doc) -> None:
        m = doc.metadata
        topic, fmt = m.get("topic"), m.get("format")
        if not isinstance(topic, str):
            return
        self.n[topic] = self.n.get(topic, 0) + 1
        f = self.formats.setdefault(topic, {})
        f[str(fmt)] = f.get(str(fmt), 0) + 1
        q = m.get(QUALITY)
        if isinstance(q, (int, float)) and not isinstance(q, bool) and math.isfinite(q):
            self.q_n[topic] = self.q_n.get(topic, 0) + 1
            self.q_sum[topic] = self.q_sum.get(topic, 0.0) + float(q)
            self.q_high[topic] = self.q_high.get(topic, 0) + (q >= THRESHOLD)
        heap, key = self.examples.setdefault(topic, []), -stable_hash(doc.id, REPORT_SAMPLE_SALT)
        if len(heap) < PER_TOPIC:
            heapq.heappush(heap, (key, doc.id, str(fmt), preview(doc.text)))
        elif key > heap[0][0]:
            heapq.heapreplace(heap, (key, doc.id, str(fmt), preview(doc.text)))


@reads_documents
def _domains_reader(run_dir: str, record: dict) -> _Table | None:
    return _Table() if artifact_cards(run_dir, "domains") else None


@section("Domains", 52)
def _domains(run_dir: str, record: dict) -> str | None:
    cards = artifact_cards(run_dir, "domains")
    if not cards:
        return None
    parts = []
    for name, folder, card in cards:
        with open(os.path.join(folder, "domains.json")) as fh:
            full = json.load(fh)
        agree = full.get("head_agreement")
        if full.get("format_by") == "embedding":
            formats = (f"formats by the nearest description to each document's embedding "
                       f"({esc(full.get('embedder', ''))}; no judge)")
        else:
            formats = (f"formats learnt from {full['judged']:,} documents the judge labelled, the head agreeing with it "
                       f"on {'n/a' if agree is None else f'{agree:.1%}'} of them (cross-validated; always answering "
                       f"the commonest label would agree on {full.get('majority_share') or 0:.1%})")
        parts.append(f"<p><b>{esc(name)}</b>: {len(full['topics'])} topics from {len(full['clusters'])} clusters, "
                     f"named by {esc(full['engine'])} ({esc(full['model'])}); {formats}.</p>")
        rows = "".join(f"<tr><td>{esc(c)}</td><td>{esc(t['topic'])}</td><td>{esc(t['reason'])}</td></tr>"
                       for c, t in full["clusters"].items())
        parts.append(f"<details><summary>How each cluster was named</summary><table><tr><th>cluster</th>"
                     f"<th>topic</th><th>why</th></tr>{rows}</table></details>")
    seen = documents_read(_domains_reader)
    if seen is None or not seen.n:
        return "".join(parts)
    total = sum(seen.n.values())
    rows = []
    for topic in sorted(seen.n, key=lambda t: -seen.n[t]):
        qn = seen.q_n.get(topic, 0)
        fmts = ", ".join(f"{f} {c / seen.n[topic]:.0%}" for f, c in
                         sorted(seen.formats[topic].items(), key=lambda x: -x[1])[:3])
        rows.append(f"<tr><td>{esc(topic)}</td><td>{seen.n[topic]:,}</td><td>{seen.n[topic] / total:.1%}</td>"
                    f"<td>{esc(fmts)}</td><td>{'' if not qn else f'{seen.q_sum[topic] / qn:.2f}'}</td>"
                    f"<td>{'' if not qn else f'{seen.q_high[topic] / qn:.1%}'}</td></tr>")
    parts.append(f"<table><tr><th>topic</th><th>kept documents</th><th>share</th><th>formats</th>"
                 f"<th>mean {QUALITY}</th><th>{QUALITY} &gt;= {THRESHOLD:g}</th></tr>{''.join(rows)}</table>")
    ex = "".join(f"<tr><td>{esc(topic)}</td><td>{esc(f)}</td><td>{esc(i)}</td><td class=text>{esc(p)}</td></tr>"
                 for topic in sorted(seen.n, key=lambda t: -seen.n[t])
                 for _, i, f, p in sorted(seen.examples[topic], reverse=True))
    parts.append("<details open><summary>Documents of each topic</summary><table><tr><th>topic</th><th>format</th>"
                 f"<th>id</th><th>text</th></tr>{ex}</table></details>")
    return "".join(parts)
