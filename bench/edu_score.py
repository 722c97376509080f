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


def main() -> None:
    from datatrove.data import Document

    from textcurate.classify.metrics import spearman
    from textcurate.classify.scorer import EduScore

    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=512)
    ap.add_argument("--classifier", default="classifiers/provenance-minilm")
    args = ap.parse_args()
    docs = corpus(args.docs)
    texts = [d.text for d in docs]

    exact = EduScore(args.classifier)
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

    casc = EduScore(args.classifier, cascade=True)
    casc.setup(0)
    casc._embedder.encode(texts[:8])
    t0 = time.perf_counter()
    rows = casc.score([Document(text=t, id=str(i)) for i, t in enumerate(texts)])
    t_casc = time.perf_counter() - t0
    cs = np.array([r["edu_score"] for r in rows])
    to_head = np.mean([r["edu_path"] == "head" for r in rows])

    n = len(texts)
    print(f"\n{n} documents from the local file tree, MiniLM truncated to {max_tokens} tokens, head {args.classifier}")
    print(f"peer: transformers loop, arrival order, fp32     : {n / t_peer:8.1f} docs/s")
    print(f"textcurate edu_score (exact path)                : {n / t_ours:8.1f} docs/s   "
          f"ratio {t_peer / t_ours:.2f}x   spearman vs peer {spearman(ours, peer):.4f}   "
          f"max |diff| {np.max(np.abs(ours - peer)):.2e}")
    print(f"textcurate edu_score (cascade, band 1.5-3.5)     : {n / t_casc:8.1f} docs/s   "
          f"ratio {t_peer / t_casc:.2f}x   to head {to_head:.1%}   spearman vs exact {spearman(cs, ours):.4f}   "
          f"same edu_int {np.mean(np.clip(np.round(cs), 0, 5) == np.clip(np.round(ours), 0, 5)):.1%}")


if __name__ == "__main__":
    main()
