"""Report of the data-efficiency evaluation, one part per token budget: target loss against
fraction of the pool (random as the reference line, one line per selection), whether the
random curve slopes at that budget, and the table of deltas and multipliers (none where the
random curve is flat). ``evaluation_tables`` gives the same tables for the terminal."""

from __future__ import annotations

import json
import os

import numpy as np

from textcurate.report.html import esc, svg, figure, section


def load_result(run_dir: str) -> dict | None:
    path = os.path.join(run_dir, "evaluate", "evaluate.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def budgets(result: dict) -> list[dict]:
    """Per budget: {budget_tokens, epochs_at_10pct, random_curve, warnings}; a result written
    before budgets were recorded counts as one budget without a slope test."""
    if result.get("budgets"):
        return result["budgets"]
    return [{"budget_tokens": result["spec"]["budget_tokens"], "epochs_at_10pct": None, "random_curve": None,
             "warnings": []}]


def _of_budget(items: list[dict], budget) -> list[dict]:
    return [x for x in items if x.get("budget_tokens", budget) == budget]


def curve_points(result: dict, name: str, budget=None) -> list[tuple[float, float, float, float]]:
    """(mean fraction, mean target loss, min, max) per requested fraction of one method (at one budget)."""
    by: dict = {}
    runs = result["runs"] if budget is None else _of_budget(result["runs"], budget)
    for r in runs:
        if r["name"] == name:
            by.setdefault(r["requested"], []).append(r)
    out = []
    for rs in by.values():
        losses = [r["target_loss"] for r in rs]
        out.append((float(np.mean([r["fraction"] for r in rs])), float(np.mean(losses)), min(losses), max(losses)))
    return sorted(out)


def slope_text(b: dict) -> str:
    c = b.get("random_curve")
    if not c:
        return ""
    if c["ci"][0] != c["ci"][0]:  # NaN: too few runs
        return f"random curve: {c['why']}"
    return (f"random curve slope {c['slope']:+.4f} nats per unit log fraction, 95 % interval [{c['ci'][0]:+.4f}, "
            f"{c['ci'][1]:+.4f}]: {'it slopes' if c['sloped'] else 'RISING (more random data did worse), no multiplier' if c['ci'][0] > 0 else 'FLAT within its noise, no multiplier'}")


def evaluation_tables(result: dict) -> list:
    """One rich table per budget: random fractions and selections, delta, general loss, epochs, multiplier."""
    from rich.table import Table

    from textcurate.evaluate.curves import format_delta, format_multiplier

    tables = []
    for b in budgets(result):
        bt = b["budget_tokens"]
        e10 = f", random 10 % = {b['epochs_at_10pct']:.1f} epochs" if b.get("epochs_at_10pct") else ""
        t = Table(title=f"data efficiency: target loss (nats/token), {len(result['spec']['seeds'])} seeds, "
                        f"{bt:,} training tokens per run{e10}")
        for col in ("method", "fraction", "target loss", "delta vs random", "general loss", "epochs", "multiplier"):
            t.add_column(col, justify="left" if col == "method" else "right")
        runs = _of_budget(result["runs"], bt)
        for f, y, lo, hi in curve_points(result, "random", bt):
            rs = [r for r in runs if r["name"] == "random" and abs(r["fraction"] - f) < 0.02]
            g = [r["general_loss"] for r in rs if r.get("general_loss") is not None]
            t.add_row("random", f"{f:.3f}", f"{y:.4f}", "", f"{np.mean(g):.4f}" if g else "",
                      f"{np.mean([r['epochs'] for r in rs]):.1f}", "1")
        for s in _of_budget(result["selections"], bt):
            g = [p["general_loss"] for p in s["per_seed"] if p.get("general_loss") is not None]
            t.add_row(s["name"], f"{s['fraction']:.3f}", f"{s['target_loss']['mean']:.4f}", format_delta(s),
                      f"{np.mean(g):.4f}" if g else "", f"{np.mean([p['epochs'] for p in s['per_seed']]):.1f}",
                      format_multiplier(s), style="bold" if (s["delta"]["mean"] or 0) < 0 else None)
        caption = [slope_text(b)] if slope_text(b) else []
        caption.append("multiplier: the random fraction reaching the same target loss / the selection's fraction "
                       "(>=: it beat every random run; <=: it lost to all); delta: its target loss minus random's "
                       "at its fraction")
        t.caption = "\n".join(caption)
        tables.append(t)
    return tables


def loss_plot(result: dict, budget=None) -> str:
    fig, ax = figure(5.6, 3.6)
    sels = result["selections"] if budget is None else _of_budget(result["selections"], budget)
    names = ["random"] + sorted({s["name"] for s in sels})
    for name in names:
        pts = curve_points(result, name, budget)
        x, y, lo, hi = (np.array(v) for v in zip(*pts))
        style = dict(color="black", lw=2, marker="o") if name == "random" else dict(marker="s", lw=1.2)
        ax.errorbar(x, y, yerr=[y - lo, hi - y], label=name, capsize=2, ms=4, **style)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of the pool's tokens", fontsize=8)
    ax.set_ylabel("target loss (nats/token)", fontsize=8)
    title = "same model, seed and token budget for every run (bars: range over seeds)"
    if budget is not None:
        title = f"{budget:,} tokens per run; " + title
    ax.set_title(title, fontsize=7)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return svg(fig)


@section("Data efficiency", 70)
def _evaluate(run_dir: str, record: dict) -> str | None:
    result = load_result(run_dir)
    if result is None:
        return None
    from textcurate.evaluate.curves import format_delta, format_multiplier

    model = result["model"]
    parts = [f"<p>Pool {result['pool']['documents']:,} documents ({result['pool']['tokens']:,} tokens), target "
             f"{result['target']['documents']:,} held-out documents, general held-out "
             f"{result['general']['documents']:,}. A GPT of {model['parameters']:,} parameters ({model['n_layer']} "
             f"layers, width {model['n_embd']}) trained from scratch per run, seeds {result['spec']['seeds']}, at "
             f"each token budget below. The multiplier is the fraction of random data that reaches the selection's "
             f"target loss divided by the selection's own fraction (above 1: better than random); &ge; when the "
             f"selection beat every random run, &le; when it lost to all; none where the random curve is flat "
             f"within its noise (more random data did not measurably lower the target loss at that budget). "
             f"Delta: the selection's target loss minus random's at the same fraction (negative: better).</p>"]
    for b in budgets(result):
        bt = b["budget_tokens"]
        rows = []
        for s in _of_budget(result["selections"], bt):
            rows.append(f"<tr><td>{esc(s['name'])}</td><td>{s['fraction']:.3f}</td>"
                        f"<td>{s['target_loss']['mean']:.4f}</td><td>{esc(format_delta(s))}</td>"
                        f"<td>{esc(format_multiplier(s))}</td></tr>")
        rand = "".join(f"<tr><td>random</td><td>{f:.3f}</td><td>{y:.4f}</td><td></td><td>1 by definition</td></tr>"
                       for f, y, _, _ in curve_points(result, "random", bt))
        e10 = f" (random 10 % = {b['epochs_at_10pct']:.1f} epochs)" if b.get("epochs_at_10pct") else ""
        warn = "".join(f"<p><b>warning:</b> {esc(w)}</p>" for w in b.get("warnings", []))
        parts.append(f"<h3>{bt:,} training tokens per run{e10}</h3><p>{esc(slope_text(b))}</p>{warn}"
                     f"<div class=grid>{loss_plot(result, bt)}</div><table><tr><th>method</th><th>fraction</th>"
                     f"<th>target loss</th><th>delta vs random, mean [min, max]</th><th>multiplier</th></tr>{rand}"
                     f"{''.join(rows)}</table>")
    return "".join(parts)
