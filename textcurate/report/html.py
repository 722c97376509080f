"""``textcurate report RUN_DIR``: one self-contained HTML page (plots inlined as SVG).

A report is a list of sections; each is a function ``(run_dir, record) -> html | None``.
A stage adds its own with ``@section`` at the top level of any module of the package (the
report imports every module that declares one; no list to edit); a section that finds
nothing of its own returns None and is left out.
"""

from __future__ import annotations

import glob
import html
import io
import json
import os
from typing import Callable

import numpy as np
import pyarrow as pa

from textcurate.io.files import write_text_atomic
from textcurate.io.attributes import (NumericSummary, iter_attribute_batches,
                                      list_attribute_steps)
from textcurate.io.rejects import summarise_rejects

SECTIONS: list[tuple[int, str, Callable[[str, dict], str | None]]] = []


def section(title: str, order: int = 50):
    """Register a section; lower ``order`` comes first (ledger 10, scorers 30-60, config 90)."""
    def register(fn):
        SECTIONS.append((order, title, fn))
        return fn
    return register


READERS: list = []  # functions (run_dir, record) -> a visitor of the kept documents (``add(doc)``), or None
_visitors: dict = {}  # reader -> its visitor, for the report being written


def reads_documents(fn):
    """Register ``fn(run_dir, record)``, which returns an object with ``add(doc)`` (or None when its
    section has nothing to read). ``write_report`` reads RUN/documents/ once for all of them, before
    any section is drawn; the section gets its visitor back with ``documents_read(fn)``."""
    READERS.append(fn)
    return fn


def documents_read(reader):
    """The visitor ``reader`` made, after every kept document went through it; None when it made none
    or the run kept no documents."""
    return _visitors.get(reader)


def _read_documents(run_dir: str, record: dict) -> None:
    """One pass over the kept documents, feeding every registered reader's visitor."""
    _visitors.clear()
    if not os.path.isdir(os.path.join(run_dir, "documents")):
        return
    visitors = {fn: v for fn in READERS if (v := fn(run_dir, record)) is not None}
    if visitors:
        for doc in kept_documents(run_dir):
            for v in visitors.values():
                v.add(doc)
    _visitors.update(visitors)


def esc(x) -> str:
    return html.escape(str(x))


def svg(fig) -> str:
    """The figure as inline SVG, the same bytes for the same figure (no date, ids from a fixed salt)."""
    import matplotlib
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "textcurate"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


EXAMPLE_CHARS = 300  # characters of a document shown as an example


def preview(text: str, chars: int = EXAMPLE_CHARS) -> str:
    """The first ``chars`` characters of a document, whitespace collapsed (escape it before showing)."""
    text = " ".join(text[: chars * 2].split())
    return text[:chars] + ("…" if len(text) > chars else "")


def kept_documents(run_dir: str):
    """The documents a run kept (RUN/documents/), read for examples. They are the run's own output:
    a bad record was counted when it was written, so the reader's reject lines are kept quiet."""
    from loguru import logger

    from textcurate.io.readers import read_documents

    logger.disable("textcurate.io.rejects")
    try:
        yield from read_documents(run_dir)
    finally:
        logger.enable("textcurate.io.rejects")


def artifact_cards(run_dir: str, kind: str) -> list[tuple[str, str, dict]]:
    """(name, folder, card) of every RUN/artifacts/NAME/card.json whose ``kind`` is ``kind``."""
    out = []
    for path in sorted(glob.glob(os.path.join(run_dir, "artifacts", "*", "card.json"))):
        with open(path) as fh:
            card = json.load(fh)
        if card.get("kind") == kind:
            out.append((os.path.basename(os.path.dirname(path)), os.path.dirname(path), card))
    return out


def figure(width: float = 4.2, height: float = 2.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def svg_histogram(values: np.ndarray, title: str, bins: int = 40,
                  markers: list[tuple[float, str]] | None = None) -> str:
    """A histogram; ``markers`` (value, label) are drawn as red vertical lines (a select's threshold)."""
    fig, ax = figure()
    values = values[np.isfinite(values)]
    log = bool(len(values) and values.min() >= 0 and values.max() > 50 * max(np.median(values), 1e-9))
    if log:
        values = np.log10(1 + values)  # long tails (lengths, counts) read better on a log axis
        title += " (log10(1+x))"
    ax.hist(values, bins=bins, color="#4a7fb5")
    for value, _ in markers or []:
        if log and value < 0:
            continue
        ax.axvline(np.log10(1 + value) if log else value, color="#c0392b", linewidth=1.2)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return svg(fig)


@section("Ledger", 10)
def _ledger(run_dir: str, record: dict) -> str | None:
    ledger = record.get("ledger")
    if not ledger:
        return None
    rows = "".join(
        f"<tr><td>{esc(s['step'])}</td><td>{s['in']:,}</td><td>{s['kept']:,}</td><td>{s['dropped']:,}</td>"
        f"<td>{s['rejected']:,}</td><td>{s['bytes'] / 1e6:,.2f}</td><td>{s['tokens']:,}</td>"
        f"<td>{s['seconds']:.2f}</td></tr>" for s in ledger["steps"])
    t = ledger["totals"]
    ok = "balanced" if t["balanced"] else "NOT balanced"
    return (f"<p>{ledger['tasks']} task(s). in = kept + dropped + rejected: <b>{ok}</b> "
            f"({t['in']:,} = {t['kept']:,} + {t['dropped']:,} + {t['rejected']:,}).</p>"
            "<table><tr><th>step</th><th>in</th><th>kept</th><th>dropped</th><th>rejected</th><th>MB out</th>"
            f"<th>~tokens out</th><th>seconds</th></tr>{rows}</table>")


@section("Rejects", 20)
def _rejects(run_dir: str, record: dict) -> str | None:
    rej = summarise_rejects(os.path.join(run_dir, "rejects"), first=20)  # streamed: any number of rejects
    if not rej["count"]:
        return "<p>No record was rejected.</p>"
    counts = rej["by_reason"]
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{v:,}</td></tr>" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    examples = "".join(
        f"<tr><td>{esc(r['file'])}:{esc(r['line'] if r['line'] is not None else '')}</td><td>{esc(r['field'])}"
        f"</td><td>{esc(r['reason'])}</td></tr>" for r in rej["first"])
    return (f"<p>{rej['count']:,} rejected records (all of them in <code>rejects/</code>).</p>"
            f"<table><tr><th>step: field: reason</th><th>count</th></tr>{rows}</table>"
            f"<h3>First examples</h3><table><tr><th>where</th><th>field</th><th>reason</th></tr>{examples}</table>")


