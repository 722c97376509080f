"""Report section of a mixture plan: the GPT-3-style table, the predicted cost of
repetition, the per-source quality attributes, and the materialised ledger."""

from __future__ import annotations

import glob
import json
import os

from textcurate.report.html import esc, section


def plan_html(data: dict) -> str:
    from textcurate.mix.planner import Plan, human, plan_summary

    plan = Plan.from_dict(data["plan"])
    counts = data.get("counts", {})
    rows = []
    for r in plan.rows:
        c = counts.get(r.name, {})
        est = "" if not c else ("exact" if c.get("exact") else f"&plusmn;{1.96 * c['token_error']:.1%} (95%)")
        rows.append(f"<tr><td>{esc(r.name)}</td><td>{human(r.tokens)}</td><td>{est}</td><td>{r.quality:.3g}</td>"
                    f"<td>{r.weight:.1%}</td><td>{r.epochs:.2f}</td><td>{human(r.effective_tokens)}</td>"
                    f"<td>{esc('; '.join(r.warnings))}</td></tr>")
    html = (f"<p>{plan.method} mixture for {human(plan.budget_tokens)} training tokens, {human(plan.model_params)} "
            f"parameters ({plan.model_params_source}); tokens counted with <code>{esc(data.get('tokenizer', '?'))}"
            f"</code>.</p><table><tr><th>source</th><th>quantity (tokens)</th><th>count</th><th>quality</th>"
            f"<th>weight in mix</th><th>epochs elapsed</th><th>effective tokens</th><th>warnings</th></tr>"
            f"{''.join(rows)}</table><p>{esc(plan_summary(plan))}</p>")
    attrs = sorted({a for c in counts.values() for a in c.get("attributes", {})})
    if attrs:
        head = "".join(f"<th>{esc(a)} mean [p10, p90]</th>" for a in attrs)
        body = ""
        for name, c in counts.items():
            cells = "".join(
                f"<td>{c['attributes'][a]['mean']:.3g} [{c['attributes'][a]['p10']:.3g}, {c['attributes'][a]['p90']:.3g}]"
                f"</td>" if a in c["attributes"] else "<td></td>" for a in attrs)
            body += f"<tr><td>{esc(name)}</td><td>{c['documents']:,}</td>{cells}</tr>"
        html += f"<h4>Quality attributes per source</h4><table><tr><th>source</th><th>documents</th>{head}</tr>{body}</table>"
    if data.get("fit"):
        from textcurate.mix.run import fit_summary

        html += f"<h4>Fitted weights</h4><p>{esc(fit_summary(data['fit']))}</p>"
    mix = data.get("mixture")
    if mix:
        body = "".join(f"<tr><td>{esc(n)}</td><td>{human(s['planned_tokens'])}</td><td>{s['realised_tokens']:,}</td>"
                       f"<td>{s['realised_tokens'] - s['planned_tokens']:+,.0f}</td><td>{s['tolerance_tokens']:,}</td>"
                       f"<td>{s['realised_epochs']:.2f}</td><td>{s['copies']:,}</td></tr>"
                       for n, s in mix["sources"].items())
        html += (f"<h4>Materialised: {mix['realised_tokens']:,} tokens in {mix['shards']} shard(s), "
                 f"{'within' if mix['within_tolerance'] else 'OUTSIDE'} tolerance</h4><table><tr><th>source</th>"
                 f"<th>planned</th><th>realised</th><th>difference</th><th>tolerance (largest document)</th>"
                 f"<th>epochs</th><th>copies</th></tr>{body}</table>")
    return html


@section("Mixture plan", 70)
def _mixture(run_dir: str, record: dict) -> str | None:
    parts = []
    for card_path in sorted(glob.glob(os.path.join(run_dir, "artifacts", "*", "card.json"))):
        with open(card_path) as fh:
            card = json.load(fh)
        if card.get("kind") != "mixture_plan":
            continue
        folder = os.path.dirname(card_path)
        with open(os.path.join(folder, "plan.json")) as fh:
            data = json.load(fh)
        mix = os.path.join(folder, "mixture", "mixture.json")
        if "mixture" not in data and os.path.exists(mix):
            with open(mix) as fh:
                data["mixture"] = json.load(fh)
        parts.append(f"<h3>{esc(os.path.basename(folder))}</h3>{plan_html(data)}")
    return "".join(parts) or None
