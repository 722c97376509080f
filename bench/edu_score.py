"""Educational-value scoring speed: textcurate's scorer against a plain transformers loop.

Peer: the shape of FineWeb-Edu's inference script: documents in arrival order, batches
padded to their longest member, fp32, AutoModel + mean pooling + the same head. Both score
the same documents with the same MiniLM and the same head (classifiers/provenance-minilm).
Prints docs/s of each, the ratio, and Spearman between the two score vectors; then the
cascade (n-gram model decides outside the band, head inside) with its speed, the fraction
sent to the head, and its agreement with the exact path.

    .venv/bin/python bench/edu_score.py [--docs 512] [--classifier classifiers/provenance-minilm]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def corpus(n: int) -> list:
    from textcurate.io.readers import FileTreeReader

    reader = FileTreeReader(["@stdlib", "@docs"], include=["*.py", "*.md", "*.rst", "*.txt", "README*", "changelog*",
                                                            "copyright"],
                            exclude=["*/site-packages/*", "*/test/*", "*/tests/*", "*/__pycache__/*"],
                            max_sections_per_file=1)
    docs = []
    for d in reader.run():
        docs.append(d)
        if len(docs) == 4 * n:
            break
    return docs[::4][:n]  # spread over the tree, in a fixed order


def plain_loop(texts: list[str], head, max_tokens: int, batch_size: int = 32) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from textcurate.embed.embedder import resolve_model

    path = resolve_model("minilm")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], truncation=True, max_length=max_tokens, padding="longest",
                      return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            out.append(head(emb).squeeze(-1).numpy())
    return np.concatenate(out)


def padded_tokens(lengths: list[int], batches: list[list[int]]) -> int:
    """Token positions a forward pass computes: each batch is padded to its longest member."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def flops_per_position(config, seq: int) -> float:
    """Matmul FLOPs of one BERT position at padded length ``seq``: the four attention
    projections, the two FFN layers, and the two attention products (scores and mixing)."""
    h, i = config.hidden_size, config.intermediate_size
    return config.num_hidden_layers * 2 * (4 * h * h + 2 * h * i + 2 * seq * h)


def work(lengths: list[int], batches: list[list[int]], config) -> float:
    return sum(len(b) * (s := max(lengths[i] for i in b)) * flops_per_position(config, s) for b in batches)


def gemm_ceiling(config, trials: int = 7) -> float:
    """This CPU's fp32 matmul rate (GFLOP/s) on the model's own layer shapes, at 8,192 rows:
    per shape the best of ``trials`` timings (the clock of a shared machine wanders; the best
    is the rate the hardware can give), then the mean over the shapes weighted by their FLOPs
    in a layer (four h x h projections, two FFN products)."""
    import torch

    h, i = config.hidden_size, config.intermediate_size
    x = {k: torch.randn(8192, k) for k in (h, i)}
    shapes = ((h, h, 4), (h, i, 1), (i, h, 1))  # (in, out, count per layer)
    seconds = 0.0
    for k, n, count in shapes:
        w = torch.randn(k, n)
        x[k] @ w
        best = float("inf")
        for _ in range(trials):
            t0 = time.perf_counter()
            for _ in range(5):
                x[k] @ w
            best = min(best, (time.perf_counter() - t0) / 5)
        seconds += count * best
    return sum(2 * 8192 * k * n * count for k, n, count in shapes) / seconds / 1e9