@section("Attributes", 30)
def _attributes(run_dir: str, record: dict) -> str | None:
    from textcurate.report.cuts import select_thresholds

    cuts = select_thresholds(record)
    parts = []
    for step in list_attribute_steps(run_dir):
        numeric, rows = {}, 0
        for batch in iter_attribute_batches(run_dir, step):  # streamed: any number of rows
            rows += batch.num_rows
            for name, col in zip(batch.schema.names, batch.columns):
                if name == "id" or not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
                                        or pa.types.is_boolean(col.type)):
                    continue
                numeric.setdefault(name, NumericSummary()).add(col.to_numpy(zero_copy_only=False))
        plots = []
        for name, summ in numeric.items():
            if not summ.n:
                continue
            note = f" (histogram and median of a uniform sample of {summ.keep:,})" if summ.sampled else ""
            marks = cuts.get(name, [])
            cut = ("; red: " + esc("; ".join(label for _, label in marks))) if marks else ""
            plots.append(f"<figure>{svg_histogram(summ.values, name, markers=marks)}<figcaption>{name}: mean "
                         f"{summ.mean:.3g}, median {np.nanmedian(summ.values):.3g}{note}{cut}</figcaption></figure>")
        parts.append(f"<h3>{esc(step)} ({rows:,} rows)</h3><div class=grid>{''.join(plots)}</div>")
    return "".join(parts) or None


@section("Fitted decisions", 80)
def _decisions(run_dir: str, record: dict) -> str | None:
    phases = record.get("phases") or {}
    items = [(k, v["decision"]) for k, v in phases.items() if "decision" in v]
    if not items:
        return None
    return "".join(f"<h3>{esc(k)}</h3><pre>{esc(json.dumps(d, indent=1))}</pre>" for k, d in items)


@section("Configuration", 90)
def _config(run_dir: str, record: dict) -> str | None:
    return f"<pre>{esc(json.dumps(record.get('config', {}), indent=2))}</pre>"


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0}figcaption{font-size:11px;color:#555;max-width:420px}pre{background:#f6f6f6;padding:8px;overflow:auto}
td.text{text-align:left;font-size:12px;max-width:720px;white-space:normal;overflow-wrap:anywhere}details{margin:.3em 0}"""


GENERATOR = '<meta name="generator" content="textcurate">'  # how a report file is known as textcurate's


def is_report(path: str) -> str | None:
    """"report" when ``path`` is a report textcurate wrote (it may be replaced), else None."""
    try:
        with open(path, "rb") as fh:
            return "report" if GENERATOR.encode() in fh.read(4096) else None
    except OSError:
        return None


def write_report(run_dir: str, out: str | None = None) -> str:
    from textcurate.registry import import_declaring

    import_declaring("@section(")  # every module that declares a section registers it on import

    with open(os.path.join(run_dir, "run.json")) as fh:
        record = json.load(fh)
    _read_documents(run_dir, record)  # once, for every section that shows documents
    body = []
    for _, title, fn in sorted(SECTIONS, key=lambda s: s[0]):
        content = fn(run_dir, record)
        if content:
            body.append(f"<h2>{esc(title)}</h2>{content}")
    page = (f"<!doctype html><html><head><meta charset=utf-8>{GENERATOR}<title>textcurate: {esc(record.get('name'))}</title>"
            f"<style>{CSS}</style></head><body><h1>textcurate run: {esc(record.get('name'))}</h1>"
            f"<p>status {esc(record.get('status'))}, started {esc(record.get('started'))}, "
            f"{esc(record.get('wall_seconds', '?'))} s, {esc(run_dir)}</p>{''.join(body)}</body></html>")
    out = out or os.path.join(run_dir, "report.html")
    write_text_atomic(out, page)
    return out
