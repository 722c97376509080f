"""The report's section on data valuation: each unit's value for the target, with its standard
error, and what it cost (utilities, trainings)."""

from __future__ import annotations

import json
import os

from textcurate.report.html import esc, section


@section("Data valuation", 72)
def _value(run_dir: str, record: dict) -> str | None:
    path = os.path.join(run_dir, "artifacts", "value", "values.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        r = json.load(fh)
    t = r["trainings"]
    rows = "".join(f"<tr><td>{x['rank']}</td><td>{esc(x['unit'])}</td><td>{x['value']:+.4f}</td>"
                   f"<td>{x['stderr']:.4f}</td><td>{x['documents']:,}</td><td>{x['tokens']:,}</td></tr>"
                   for x in r["table"])
    spec = r["spec"]
    return (f"<p>{esc(r['method'])} over the {len(r['table'])} values of <code>{esc(r['units_field'])}</code> "
            f"for the target <code>{esc(spec['target_expr'])}</code> ({r['target_documents']:,} held-out "
            f"documents). Utility: minus the target loss after {spec['budget_tokens']:,} training tokens "
            f"(U(all) = {r['utility_full']:.4f}, U(none) = {r['utility_empty']:.4f}); {r['utilities']} utilities, "
            f"{t['trained']} trainings, {t['cached']} from the cache, {r['seconds']} s.</p>"
            "<table><tr><th>rank</th><th>unit</th><th>value</th><th>stderr</th><th>documents</th><th>tokens</th>"
            f"</tr>{rows}</table>")
