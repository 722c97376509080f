"""Report section of the influence stage: the score distribution and the documents that help
(and hurt) the target most. The evaluation curve is the Data efficiency section."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq

from textcurate.report.html import artifact_cards, esc, section, svg_histogram


@section("Influence", 60)
def _influence(run_dir: str, record: dict) -> str | None:
    parts = []
    for name, folder, card in artifact_cards(run_dir, "influence"):
        scores = pq.read_table(os.path.join(folder, "influence.parquet")).column("influence").to_numpy()
        scores = scores[~np.isnan(scores)]  # two-stage: documents outside the candidates have none
        spec = card["spec"]
        rows = "".join(
            f"<tr><td>{title}</td><td>{r['influence']:+.4f}</td><td>{esc(r['id'])}</td>"
            f"<td><small>{esc(r['text'][:240])}</small></td></tr>"
            for title, group in (("top", card["top"]), ("bottom", card["bottom"])) for r in group)
        parts.append(
            f"<h3>{esc(name)}</h3><p>{card['method'].upper()}: {card['pool']:,} pool documents against "
            f"{card['target']:,} target documents; gradients of {card['grad_dim']:,} parameters projected to "
            f"{spec['proj_dim']:,} ({spec['proj_kind']}), {len(card['checkpoints'])} checkpoints of a warm-up on "
            f"{card['warmup']['documents']:,} documents; {card['gradients_per_s']:.0f} gradients/s.</p>"
            f"<div class=grid><figure>{svg_histogram(np.asarray(scores, dtype=np.float64), 'influence')}"
            f"</figure></div>{_comparison(card)}"
            f"<table><tr><th></th><th>influence</th><th>id</th><th>text</th></tr>{rows}</table>")
    return "".join(parts) or None


def _comparison(card: dict) -> str:
    """Influence against its baselines at the same fraction: overlap, and precision on a field."""
    cmp = card.get("comparison")
    if not cmp:
        return ""
    cand = card.get("candidates", {})
    two = (f" Two-stage: gradients for the {cand['documents']:,} documents most similar to the target "
           f"({cand['share']:.0%} of the pool).") if cand.get("share", 1) < 1 else ""
    prec = cmp.get("precision", {})
    head = "<tr><th>selection</th><th>documents</th>" + (f"<th>share whose {esc(cmp['field'])} is the target's"
                                                         "</th>" if prec else "") + "</tr>"
    rows = "".join(f"<tr><td>{esc(n)}</td><td>{cmp['selected'].get(n, cmp['documents']):,}</td>"
                   + (f"<td>{prec[n]:.1%}</td>" if prec else "") + "</tr>"
                   for n in [*cmp["selected"], *(["random"] if prec else [])])
    overlap = "; ".join(f"{esc(k.replace('~', ' and '))} {v:.0%}" for k, v in cmp["overlap"].items())
    return (f"<p>The top {cmp['fraction']:.0%} by influence against the cheapest baselines, embedding cosine to "
            f"the target's mean (target_sim) and to its nearest document (target_sim_nearest).{two} "
            f"Overlap: {overlap}.</p><table>{head}{rows}</table>")
