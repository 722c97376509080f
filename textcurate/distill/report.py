"""The report's section on distillation: the chosen method against its baselines at the same n
(MMD^2 to held-out documents, covering radius, cluster-histogram KL, time), and the groups' shares."""

from __future__ import annotations

import glob
import json
import os

from textcurate.report.html import esc, section


def _cards(run_dir: str, filename: str):
    """(stage name, card) of every distill stage of the run that wrote ``filename``."""
    for path in sorted(glob.glob(os.path.join(run_dir, "artifacts", "*", filename))):
        with open(path) as fh:
            yield os.path.basename(os.path.dirname(path)), json.load(fh)


@section("Distillation", 58)
def _distill(run_dir: str, record: dict) -> str | None:
    parts = []
    for name, c in _cards(run_dir, "distill.json"):
        parts.append(f"<h3>{esc(name)}: {c['n']:,} of {c['rows']:,} documents by {esc(c['method'])}</h3>"
                     f"<p>{c['heldout']:,} documents held out of every selection and measured against; "
                     f"{esc(c['weights'])} weights; kernel bandwidths "
                     f"{', '.join(f'{h:.3g}' for h in c['kernel']['bandwidths'])} plus the linear kernel; "
                     f"cluster KL over {c['clusters']} k-means clusters. Lower is better in every column.</p>")
        rows = []
        for r in c["table"]:
            bold = " style='font-weight:bold'" if r["method"] == c["method"] else ""
            cells = [r["method"], f"{r['seconds']:.1f}",
                     *(f"{r[k]:.5f}" if k in r else "" for k in ("mmd2_weighted", "mmd2_uniform")),
                     f"{r['mmd_vs_random']:.2f}x" if "mmd_vs_random" in r else "",
                     f"{r['covering_radius']:.3f}" if "covering_radius" in r else "",
                     f"{r['cluster_kl_weighted']:.4f}"]
            rows.append(f"<tr{bold}>" + "".join(f"<td>{esc(x)}</td>" for x in cells) + "</tr>")
        parts.append("<table><tr><th>method</th><th>seconds</th><th>MMD^2</th><th>MMD^2 uniform</th>"
                     "<th>MMD vs random</th><th>covering radius</th><th>cluster KL</th></tr>"
                     + "".join(rows) + "</table>")
        if c.get("groups"):
            parts.append("<table><tr><th>group</th><th>documents</th><th>selected</th></tr>" + "".join(
                f"<tr><td>{esc(g)}</td><td>{v['documents']:,}</td><td>{v['selected']:,}</td></tr>"
                for g, v in c["groups"].items()) + "</table>")
    return "".join(parts) or None


@section("Distillation of a labelled set", 59)
def _distill_labels(run_dir: str, record: dict) -> str | None:
    from textcurate.distill.labelled_run import table_lines

    parts = []
    for name, c in _cards(run_dir, "distill_labels.json"):
        parts.append(f"<h3>{esc(name)}: {esc(', '.join(c['methods']))} on {esc(c['labels'])} "
                     f"({len(c['classes'])} classes, {c['train']:,} training rows)</h3>"
                     f"<p>Fresh heads trained on each set, {c['inits']} initialisations each (random: also "
                     f"{c['coreset_draws']} draws), tested on {c['test']:,} rows ({esc(c['test_how'])}); "
                     f"mean ± standard deviation in percent."
                     + (f" Sizes capped at a class's rows: {esc(', '.join(f'{k} ({v})' for k, v in c['capped'].items()))}."
                        if c.get("capped") else "") + "</p>")
        for metric, what in (("acc", "accuracy"), ("f1", "macro-F1")):
            header, rows = table_lines(c, metric)
            parts.append(f"<p>{what}</p><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
                         + "".join("<tr" + (" style='font-weight:bold'" if r[0] in c["methods"] else "") + ">"
                                   + "".join(f"<td>{esc(x)}</td>" for x in r) + "</tr>" for r in rows)
                         + "</table>")
    return "".join(parts) or None
