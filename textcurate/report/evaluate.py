"""Report section of the data-efficiency evaluation: target loss against fraction of the pool,
random as the reference line, one line per selection; and the multiplier table."""

from __future__ import annotations

import json
import os

import numpy as np

from textcurate.report.html import _esc, _svg, figure, section


def load_result(run_dir: str) -> dict | None:
    path = os.path.join(run_dir, "evaluate", "evaluate.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def curve_points(result: dict, name: str) -> list[tuple[float, float, float, float]]:
    """(mean fraction, mean target loss, min, max) per requested fraction of one method."""
    by: dict = {}
    for r in result["runs"]:
        if r["name"] == name:
            by.setdefault(r["requested"], []).append(r)
    out = []
    for rs in by.values():
        losses = [r["target_loss"] for r in rs]
        out.append((float(np.mean([r["fraction"] for r in rs])), float(np.mean(losses)), min(losses), max(losses)))
    return sorted(out)


def loss_plot(result: dict) -> str:
    fig, ax = figure(5.6, 3.6)
    names = ["random"] + sorted({s["name"] for s in result["selections"]})
    for name in names:
        pts = curve_points(result, name)
        x, y, lo, hi = (np.array(v) for v in zip(*pts))
        style = dict(color="black", lw=2, marker="o") if name == "random" else dict(marker="s", lw=1.2)
        ax.errorbar(x, y, yerr=[y - lo, hi - y], label=name, capsize=2, ms=4, **style)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of the pool's tokens", fontsize=8)
    ax.set_ylabel("target loss (nats/token)", fontsize=8)
    ax.set_title("same model, seed and token budget for every run (bars: range over seeds)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return _svg(fig)


@section("Data efficiency", 70)
def _evaluate(run_dir: str, record: dict) -> str | None:
    result = load_result(run_dir)
    if result is None:
        return None
    from textcurate.evaluate.curves import format_delta, format_multiplier

    rows = []
    for s in result["selections"]:
        rows.append(f"<tr><td>{_esc(s['name'])}</td><td>{s['fraction']:.3f}</td><td>{s['target_loss']['mean']:.4f}"
                    f"</td><td>{_esc(format_delta(s))}</td><td>{_esc(format_multiplier(s))}</td></tr>")
    rand = "".join(f"<tr><td>random</td><td>{f:.3f}</td><td>{y:.4f}</td><td></td><td>1 by definition</td></tr>"
                   for f, y, _, _ in curve_points(result, "random"))
    model = result["model"]
    return (f"<p>Pool {result['pool']['documents']:,} documents ({result['pool']['tokens']:,} tokens), target "
            f"{result['target']['documents']:,} held-out documents, general held-out "
            f"{result['general']['documents']:,}. A GPT of {model['parameters']:,} parameters ({model['n_layer']} "
            f"layers, width {model['n_embd']}) trained from scratch for {result['spec']['budget_tokens']:,} tokens "
            f"per run, seeds {result['spec']['seeds']}. The multiplier is the fraction of random data that reaches "
            f"the selection's target loss divided by the selection's own fraction (above 1: better than random); "
            f"&ge; when the selection beat every random run, &le; when it lost to all. Delta: the selection's "
            f"target loss minus random's at the same fraction (negative: better).</p>"
            f"<div class=grid>{loss_plot(result)}</div><table><tr><th>method</th><th>fraction</th>"
            f"<th>target loss</th><th>delta vs random, mean [min, max]</th><th>multiplier</th></tr>{rand}"
            f"{''.join(rows)}</table>")
