"""Influence of every pool document on a target: warm-up, checkpoints, gradients, projection, scores.

1. A model: a small GPT from the kit (on a BPE trained on the pool), or any local causal LM.
2. Warm-up: the kit's training loop on a seeded random ``warmup_fraction`` of the pool;
   ``checkpoints`` snapshots (weights, Adam moments of the chosen parameters, step,
   learning rate) are taken at evenly spaced steps.
3. For each snapshot: per-example gradients of every pool document (LESS: turned into Adam
   update directions) and of every target document, projected by one seeded projector
   (the same matrix for every batch and checkpoint) and stored as float16 shards.
4. Scores: TRAK or LESS (``scores.py``), averaged over the snapshots, written as
   ``influence.parquet`` (id, influence) with a card (method, dimensions, timings).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pydantic import BaseModel, ConfigDict, Field

from textcurate import __version__
from textcurate.io.files import pick_device, write_json_atomic
from textcurate.lm.experiment import WARMUP_SALT, LMSpec, build_model, make_tokenizer
from textcurate.lm.experiment import split_target as _split_target

PROJECT_BYTES = 512 << 20  # gradients held for one projection call


_LM = LMSpec.model_fields  # the model's defaults are the experiment's (one default per parameter)


class InfluenceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str = Field("less", pattern="^(trak|less)$")
    proj_dim: int = Field(2048, ge=8)
    proj_kind: str = Field("rademacher", pattern="^(rademacher|gaussian|sparse)$")
    params: str = Field("all", description="all | last:K | lora")
    context: int = Field(_LM["block_size"].default, ge=8, description="tokens of each document the gradient sees")
    batch_size: int = Field(16, ge=1)
    warmup_fraction: float = Field(0.05, gt=0, le=1)
    warmup_tokens: int = Field(100_000, ge=1000)
    checkpoints: int = Field(4, ge=1)
    lam: float = Field(1e-2, gt=0, description="TRAK ridge, relative to the mean diagonal of Phi^T Phi")
    model: str | None = Field(None, description="a local causal LM (or smollm2) instead of a fresh small GPT")
    n_layer: int = _LM["n_layer"].default
    n_head: int = _LM["n_head"].default
    n_embd: int = _LM["n_embd"].default
    vocab_size: int = _LM["vocab_size"].default
    seed: int = 0
    device: str = "auto"

    def lm_spec(self) -> LMSpec:
        """The experiment's model spec: the GPT's shape, its context, and a local model's tokenizer."""
        return LMSpec(n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd, block_size=self.context,
                      vocab_size=self.vocab_size, tokenizer=self.model)


def split_target(docs: list, expr: str, holdout: float, log=print) -> tuple[list, list]:
    """(pool, target): the experiment's one rule (``lm.experiment.split_target``, ``TARGET_SALT``),
    so an evaluation of the selection scores it on exactly these held-out documents."""
    return _split_target(docs, expr, holdout, log=log)


