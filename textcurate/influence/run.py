"""Influence of every pool document on a target: warm-up, checkpoints, gradients, projection, scores.

1. A model: by default the packaged SmolLM2-135M with rank-8 LoRA adapters on its blocks' linear
   layers (``params: lora``), gradients for the 30 % of the pool most similar to the target
   (``candidates: 0.3``), two checkpoints: the configuration that beat the embedding-similarity
   baseline on the README's held-out-target pool; or ``model: gpt``, a small GPT from the kit
   on a BPE trained on the pool; or any local causal LM.
2. Warm-up: the kit's training loop on a seeded random ``warmup_fraction`` of the pool;
   ``checkpoints`` snapshots (weights, Adam moments of the chosen parameters, step,
   learning rate) are taken at evenly spaced steps.
3. For each snapshot: per-example gradients of every pool document (LESS: turned into Adam
   update directions) and of every target document, projected by one seeded projector
   (the same matrix for every batch and checkpoint) and stored as float16 shards.
4. Scores: TRAK or LESS (``scores.py``), averaged over the snapshots, written as
   ``influence.parquet`` (id, influence, target_sim, target_sim_nearest) with a card (method,
   dimensions, timings, and the comparison with the baselines).

Every run carries its cheapest baselines: the cosine of each pool document's embedding to the
target's mean embedding (``target_sim``) and to its nearest target document
(``target_sim_nearest``). The card compares the three selections at ``compare_fraction`` (their
overlap, and, with ``compare_field``, the share of each selection whose field, a source or a
domain, is one of the target's). ``candidates`` < 1 makes it two-stage: only that share of the
pool most similar to the target gets gradients, influence re-ranks inside it, and the other
documents' influence is NaN (a selection by influence never takes them).
"""

from __future__ import annotations

import json
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
    proj_kind: str = Field("sparse", pattern="^(rademacher|gaussian|sparse)$",
                           description="sparse: a count sketch (a dense matrix is regenerated per group on a CPU)")
    params: str = Field("lora", description="all | last:K | lora (adapters on the blocks' linear layers; the "
                                            "warm-up trains only them)")
    lora_r: int = Field(8, ge=1, description="with params: lora, the adapters' rank")
    context: int = Field(_LM["block_size"].default, ge=8, description="tokens of each document the gradient sees")
    batch_size: int = Field(16, ge=1)
    warmup_fraction: float = Field(0.05, gt=0, le=1)
    warmup_tokens: int = Field(20_000, ge=1000)
    checkpoints: int = Field(2, ge=1)
    lam: float = Field(1e-2, gt=0, description="TRAK ridge, relative to the mean diagonal of Phi^T Phi")
    normalize: bool | None = Field(None, description="unit-normalise every projected gradient before scoring "
                                                     "(default: LESS yes, TRAK no)")
    model: str = Field("smollm2", description="smollm2 (the packaged SmolLM2-135M), a local causal LM's path, or "
                                              "gpt: a fresh small GPT of n_layer/n_head/n_embd on a BPE of the pool")
    n_layer: int = _LM["n_layer"].default
    n_head: int = _LM["n_head"].default
    n_embd: int = _LM["n_embd"].default
    vocab_size: int = _LM["vocab_size"].default
    seed: int = 0
    device: str = "auto"
    precision: str = Field("auto", pattern="^(auto|fp32|bf16)$",
                           description="gradients under bf16 autocast (linear-layer parameters: lora, or last:K "
                                       "of a model whose blocks hold only linear weights); auto: bf16 for a "
                                       "pretrained --model where the device computes bf16 (CUDA, AMX/AVX512-BF16 "
                                       "CPUs), else fp32")
    embedder: str = Field("minilm", description="the embedder of the similarity baselines and of the candidates")
    candidates: float = Field(0.3, gt=0, le=1, description="two-stage: gradients only for this share of the pool "
                                                          "most similar to the target's mean embedding (1: all)")
    compare_fraction: float = Field(0.1, gt=0, le=1, description="the top share at which influence and the "
                                                                 "similarity baselines are compared in the card")
    compare_field: str | None = Field(None, description="a metadata field (a source, a domain): the card gives each "
                                                        "selection's share of documents whose value is the target's")

    def lm_spec(self) -> LMSpec:
        """The experiment's model spec: the GPT's shape, its context, and a local model's tokenizer."""
        return LMSpec(n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd, block_size=self.context,
                      vocab_size=self.vocab_size, tokenizer=self.local_model)

    @property
    def local_model(self) -> str | None:
        """The pretrained model to load, or None for a fresh small GPT (``model: gpt``)."""
        return None if self.model in ("gpt", "", None) else self.model