def main() -> None:
    from datatrove.data import Document

    from textcurate.classify.metrics import spearman
    from textcurate.classify.edu_score_stage import EduScoreParams

    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=512)
    ap.add_argument("--classifier", default="classifiers/provenance-minilm")
    args = ap.parse_args()
    docs = corpus(args.docs)
    texts = [d.text for d in docs]

    exact = EduScoreParams(classifier=args.classifier, mode="exact").make()
    exact.setup(0)
    max_tokens = exact.card["embedder"]["max_tokens"]
    exact._embedder.encode(texts[:8])  # load and warm up, outside the timing (as for the peer)
    t0 = time.perf_counter()
    ours = np.array([r["edu_score"] for r in exact.score([Document(text=t, id=str(i)) for i, t in enumerate(texts)])])
    t_ours = time.perf_counter() - t0

    plain_loop(texts[:8], exact._head, max_tokens)
    t0 = time.perf_counter()
    peer = plain_loop(texts, exact._head, max_tokens)
    t_peer = time.perf_counter() - t0

    casc = EduScoreParams(classifier=args.classifier, mode="cascade").make()
    casc.setup(0)
    casc._embedder.encode(texts[:8])
    t0 = time.perf_counter()
    rows = casc.score([Document(text=t, id=str(i)) for i, t in enumerate(texts)])
    t_casc = time.perf_counter() - t0
    cs = np.array([r["edu_score"] for r in rows])
    to_head = np.mean([r["edu_path"] == "head" for r in rows])

    fast = EduScoreParams(classifier=args.classifier, mode="fasttext").make()
    fast.setup(0)
    fast.score([Document(text=t, id=str(i)) for i, t in enumerate(texts[:8])])
    t0 = time.perf_counter()
    fs = np.array([r["edu_score"] for r in fast.score([Document(text=t, id=str(i)) for i, t in enumerate(texts)])])
    t_fast = time.perf_counter() - t0
    import torch

    threads = torch.get_num_threads()  # the embedder's; fastText's predict runs on one core

    # Where the time goes: the matmul FLOPs each loop computes (padding included) against
    # this CPU's fp32 matmul ceiling, measured now on the model's own layer shapes.
    model = exact._embedder.load()
    config = model[0].auto_model.config
    from textcurate.embed.embedder import CHARS_PER_TOKEN

    budget = max_tokens * CHARS_PER_TOKEN
    lengths = [len(x) for x in model.tokenizer([t[:budget] for t in texts], truncation=True,
                                               max_length=max_tokens)["input_ids"]]
    arrival = [list(range(i, min(i + 32, len(texts)))) for i in range(0, len(texts), 32)]
    order = list(np.argsort(-np.array(lengths), kind="stable"))
    bs = exact._embedder.batch_size
    by_length = [order[i:i + bs] for i in range(0, len(order), bs)]
    peak = gemm_ceiling(config)
    w_peer, w_ours = work(lengths, arrival, config) / 1e9, work(lengths, by_length, config) / 1e9

    n = len(texts)
    print(f"\n{n} documents from the local file tree, MiniLM truncated to {max_tokens} tokens, head {args.classifier}")
    print(f"peer: transformers loop, arrival order, fp32     : {n / t_peer:8.1f} docs/s")
    print(f"textcurate edu_score (exact path)                : {n / t_ours:8.1f} docs/s   "
          f"ratio {t_peer / t_ours:.2f}x   spearman vs peer {spearman(ours, peer):.4f}   "
          f"max |diff| {np.max(np.abs(ours - peer)):.2e}")
    same = np.mean(np.clip(np.round(cs), 0, 5) == np.clip(np.round(ours), 0, 5))
    print(f"textcurate edu_score (cascade, margin {casc._margin})  : {n / t_casc:8.1f} docs/s   "
          f"{t_ours / t_casc:.2f}x the exact path   to head {to_head:.1%}   spearman vs exact "
          f"{spearman(cs, ours):.4f}   same edu_int {same:.1%}")
    print(f"textcurate edu_score (fastText alone, 1 core)     : {n / t_fast:8.1f} docs/s   "
          f"{t_ours / t_fast:.1f}x the exact path on {threads} threads   spearman vs exact {spearman(fs, ours):.4f}   "
          f"same edu_int {np.mean(np.clip(np.round(fs), 0, 5) == np.clip(np.round(ours), 0, 5)):.1%}   "
          f"mean length {np.mean([len(t) for t in texts]):.0f} characters")
    print(f"\nroofline: fp32 matmul ceiling of this CPU on MiniLM's layer shapes {peak:.0f} GFLOP/s")
    print(f"  peer computes {padded_tokens(lengths, arrival):,} token positions ({w_peer:.0f} GFLOP): "
          f"{w_peer / t_peer:.0f} GFLOP/s = {w_peer / t_peer / peak:.0%} of the ceiling")
    print(f"  exact path computes {padded_tokens(lengths, by_length):,} ({w_ours:.0f} GFLOP): "
          f"{w_ours / t_ours:.0f} GFLOP/s = {w_ours / t_ours / peak:.0%} of the ceiling")
    print(f"  best an exact fp32 path can do here: {w_peer / w_ours:.2f}x (less padding) x "
          f"{peak * t_peer / w_peer:.2f}x (peer's distance to the ceiling) = "
          f"{w_peer / w_ours * peak * t_peer / w_peer:.2f}x")


if __name__ == "__main__":
    main()
