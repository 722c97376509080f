"""Report section of the feature store: what was embedded, with which model, how big the
store is, and how close each document's nearest neighbour is (on a sample). That last
histogram is what one reads before choosing SemDeDup's eps: the mass above 1 - eps is
roughly the fraction of documents that have a near-duplicate."""

from __future__ import annotations

import glob
import os

import numpy as np

from textcurate.embed.step import read_features
from textcurate.report.html import _esc, figure, _svg, section

SAMPLE = 2000  # documents for the neighbour histogram: an exact 2000 x 2000 product, no index


def _stage_config(record: dict, name: str) -> dict:
    for stage in (record.get("config") or {}).get("stages", []):
        if stage.get("type") == "embed" and stage.get("name", "embed") == name:
            return stage
    return {}


def nearest_neighbour_cosines(vecs: np.ndarray, sample: int = SAMPLE, seed: int = 0) -> np.ndarray:
    """Cosine of each sampled document to its nearest other sampled document."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(vecs), size=min(sample, len(vecs)), replace=False)
    v = vecs[idx] / np.maximum(np.linalg.norm(vecs[idx], axis=1, keepdims=True), 1e-12)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    return sims.max(axis=1)


def _nn_plot(nn: np.ndarray, name: str) -> str:
    fig, ax = figure(5.0, 2.6)
    ax.hist(nn, bins=50, range=(min(0.0, float(nn.min())), 1.0), color="#4a7fb5")
    ax.set_title(f"{name}: cosine to the nearest neighbour ({len(nn):,} sampled documents)", fontsize=9)
    ax.set_xlabel("cosine", fontsize=8)
    ax.tick_params(labelsize=7)
    return _svg(fig)


@section("Embeddings", 35)
def _embeddings(run_dir: str, record: dict) -> str | None:
    parts = []
    for folder in sorted(glob.glob(os.path.join(run_dir, "features", "*"))):
        shards = glob.glob(os.path.join(folder, "*.parquet"))
        if not shards:
            continue
        name = os.path.basename(folder)
        ids, vecs = read_features(folder)
        if not len(ids):  # every document was dropped before the embedding
            continue
        cfg = _stage_config(record, name)
        size = sum(os.path.getsize(p) for p in shards)
        norms = np.linalg.norm(vecs, axis=1)
        summary = (f"<p>model <code>{_esc(cfg.get('model', 'minilm'))}</code>, truncated to "
                   f"{cfg.get('max_tokens', 256)} tokens; {len(ids):,} vectors of dimension {vecs.shape[1]} "
                   f"in {len(shards)} shard(s), {size / 2**20:.1f} MiB on disk ({size / max(len(ids), 1):,.0f} "
                   f"bytes per document, float16); norms {norms.min():.3f}-{norms.max():.3f}</p>")
        if len(ids) < 2:
            parts.append(f"<h3>{_esc(name)}</h3>{summary}")
            continue
        nn = nearest_neighbour_cosines(vecs)
        table = "".join(f"<tr><td>&ge; {t:.2f} (eps {1 - t:.2f})</td><td>{(nn >= t).mean():.1%}</td></tr>"
                        for t in (0.99, 0.95, 0.9, 0.85, 0.8, 0.75))
        parts.append(f"<h3>{_esc(name)}</h3>{summary}<div class=grid><figure>{_nn_plot(nn, name)}</figure>"
                     f"<table><tr><th>nearest neighbour cosine</th><th>sampled documents</th></tr>{table}</table>"
                     f"</div>")
    return "".join(parts) or None