def compute_influence(pool: list, target: list, spec: InfluenceSpec, out_dir: str, log=print) -> dict:
    from textcurate.influence.grads import PerExampleGrads, document_batches, select_parameters
    from textcurate.influence.project import Projector
    from textcurate.influence.scores import adam_direction, less_scores, trak_scores
    from textcurate.lm.data import tokenize_documents
    from textcurate.lm.train import TrainConfig, train_lm

    if not pool or not target:
        raise ValueError(f"influence needs a pool and a target: got {len(pool)} and {len(target)} documents")
    device = pick_device(spec.device)
    started = time.time()
    os.makedirs(out_dir, exist_ok=True)
    lm = spec.lm_spec()
    tok = make_tokenizer(lm, [d.text for d in pool])
    model = build_model(lm, tok.vocab_size, spec.seed, local=spec.model)
    tok.save(os.path.join(out_dir, "tokenizer"))
    pool_tok = tokenize_documents(tok, [d.text for d in pool], spec.context)
    target_tok = tokenize_documents(tok, [d.text for d in target], spec.context)
    names = select_parameters(model, spec.params)

    # --- warm-up with snapshots ------------------------------------------------------------------------
    rng = np.random.default_rng([spec.seed, WARMUP_SALT])
    warm = rng.permutation(len(pool))[: max(1, int(round(spec.warmup_fraction * len(pool))))]
    snapshots: list[dict] = []

    def on_step(step, total, m, opt, lr):
        every = max(1, total // spec.checkpoints)
        if step % every == 0 or step == total:
            if len(snapshots) and snapshots[-1]["step"] == step or len(snapshots) >= spec.checkpoints:
                return
            named = dict(m.named_parameters())
            state = getattr(opt, "optimizer", opt).state
            mom = [state.get(named[n], {}) for n in names]
            snapshots.append({
                "step": step, "lr": lr, "weights": {k: v.detach().clone() for k, v in m.state_dict().items()},
                "m": torch.cat([s["exp_avg"].reshape(-1) for s in mom]) if all(mom) else None,
                "v": torch.cat([s["exp_avg_sq"].reshape(-1) for s in mom]) if all(mom) else None})

    t0 = time.perf_counter()
    warm_res = train_lm(model, [pool_tok[i] for i in warm], tok.eos_id, spec.context,
                        TrainConfig(budget_tokens=spec.warmup_tokens, batch_size=spec.batch_size, seed=spec.seed,
                                    device=device), on_step=on_step)
    warm_s = time.perf_counter() - t0
    log(f"influence: warm-up on {len(warm):,} documents ({warm_res.tokens:,} tokens, {warm_s:.0f} s), "
        f"{len(snapshots)} checkpoints; gradients of {len(names)} tensors")

    # --- gradients, projection, scores per checkpoint ---------------------------------------------------
    per_ckpt, weights = [], []
    grad_s = proj_s = 0.0
    n_grads = 0
    projector = None
    for c, snap in enumerate(snapshots):
        model.load_state_dict(snap["weights"])
        grads = PerExampleGrads(model, spec.params, device)
        if projector is None:
            projector = Projector(grads.dim, spec.proj_dim, spec.proj_kind, spec.seed)
        feats = {}
        # gradients are projected in groups of about PROJECT_BYTES: a dense matrix too large to keep is
        # generated once per group rather than once per gradient batch
        group = max(spec.batch_size, PROJECT_BYTES // (4 * grads.dim))
        for which, docs in (("pool", pool_tok), ("target", target_tok)):
            rows, pending = [], []

            def flush():
                nonlocal proj_s
                if pending:
                    t2 = time.perf_counter()
                    rows.append(projector.project(torch.cat(pending)).cpu().numpy())
                    proj_s += time.perf_counter() - t2
                    pending.clear()

            for _, x, y in document_batches(docs, tok.eos_id, spec.context, spec.batch_size):
                t1 = time.perf_counter()
                g = grads.batch(x, y)
                if which == "pool" and spec.method == "less" and snap["m"] is not None:
                    g = adam_direction(g, snap["m"].to(g.device), snap["v"].to(g.device), snap["step"])
                grad_s += time.perf_counter() - t1
                n_grads += len(x)
                pending.append(g)
                if sum(len(p) for p in pending) >= group:
                    flush()
            flush()
            feats[which] = np.concatenate(rows)
        _write_features(os.path.join(out_dir, "features", f"ckpt-{c}"), [d.id for d in pool], feats["pool"])
        _write_features(os.path.join(out_dir, "features", f"ckpt-{c}-target"), [d.id for d in target],
                        feats["target"])
        s = (trak_scores(feats["pool"], feats["target"], spec.lam) if spec.method == "trak"
             else less_scores(feats["pool"], feats["target"]))
        per_ckpt.append(s)
        weights.append(snap["lr"] if spec.method == "less" else 1.0)
        log(f"  checkpoint {c} (step {snap['step']}): {len(pool) + len(target):,} gradients of dimension "
            f"{grads.dim:,} -> {spec.proj_dim:,}")
    score = np.average(np.stack(per_ckpt), axis=0, weights=np.asarray(weights))
    pq.write_table(pa.table({"id": [d.id for d in pool], "influence": score.astype(np.float32)}),
                   os.path.join(out_dir, "influence.parquet"))
    order = np.argsort(-score, kind="stable")
    card = {"kind": "influence", "method": spec.method, "spec": spec.model_dump(mode="json"),
            "pool": len(pool), "target": len(target), "grad_dim": int(projector.dim_in),
            "parameters": len(names), "checkpoints": [{"step": s["step"], "lr": s["lr"]} for s in snapshots],
            "warmup": {"documents": int(len(warm)), "tokens": warm_res.tokens, "seconds": round(warm_s, 1)},
            "gradients_per_s": round(n_grads / max(grad_s, 1e-9), 1),
            "projections_per_s": round(n_grads / max(proj_s, 1e-9), 1),
            "top": [{"id": pool[i].id, "influence": float(score[i]), "text": pool[i].text[:300]} for i in order[:5]],
            "bottom": [{"id": pool[i].id, "influence": float(score[i]), "text": pool[i].text[:300]}
                       for i in order[::-1][:5]],
            "seconds": round(time.time() - started, 1), "textcurate": __version__}
    write_json_atomic(os.path.join(out_dir, "card.json"), card)
    card["scores"] = {d.id: float(v) for d, v in zip(pool, score)}
    return card


def _write_features(folder: str, ids: list[str], x: np.ndarray) -> None:
    from textcurate.io.files import vectors_column

    os.makedirs(folder, exist_ok=True)
    pq.write_table(pa.table({"id": ids, "embedding": vectors_column(x.astype(np.float16), pa.float16())}),
                   os.path.join(folder, "00000.parquet"))
