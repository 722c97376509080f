"""Token streams for training and per-document windows for held-out loss.

Training: each epoch shuffles the documents with a seed derived from (seed, epoch),
joins them with the end-of-text id and cuts blocks of ``block_size + 1`` tokens; batches
are drawn until the token budget is spent, so every run of an evaluation sees the same
number of tokens whatever the size of its set (a small set is repeated for more epochs).
Held-out: every document is scored on its own, preceded by end-of-text, in windows of at
most ``block_size`` predicted tokens (no context crosses documents).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch


def tokenize_documents(tokenizer, texts: list[str], max_tokens: int | None = None, batch: int = 512
                       ) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for start in range(0, len(texts), batch):
        for ids in tokenizer.encode_batch(texts[start:start + batch]):
            out.append(np.asarray(ids[:max_tokens] if max_tokens else ids, dtype=np.int32))
    return out


def training_batches(docs: list[np.ndarray], eos_id: int, block_size: int, batch_size: int, budget_tokens: int,
                     seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """(inputs, targets, epoch position) until ``budget_tokens`` training tokens were produced."""
    total = sum(len(d) + 1 for d in docs)
    if total < block_size + 1:
        raise ValueError(f"{total} tokens cannot fill one block of {block_size + 1}")
    produced, epoch, consumed = 0, 0, 0
    rows: list[np.ndarray] = []
    while True:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(docs))
        stream = np.concatenate([np.concatenate([[eos_id], docs[i]]) for i in order]).astype(np.int64)
        for start in range(0, len(stream) - block_size, block_size):
            rows.append(stream[start:start + block_size + 1])
            consumed += block_size
            if len(rows) == batch_size:
                chunk = torch.from_numpy(np.stack(rows))
                rows = []
                produced += batch_size * block_size
                yield chunk[:, :-1], chunk[:, 1:], consumed / total
                if produced >= budget_tokens:
                    return
        epoch += 1


def pad_batch(pairs: list[tuple[np.ndarray, np.ndarray]], eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of equal length: inputs right-padded with end-of-text, targets with
    -100 (ignored by the loss). The one padding helper of the kit (held-out loss, gradients)."""
    t = max(1, max(len(y) for _, y in pairs))
    x = torch.full((len(pairs), t), eos_id, dtype=torch.long)
    y = torch.full((len(pairs), t), -100, dtype=torch.long)
    for r, (xi, yi) in enumerate(pairs):
        x[r, : len(xi)] = torch.as_tensor(xi, dtype=torch.long)
        y[r, : len(yi)] = torch.as_tensor(yi, dtype=torch.long)
    return x, y


def eval_windows(docs: list[np.ndarray], eos_id: int, block_size: int
                 ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(document index, inputs, targets) windows covering every token of every document once."""
    for i, d in enumerate(docs):
        seq = np.concatenate([[eos_id], d]).astype(np.int64)
        for start in range(0, len(seq) - 1, block_size):
            x = seq[start:start + block_size]
            y = seq[start + 1:start + block_size + 1]
            yield i, x[: len(y)], y
