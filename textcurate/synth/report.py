"""The report's section on synthetic pages: topics, pages per audience and style, the score
histogram, the gates' rejects (decontamination by benchmark text), diversity, example pages."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np

from textcurate.report.html import esc, section, svg_histogram

EXAMPLES = 3
SAMPLE = 2000  # kept pages read for the tables and diversity


def kept_pages(run_dir: str, limit: int = SAMPLE) -> list[dict]:
    from textcurate.io.readers import read_documents

    docs = os.path.join(run_dir, "documents")
    if not os.path.isdir(docs):
        return []
    out = []
    for d in read_documents(docs):
        if "prompt_id" not in d.metadata:
            continue
        out.append({"id": d.id, "text": d.text, **{k: d.metadata.get(k) for k in (
            "topic", "audience", "style", "edu_score", "prompt_id", "template_version")}})
        if len(out) >= limit:
            break
    return out


def synth_diversity(run_dir: str) -> dict | None:
    """diversity() of the run's kept pages, cached in artifacts/synth/diversity.json."""
    from textcurate.io.files import write_json_atomic
    from textcurate.synth.diversity import diversity

    folder = os.path.join(run_dir, "artifacts", "synth")
    path = os.path.join(folder, "diversity.json")
    if os.path.exists(path):
        with open(path) as fh:
            return json.load(fh)
    if not os.path.isdir(folder):
        return None
    result = diversity(kept_pages(run_dir))
    write_json_atomic(path, result)
    return result


@section("Synthetic pages", 35)
def _synth(run_dir: str, record: dict) -> str | None:
    from textcurate.io.rejects import read_rejects

    folder = os.path.join(run_dir, "artifacts", "synth")
    if not os.path.exists(os.path.join(folder, "prepare.json")):
        return None
    with open(os.path.join(folder, "prepare.json")) as fh:
        prep = json.load(fh)
    with open(os.path.join(folder, "topics.json")) as fh:
        topics = json.load(fh)
    parts = [f"<p>{prep['prompts']:,} prompts ({esc(prep['template_version'])}) over {prep['kept_topics']} of "
             f"{prep['topics']} topics, from {prep['seeds']:,} seed documents.</p>"]
    rows = "".join(f"<tr><td>{esc(t['topic'] or '?')}</td><td>{t.get('size') or ''}</td>"
                   f"<td>{'' if t.get('educational') is None else t['educational']}</td>"
                   f"<td>{'kept' if t['kept'] else esc(t['reason'])}</td></tr>" for t in topics)
    parts.append("<h3>Topics</h3><table><tr><th>topic</th><th>seeds in cluster</th><th>P(Yes) educational</th>"
                 f"<th>decision</th></tr>{rows}</table>")
    pages = kept_pages(run_dir)
    if pages:
        cells = Counter((p["audience"], p["style"]) for p in pages)
        auds = sorted({a for a, _ in cells})
        styles = sorted({s for _, s in cells})
        body = "".join(f"<tr><td>{esc(a)}</td>" + "".join(f"<td>{cells.get((a, s), 0)}</td>" for s in styles)
                       + "</tr>" for a in auds)
        parts.append("<h3>Kept pages per audience and style</h3><table><tr><th></th>"
                     + "".join(f"<th>{esc(s)}</th>" for s in styles) + f"</tr>{body}</table>")
        scores = np.array([p["edu_score"] for p in pages if p.get("edu_score") is not None], dtype=float)
        if len(scores):
            parts.append(svg_histogram(scores, "edu_score of kept pages", bins=20))
    rejects = read_rejects(os.path.join(run_dir, "rejects"))
    gates = Counter(r.get("step") for r in rejects)
    if gates:
        parts.append("<h3>Dropped by the gates</h3><table><tr><th>step</th><th>pages</th></tr>"
                     + "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in gates.most_common()) + "</table>")
    contaminated = [r for r in rejects if r.get("step", "").startswith("decontaminate")]
    if contaminated:
        parts.append("<h3>Decontamination</h3><table><tr><th>page</th><th>why</th></tr>"
                     + "".join(f"<tr><td>{esc(r.get('id'))}</td><td>{esc(r.get('reason'))}</td></tr>"
                               for r in contaminated[:50]) + "</table>")
    div = synth_diversity(run_dir)
    if div and div.get("pages"):
        keys = ("distinct_1", "distinct_2", "distinct_3", "distinct_openings", "mean_pairwise_cosine")
        parts.append("<h3>Diversity</h3><table>" + "".join(f"<tr><td>{k}</td><td>{div[k]}</td></tr>"
                                                         for k in keys if k in div) + "</table>")
    for p in pages[:EXAMPLES]:
        parts.append(f"<h3>Example: {esc(p['topic'])} / {esc(p['audience'])} / {esc(p['style'])}</h3>"
                     f"<pre>{esc(p['text'][:2000])}</pre>")
    return "".join(parts)
