"""Report sections of the cluster family: k-means clusters (sizes, a 2-D map) and SemDeDup
(the eps table and example duplicate pairs). Both read the run's artifacts/*/card.json."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq

from textcurate.io.attributes import attribute_columns, iter_attribute_batches, list_attribute_steps
from textcurate.report.html import (artifact_cards, documents_read, esc, figure, preview, reads_documents, section,
                                    svg)


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


def _sizes(run_dir: str, name: str, k: int) -> np.ndarray | None:
    """Documents per cluster of the k-means step ``name``, from its attributes (streamed)."""
    if name not in list_attribute_steps(run_dir) or "cluster_id" not in attribute_columns(run_dir, name):
        return None
    sizes = np.zeros(k, dtype=np.int64)
    for batch in iter_attribute_batches(run_dir, name, ["cluster_id"]):
        ids = np.asarray(batch.column(0).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        sizes += np.bincount(ids[ids >= 0], minlength=k)[:k]
    return sizes


@section("Clusters", 50)
def _clusters(run_dir: str, record: dict) -> str | None:
    parts = []
    seen = documents_read(_cluster_reader)
    for name, folder, card in artifact_cards(run_dir, "kmeans"):
        sizes = seen.sizes[name] if seen is not None and name in seen.sizes else _sizes(run_dir, name, card["k"])
        summary = (f"<p>k = {card['k']}, fitted on {card['sample_size']:,} documents ({card['backend']} on "
                   f"{card['device']}, {card['niter']} iterations, seed {card['seed']}, {card['fit_seconds']} s); "
                   f"inertia {card['inertia']:.4g}, mean cosine to the centroid {card['mean_cosine']:.3f}")
        if sizes is not None:
            summary += (f"; assigned {int(sizes.sum()):,} documents: largest cluster {int(sizes.max()):,}, "
                        f"median {int(np.median(sizes)):,}, empty {int((sizes == 0).sum())}")
        plots = _sizes_plot(sizes, name) if sizes is not None else ""
        if os.path.exists(os.path.join(folder, "map.parquet")):
            plots += _map_plot(os.path.join(folder, "map.parquet"), name)
        examples = _largest_clusters(seen, sizes) if sizes is not None and seen is not None else ""
        parts.append(f"<h3>{esc(name)}</h3>{summary}.</p><div class=grid>{plots}</div>{examples}")
    return "".join(parts) or None


LARGEST = 5  # clusters shown with examples
PER_CLUSTER = 3


def _largest(sizes: np.ndarray) -> list[int]:
    return [int(c) for c in np.argsort(-sizes, kind="stable")[:LARGEST] if sizes[c] > 0]


class _ClusterExamples:
    """A few kept documents of each of the largest clusters (smallest id-hash first, so the same run
    shows the same ones), filled by the report's one pass over the kept documents."""

    def __init__(self, sizes: dict[str, np.ndarray]):
        self.sizes = sizes
        self.heaps: dict[int, list] = {c: [] for s in sizes.values() for c in _largest(s)}

    def add(self, doc) -> None:
        import heapq

        from textcurate.io.records import stable_hash
        from textcurate.io.sampling import REPORT_SAMPLE_SALT

        c = doc.metadata.get("cluster_id")
        if not (isinstance(c, int) and c in self.heaps):
            return
        key, heap = -stable_hash(doc.id, REPORT_SAMPLE_SALT), self.heaps[c]
        if len(heap) < PER_CLUSTER:
            heapq.heappush(heap, (key, doc.id, preview(doc.text)))  # a preview, not the whole text, is held
        elif key > heap[0][0]:
            heapq.heapreplace(heap, (key, doc.id, preview(doc.text)))


@reads_documents
def _cluster_reader(run_dir: str, record: dict) -> _ClusterExamples | None:
    sizes = {name: s for name, _, card in artifact_cards(run_dir, "kmeans")
             if (s := _sizes(run_dir, name, card["k"])) is not None and s.sum()}
    return _ClusterExamples(sizes) if sizes else None


def _largest_clusters(seen: _ClusterExamples, sizes: np.ndarray) -> str:
    """The largest clusters, each with a few of the documents the run kept from it: what a cluster
    holds, read before pruning it."""
    largest = _largest(sizes)
    if not largest:
        return ""
    rows = "".join(f"<tr><td>{c}</td><td>{int(sizes[c]):,}</td><td>{esc(i)}</td><td class=text>{esc(t)}</td>"
                   "</tr>" for c in largest for _, i, t in sorted(seen.heaps[c], reverse=True))
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
