"""How varied the pages are: distinct n-grams, distinct openings, mean pairwise embedding cosine,
and the share of pages per topic, audience and style."""

from __future__ import annotations

from collections import Counter

import numpy as np

from textcurate.synth.stage import normalise_words


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct word n-grams over all n-grams of all texts (Li et al. 2016): 1.0 when none repeats."""
    seen, total = set(), 0
    for t in texts:
        w = normalise_words(t)
        grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def diversity(pages: list[dict], embedder: str | None = "minilm", sample: int = 500, seed: int = 0) -> dict:
    """``pages``: {text, topic, audience, style}. Embedding cosine on a seeded sample of ``sample`` pages."""
    texts = [p["text"] for p in pages]
    out: dict = {"pages": len(pages)}
    if not pages:
        return out
    out.update({f"distinct_{n}": round(distinct_n(texts, n), 4) for n in (1, 2, 3)})
    openings = [" ".join(normalise_words(t)[:4]) for t in texts]
    out["distinct_openings"] = round(len(set(openings)) / len(openings), 4)
    out["most_common_opening"] = Counter(openings).most_common(1)[0] if openings else None
    for key in ("topic", "audience", "style"):
        counts = Counter(str(p.get(key)) for p in pages)
        out[f"share_by_{key}"] = {k: round(v / len(pages), 4) for k, v in counts.most_common()}
    if embedder and len(pages) >= 2:
        from textcurate.embed.embedder import Embedder

        rng = np.random.default_rng(seed)
        idx = rng.choice(len(texts), min(sample, len(texts)), replace=False)
        x = Embedder(embedder).encode([texts[i] for i in idx])
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sims = x @ x.T
        iu = np.triu_indices(len(x), 1)
        out["mean_pairwise_cosine"] = round(float(sims[iu].mean()), 4)
        out["embedder"] = embedder
    return out
