"""Report sections of the cluster family: k-means clusters (sizes, a 2-D map) and SemDeDup
(the eps table and example duplicate pairs). Both read the run's artifacts/*/card.json."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq

from textcurate.io.attributes import attribute_columns, iter_attribute_batches, list_attribute_steps
from textcurate.report.html import artifact_cards, esc, figure, kept_documents, preview, section, svg


def _sizes_plot(sizes: np.ndarray, name: str) -> str:
    fig, ax = figure(5.0, 2.6)
    order = np.sort(sizes)[::-1]
    ax.bar(np.arange(len(order)), order, width=1.0, color="#4a7fb5")
    ax.set_title(f"{name}: documents per cluster, largest first", fontsize=9)
    ax.set_xlabel("cluster rank", fontsize=8)
    ax.tick_params(labelsize=7)
    return svg(fig)


def _map_plot(path: str, name: str) -> str:
    t = pq.read_table(path)
    x, y, c = (np.asarray(t.column(k).to_numpy()) for k in ("x", "y", "cluster_id"))
    fig, ax = figure(4.6, 4.0)
    ax.scatter(x, y, c=c % 20, cmap="tab20", s=4, linewidths=0)
    ax.set_title(f"{name}: PCA of {len(x):,} sampled embeddings, coloured by cluster", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return svg(fig)


@section("Clusters", 50)
def _clusters(run_dir: str, record: dict) -> str | None:
    parts = []
    for name, folder, card in artifact_cards(run_dir, "kmeans"):
        sizes = None
        if name in list_attribute_steps(run_dir) and "cluster_id" in attribute_columns(run_dir, name):
            sizes = np.zeros(card["k"], dtype=np.int64)
            for batch in iter_attribute_batches(run_dir, name, ["cluster_id"]):  # streamed
                ids = np.asarray(batch.column(0).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
                ids = ids[ids >= 0]
                sizes += np.bincount(ids, minlength=card["k"])[:card["k"]]
        summary = (f"<p>k = {card['k']}, fitted on {card['sample_size']:,} documents ({card['backend']} on "
                   f"{card['device']}, {card['niter']} iterations, seed {card['seed']}, {card['fit_seconds']} s); "
                   f"inertia {card['inertia']:.4g}, mean cosine to the centroid {card['mean_cosine']:.3f}")
        if sizes is not None:
            summary += (f"; assigned {int(sizes.sum()):,} documents: largest cluster {int(sizes.max()):,}, "
                        f"median {int(np.median(sizes)):,}, empty {int((sizes == 0).sum())}")
        plots = _sizes_plot(sizes, name) if sizes is not None else ""
        if os.path.exists(os.path.join(folder, "map.parquet")):
            plots += _map_plot(os.path.join(folder, "map.parquet"), name)
        examples = _largest_clusters(run_dir, sizes) if sizes is not None else ""
        parts.append(f"<h3>{esc(name)}</h3>{summary}.</p><div class=grid>{plots}</div>{examples}")
    return "".join(parts) or None


LARGEST = 5  # clusters shown with examples
PER_CLUSTER = 3


def _largest_clusters(run_dir: str, sizes: np.ndarray) -> str:
    """The largest clusters, each with a few of the documents the run kept from it (smallest id-hash
    first, so the same run shows the same ones): what a cluster holds, read before pruning it."""
    import heapq

    from textcurate.io.records import stable_hash
    from textcurate.io.sampling import REPORT_SAMPLE_SALT

    if not os.path.isdir(os.path.join(run_dir, "documents")) or not sizes.sum():
        return ""
    largest = [int(c) for c in np.argsort(-sizes, kind="stable")[:LARGEST] if sizes[c] > 0]
    heaps: dict[int, list] = {c: [] for c in largest}
    for doc in kept_documents(run_dir):
        c = doc.metadata.get("cluster_id")
        if not (isinstance(c, int) and c in heaps):
            continue
        key, heap = -stable_hash(doc.id, REPORT_SAMPLE_SALT), heaps[c]
        if len(heap) < PER_CLUSTER:
            heapq.heappush(heap, (key, doc.id, preview(doc.text)))  # a preview, not the whole text, is held
        elif key > heap[0][0]:
            heapq.heapreplace(heap, (key, doc.id, preview(doc.text)))
    rows = "".join(f"<tr><td>{c}</td><td>{int(sizes[c]):,}</td><td>{esc(i)}</td><td class=text>{esc(t)}</td>"
                   "</tr>" for c in largest for _, i, t in sorted(heaps[c], reverse=True))
    return ("<details open><summary>The largest clusters, with documents the run kept from each</summary>"
            "<table><tr><th>cluster</th><th>size</th><th>id</th><th>text</th></tr>" + rows + "</table></details>")


@section("Semantic duplicates", 55)
def _semdedup(run_dir: str, record: dict) -> str | None:
    parts = []
    for name, _, card in artifact_cards(run_dir, "semdedup"):
        rows = "".join(
            f"<tr><td>{'<b>' if r['eps'] == card['eps'] else ''}{r['eps']:g}</td><td>{1 - r['eps']:.3f}</td>"
            f"<td>{r['removed']:,}</td><td>{r['fraction_removed']:.2%}</td></tr>" for r in card["eps_table"])
        pairs = "".join(
            f"<tr><td>{p['similarity']:.3f}</td><td>{esc(p['kept_id'])}<br><small>{esc(p['kept'][:200])}</small>"
            f"</td><td>{esc(p['dup_id'])}<br><small>{esc(p['dup'][:200])}</small></td></tr>"
            for p in card.get("examples", []))
        parts.append(
            f"<h3>{esc(name)}</h3><p>eps {card['eps']:g} (duplicate when cosine to a kept document &gt; "
            f"{card['threshold']:.3f}), keep {esc(card['keep'])}: {card['duplicates']:,} of {card['documents']:,} "
            f"documents removed ({card['fraction_removed']:.2%}); {card['clusters']:,} clusters, the largest "
            f"{card['largest_cluster']:,}.</p>"
            "<table><tr><th>eps</th><th>cosine &gt;</th><th>removed</th><th>fraction</th></tr>" + rows + "</table>"
            + (f"<h4>Example pairs</h4><table><tr><th>cosine</th><th>kept</th><th>duplicate</th></tr>{pairs}</table>"
               if pairs else ""))
    return "".join(parts) or None
