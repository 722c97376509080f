"""Report section of the feature store: what was embedded, with which model, how big the
store is, and how close each document's nearest neighbour is (on a sample). That last
histogram is what one reads before choosing SemDeDup's eps: the mass above 1 - eps is
roughly the fraction of documents that have a near-duplicate."""

from __future__ import annotations

import glob
import os

import numpy as np

from textcurate.report.html import esc, figure, svg, section

SAMPLE = 2000  # documents for the neighbour histogram: an exact 2000 x 2000 product, no index


def _stage_config(record: dict, name: str) -> dict:
    for stage in (record.get("config") or {}).get("stages", []):
        if stage.get("type") == "embed" and stage.get("name", "embed") == name:
            return stage
    return {}


def scan_features(folder: str, sample: int = SAMPLE, seed: int = 0, batch_size: int = 65_536) -> dict:
    """Count, dimension and norm range of a feature store read a batch at a time, and a uniform
    sample of ``sample`` vectors (the smallest of a random key per row): memory is one batch and
    the sample, whatever the store's size. Vectors holding NaN or inf, or all zeros, are left out
    of every figure and counted in ``bad``, the first named in ``bad_first`` (file, row, id)."""
    import pyarrow.parquet as pq

    from textcurate.io.files import bad_vectors, column_vectors

    rng = np.random.default_rng(seed)
    n, dim, lo, hi = 0, 0, np.inf, -np.inf
    keys, kept = np.zeros(0), None
    bad_count, bad_first = 0, None
    for path in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        row = 0
        for b in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=["id", "embedding"]):
            if not b.num_rows:
                continue
            v = column_vectors(b.column(1)).astype(np.float32)
            bad, reasons = bad_vectors(v)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                bad_count += int(bad.sum())
                bad_first = bad_first or {"file": path, "row": row + first + 1, "id": b.column(0)[first].as_py(),
                                          "reason": reasons[first]}
                v = v[~bad]
            row += b.num_rows
            if not len(v):
                continue
            n, dim = n + len(v), v.shape[1]
            norms = np.linalg.norm(v, axis=1)
            lo, hi = min(lo, float(norms.min())), max(hi, float(norms.max()))
            k = np.concatenate([keys, rng.random(len(v))])
            pool = v if kept is None else np.concatenate([kept, v])
            top = np.argsort(k, kind="stable")[:sample]
            keys, kept = k[top], pool[top]
    return {"n": n, "dim": dim, "norm_min": lo, "norm_max": hi, "bad": bad_count, "bad_first": bad_first,
            "sample": kept if kept is not None else np.zeros((0, 0), np.float32)}


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
    return svg(fig)


@section("Embeddings", 35)
def _embeddings(run_dir: str, record: dict) -> str | None:
    parts = []
    for folder in sorted(glob.glob(os.path.join(run_dir, "features", "*"))):
        shards = glob.glob(os.path.join(folder, "*.parquet"))
        if not shards:
            continue
        name = os.path.basename(folder)
        scan = scan_features(folder)
        n = scan["n"]
        if not n:  # every document was dropped before the embedding
            continue
        cfg = _stage_config(record, name)
        size = sum(os.path.getsize(p) for p in shards)
        summary = (f"<p>model <code>{esc(cfg.get('model', 'minilm'))}</code>, truncated to "
                   f"{cfg.get('max_tokens', 256)} tokens; {n:,} vectors of dimension {scan['dim']} "
                   f"in {len(shards)} shard(s), {size / 2**20:.1f} MiB on disk ({size / max(n, 1):,.0f} "
                   f"bytes per document, float16); norms {scan['norm_min']:.3f}-{scan['norm_max']:.3f}</p>")
        if scan["bad"]:
            b = scan["bad_first"]
            summary += (f"<p><b>{scan['bad']:,} vectors left out</b> of these figures: {esc(b['reason'])} (first: "
                        f"{esc(b['file'])} row {b['row']:,}, id <code>{esc(b['id'])}</code>)</p>")
        if n < 2:
            parts.append(f"<h3>{esc(name)}</h3>{summary}")
            continue
        vecs = scan["sample"]
        nn = nearest_neighbour_cosines(vecs)
        table = "".join(f"<tr><td>&ge; {t:.2f} (eps {1 - t:.2f})</td><td>{(nn >= t).mean():.1%}</td></tr>"
                        for t in (0.99, 0.95, 0.9, 0.85, 0.8, 0.75))
        parts.append(f"<h3>{esc(name)}</h3>{summary}<div class=grid><figure>{_nn_plot(nn, name)}</figure>"
                     f"<table><tr><th>nearest neighbour cosine</th><th>sampled documents</th></tr>{table}</table>"
                     f"</div>")
    return "".join(parts) or None