def split_target(docs: list, expr: str, holdout: float, log=print) -> tuple[list, list]:
    """(pool, target): the experiment's one rule (``lm.experiment.split_target``, ``TARGET_SALT``),
    so an evaluation of the selection scores it on exactly these held-out documents."""
    return _split_target(docs, expr, holdout, log=log)


def compute_influence(pool: list, target: list, spec: InfluenceSpec, out_dir: str, log=print) -> dict:
    from textcurate.influence.grads import PerExampleGrads, document_batches, select_parameters
    from textcurate.influence.project import Projector
    from textcurate.influence.scores import adam_direction, checkpoint_scores
    from textcurate.lm.data import tokenize_documents
    from textcurate.lm.train import TrainConfig, train_lm

    if not pool or not target:
        raise ValueError(f"influence needs a pool and a target: got {len(pool)} and {len(target)} documents")
    device = pick_device(spec.device)
    started = time.time()
    os.makedirs(out_dir, exist_ok=True)
    lm = spec.lm_spec()
    tok = make_tokenizer(lm, [d.text for d in pool])
    model = build_model(lm, tok.vocab_size, spec.seed, local=spec.local_model)
    if spec.params == "lora":
        from textcurate.influence.grads import add_lora

        model = add_lora(model, r=spec.lora_r, alpha=2 * spec.lora_r, seed=spec.seed)
    tok.save(os.path.join(out_dir, "tokenizer"))
    # --- the baselines (and, two-stage, the candidates) -------------------------------------------------
    t0 = time.perf_counter()
    sim_mean, sim_nearest = similarity_baselines(pool, target, spec.embedder)
    sim_s = time.perf_counter() - t0
    n_cand = len(pool) if spec.candidates >= 1 else max(1, int(np.ceil(spec.candidates * len(pool))))
    cand = np.sort(np.argsort(-sim_mean, kind="stable")[:n_cand])  # pool indices that get gradients
    log(f"influence: embedding similarity of {len(pool):,} pool documents to {len(target):,} target documents "
        f"({spec.embedder}, {sim_s:.0f} s)" + (f"; gradients for the {n_cand:,} most similar ({spec.candidates:.0%})"
                                                if n_cand < len(pool) else ""))
    pool_tok = tokenize_documents(tok, [pool[i].text for i in cand], spec.context)
    target_tok = tokenize_documents(tok, [d.text for d in target], spec.context)
    names = select_parameters(model, spec.params)

    # --- warm-up with snapshots ------------------------------------------------------------------------
    rng = np.random.default_rng([spec.seed, WARMUP_SALT])
    warm = rng.permutation(len(pool))[: max(1, int(round(spec.warmup_fraction * len(pool))))]
    snapshots: list[dict] = []

    ticker = Ticker(log)

    def on_step(step, total, m, opt, lr):
        ticker(f"influence: warm-up step {step:,}/{total:,}", step, total, "steps")
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
    ticker.start()
    warm_res = train_lm(model, tokenize_documents(tok, [pool[i].text for i in warm], spec.context), tok.eos_id,
                        spec.context,
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
        grads = PerExampleGrads(model, spec.params, device, dtype=grad_dtype(spec, device))
        if projector is None:
            projector = Projector(grads.dim, spec.proj_dim, spec.proj_kind, spec.seed)
        feats = {}
        # gradients are projected in groups of about PROJECT_BYTES: a dense matrix too large to keep is
        # generated once per group rather than once per gradient batch
        group = max(spec.batch_size, PROJECT_BYTES // (4 * grads.dim))
        total, done = len(pool_tok) + len(target_tok), 0
        ticker.start()
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
                done += len(x)
                ticker(f"influence: checkpoint {c + 1}/{len(snapshots)}, gradients {done:,}/{total:,}", done, total,
                       "gradients")
                pending.append(g)
                if sum(len(p) for p in pending) >= group:
                    flush()
            flush()
            feats[which] = np.concatenate(rows)
        _write_features(os.path.join(out_dir, "features", f"ckpt-{c}"), [pool[i].id for i in cand], feats["pool"])
        _write_features(os.path.join(out_dir, "features", f"ckpt-{c}-target"), [d.id for d in target],
                        feats["target"])
        per_ckpt.append(checkpoint_scores(spec.method, feats["pool"], feats["target"], spec.lam, spec.normalize))
        weights.append(snap["lr"] if spec.method == "less" else 1.0)
        log(f"  checkpoint {c} (step {snap['step']}): {len(pool_tok) + len(target):,} gradients of dimension "
            f"{grads.dim:,} -> {spec.proj_dim:,}")
    score = np.full(len(pool), np.nan)
    score[cand] = np.average(np.stack(per_ckpt), axis=0, weights=np.asarray(weights))
    pq.write_table(pa.table({"id": [d.id for d in pool], "influence": score.astype(np.float32),
                             "target_sim": sim_mean.astype(np.float32),
                             "target_sim_nearest": sim_nearest.astype(np.float32)}),
                   os.path.join(out_dir, "influence.parquet"))
    ranked = np.where(np.isnan(score), -np.inf, score)
    order = np.argsort(-ranked, kind="stable")[:len(cand)]
    card = {"kind": "influence", "method": spec.method, "spec": spec.model_dump(mode="json"),
            "pool": len(pool), "target": len(target), "grad_dim": int(projector.dim_in),
            "parameters": len(names), "checkpoints": [{"step": s["step"], "lr": s["lr"]} for s in snapshots],
            "warmup": {"documents": int(len(warm)), "tokens": warm_res.tokens, "seconds": round(warm_s, 1)},
            "candidates": {"share": spec.candidates, "documents": int(len(cand))},
            "gradients": n_grads, "gradient_method": grads.method,
            "gradient_dtype": "bf16" if grads.dtype is not None else "fp32", "similarity_seconds": round(sim_s, 1),
            "comparison": compare_selections(pool, target, {"influence": score, "target_sim": sim_mean,
                                                            "target_sim_nearest": sim_nearest},
                                             spec.compare_fraction, spec.compare_field),
            "gradients_per_s": round(n_grads / max(grad_s, 1e-9), 1),
            "projections_per_s": round(n_grads / max(proj_s, 1e-9), 1),
            "top": [{"id": pool[i].id, "influence": float(score[i]), "text": pool[i].text[:300]} for i in order[:5]],
            "bottom": [{"id": pool[i].id, "influence": float(score[i]), "text": pool[i].text[:300]}
                       for i in order[::-1][:5]],
            "seconds": round(time.time() - started, 1), "textcurate": __version__}
    write_json_atomic(os.path.join(out_dir, "card.json"), card)
    card["scores"] = {d.id: float(v) for d, v in zip(pool, score)}
    return card


def grad_dtype(spec: InfluenceSpec, device: str):
    """torch.bfloat16 or None (float32): see ``InfluenceSpec.precision``."""
    from textcurate.io.files import cpu_has_bf16

    if spec.precision == "auto":
        return torch.bfloat16 if spec.local_model and (device == "cuda" or cpu_has_bf16()) else None
    return torch.bfloat16 if spec.precision == "bf16" else None


def rescore(out_dir: str, normalize: bool | None = None, checkpoints: list[int] | None = None) -> np.ndarray:
    """The scores of a finished run again from its stored projected features, with another
    normalisation or a subset of its checkpoints (indices into ``card.json``'s), without a
    gradient: aligned with ``influence.parquet``'s rows, NaN outside the candidates."""
    from textcurate.influence.scores import checkpoint_scores
    from textcurate.io.files import column_vectors

    with open(os.path.join(out_dir, "card.json")) as fh:
        card = json.load(fh)
    spec = InfluenceSpec(**card["spec"])
    ids = pq.read_table(os.path.join(out_dir, "influence.parquet"), columns=["id"]).column("id").to_pylist()
    use = list(range(len(card["checkpoints"]))) if checkpoints is None else list(checkpoints)
    per_ckpt, weights, cand = [], [], None
    for c in use:
        pool = pq.read_table(os.path.join(out_dir, "features", f"ckpt-{c}", "00000.parquet"))
        target = pq.read_table(os.path.join(out_dir, "features", f"ckpt-{c}-target", "00000.parquet"))
        cand = pool.column("id").to_pylist()
        per_ckpt.append(checkpoint_scores(spec.method, column_vectors(pool.column("embedding")),
                                          column_vectors(target.column("embedding")), spec.lam, normalize))
        weights.append(card["checkpoints"][c]["lr"] if spec.method == "less" else 1.0)
    row = {i: n for n, i in enumerate(ids)}
    score = np.full(len(ids), np.nan)
    score[[row[i] for i in cand]] = np.average(np.stack(per_ckpt), axis=0, weights=np.asarray(weights))
    return score


class Ticker:
    """A progress line at most every ``every`` seconds: done/total, rate, ETA (a long gradient pass
    otherwise prints nothing for minutes)."""

    def __init__(self, log, every: float = 15.0):
        self.log, self.every = log, every
        self.start()

    def start(self) -> None:
        self.t0 = self.last = time.perf_counter()

    def __call__(self, what: str, done: int, total: int, unit: str) -> None:
        now = time.perf_counter()
        if now - self.last < self.every or done >= total:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        self.log(f"{what} ({rate:,.1f} {unit}/s, ETA {max(0.0, (total - done) / max(rate, 1e-9)):,.0f} s)")


def similarity_baselines(pool: list, target: list, embedder: str) -> tuple[np.ndarray, np.ndarray]:
    """(cosine of each pool document to the target's mean embedding, to its nearest target document)."""
    from textcurate.embed.embedder import Embedder

    emb = Embedder(embedder)
    p = emb.encode([d.text for d in pool])
    t = emb.encode([d.text for d in target])
    p /= np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    centre = t.mean(axis=0)
    mean = p @ (centre / max(float(np.linalg.norm(centre)), 1e-12))
    nearest = np.concatenate([(p[i:i + 4096] @ t.T).max(axis=1) for i in range(0, len(p), 4096)]) if len(p) \
        else np.zeros(0)
    return mean, nearest


def compare_selections(pool: list, target: list, scores: dict[str, np.ndarray], fraction: float,
                       field: str | None) -> dict:
    """The top ``fraction`` of the pool by each score (NaN never selected): pairwise overlap (share of
    the first's selection also in the second's) and, with ``field``, precision: the share of a
    selection whose ``field`` value is one of the target's; ``random`` is the pool's base rate."""
    k = max(1, int(round(fraction * len(pool))))
    top = {}
    for name, s in scores.items():
        ok = np.flatnonzero(~np.isnan(s))
        top[name] = set(ok[np.argsort(-s[ok], kind="stable")[:k]].tolist())
    names = list(top)
    out: dict = {"fraction": fraction, "documents": k,
                 "selected": {n: len(top[n]) for n in names},
                 "overlap": {f"{a}~{b}": round(len(top[a] & top[b]) / max(1, len(top[a])), 4)
                             for i, a in enumerate(names) for b in names[i + 1:]}}
    if field:
        values = {d.metadata.get(field) for d in target} - {None}
        hit = np.array([d.metadata.get(field) in values for d in pool])
        out["field"] = field
        out["target_values"] = len(values)
        out["precision"] = {n: round(float(hit[sorted(top[n])].mean()) if top[n] else 0.0, 4) for n in names}
        out["precision"]["random"] = round(float(hit.mean()) if len(hit) else 0.0, 4)
    return out


def _write_features(folder: str, ids: list[str], x: np.ndarray) -> None:
    from textcurate.io.files import vectors_column

    os.makedirs(folder, exist_ok=True)
    pq.write_table(pa.table({"id": ids, "embedding": vectors_column(x.astype(np.float16), pa.float16())}),
                   os.path.join(folder, "00000.parquet"))
