"""Influence of every pool document on a target: warm-up, checkpoints, gradients, projection, scores.

1. A model: by default the packaged SmolLM2-135M with rank-8 LoRA adapters on its blocks' linear
   layers (``params: lora``), gradients for the 30 % of the pool most similar to the target
   (``candidates: 0.3``), two checkpoints: the configuration that beat the embedding-similarity
   baseline on the README's held-out-target pool; or ``model: gpt``, a small GPT from the kit
   on a BPE trained on the pool; or any local causal LM.
2. Warm-up: the kit's training loop on a seeded random ``warmup_fraction`` of the pool;
   ``checkpoints`` snapshots (weights, Adam moments of the chosen parameters, step,
   learning rate) are taken at evenly spaced steps.
3. For each snapshot: per-example gradients of every target document, then of every candidate
   pool document (LESS: turned into Adam update directions), projected by one seeded projector
   (the same matrix for every batch and checkpoint) and stored as float16 shards.
4. Scores: TRAK or LESS (``scores.py``), averaged over the snapshots, written as
   ``influence.parquet`` (id, influence, target_sim, target_sim_nearest) with a card (method,
   dimensions, timings, and the comparison with the baselines).

The pool is never held: it is a ``pool.Documents`` stream read again on each pass (the
baselines' embeddings, the warm-up's documents, the candidates' gradients per checkpoint, the
comparison), with what a pass leaves for the next in spill files under ``OUT/_work`` (the
baselines in pool order, each checkpoint's candidate scores), removed at the end. LESS scores a
batch of features as it is projected; TRAK accumulates its k x k kernel and scores in a second
pass. Memory: a batch, the target, the warm-up's documents and the kernel.

Every run carries its cheapest baselines: the cosine of each pool document's embedding to the
target's mean embedding (``target_sim``) and to its nearest target document
(``target_sim_nearest``). The card compares the three selections at ``compare_fraction`` (their
overlap, and, with ``compare_field``, the share of each selection whose field, a source or a
domain, is one of the target's). ``candidates`` < 1 makes it two-stage: only that share of the
pool most similar to the target gets gradients, influence re-ranks inside it, and the other
documents' influence is NaN (a selection by influence never takes them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from textcurate import __version__
from textcurate.io.files import commit, temp_path, write_json_atomic
from textcurate.io.device import pick_device
from textcurate.runner.progress import Ticker
from textcurate.lm.experiment import LMSpec, build_model, make_tokenizer
from textcurate.io.sampling import WARMUP_SALT
from textcurate.select.targets import split_target as _split_target

PROJECT_BYTES = 512 << 20  # gradients held for one projection call


_LM = LMSpec.model_fields  # the model's defaults are the experiment's (one default per parameter)


class InfluenceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["trak", "less"] = "less"
    proj_dim: int = Field(2048, ge=8)
    proj_kind: Literal["rademacher", "gaussian", "sparse"] = Field("sparse",
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
    precision: Literal["auto", "fp32", "bf16"] = Field("auto",
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


@dataclass
class _Fit:
    """What the passes of one influence fit share: the inputs, the spill folder, the model and its
    checkpoints, and the counters the card reports."""
    spec: InfluenceSpec
    pool: object  # a Documents stream, read again on every pass
    target: list
    out_dir: str
    log: Callable
    device: str = "cpu"
    started: float = 0.0
    work: str = ""
    sims_path: str = ""
    n: int = 0
    n_cand: int = 0
    cand_cut: dict | None = None
    sim_s: float = 0.0
    tok: object = None
    model: object = None
    names: list = field(default_factory=list)
    target_tok: list = field(default_factory=list)
    warm: object = None
    warm_tokens: int = 0
    warm_s: float = 0.0
    snapshots: list = field(default_factory=list)
    ticker: object = None
    weights: list = field(default_factory=list)
    score_files: list = field(default_factory=list)
    grad_s: float = 0.0
    proj_s: float = 0.0
    n_grads: int = 0
    done: int = 0
    projector: object = None
    grads: object = None


def compute_influence(pool, target: list, spec: InfluenceSpec, out_dir: str, log=print) -> dict:
    """Score every pool document against the target into ``out_dir`` (influence.parquet, features/,
    tokenizer/, card.json) and return the card. ``pool``: a list of documents, or a ``Documents``
    stream read again on every pass (memory: a batch, the target, the warm-up documents and k x k
    numbers, whatever the pool's size); ``target``: the documents, held in memory.

    Four passes over one ``_Fit``: the similarity baselines (and the candidates), the warm-up with its
    checkpoints, the gradients of each checkpoint, and the scores with the comparison and the card."""
    from textcurate.influence.pool import Documents

    pool = pool if isinstance(pool, Documents) else Documents(pool)
    target = list(target)
    if not target:
        raise ValueError("influence needs a pool and a target: got no target documents")
    fit = _Fit(spec, pool, target, out_dir, log, device=pick_device(spec.device), started=time.time())
    os.makedirs(out_dir, exist_ok=True)
    fit.work = os.path.join(out_dir, "_work")  # spill files of this fit, removed at its end
    shutil.rmtree(fit.work, ignore_errors=True)
    os.makedirs(fit.work)
    fit.sims_path = os.path.join(fit.work, "sims.parquet")
    _similarity_pass(fit)
    _warm_up(fit)
    for c, snap in enumerate(fit.snapshots):
        _checkpoint_pass(fit, c, snap)
    card = _score_pass(fit)
    shutil.rmtree(fit.work, ignore_errors=True)
    return card


def _similarity_pass(fit: _Fit) -> None:
    """Pass 1: the embedding-similarity baselines of every pool document (and, two-stage, the
    candidates that get gradients); then the tokenizer and the model."""
    from textcurate.influence.grads import select_parameters
    from textcurate.influence.pool import embed_pool, position_batches
    from textcurate.lm.data import tokenize_documents
    from textcurate.select.radix import top_cut

    spec = fit.spec
    t0 = time.perf_counter()
    fit.n, chars = embed_pool(fit.pool, fit.target, spec.embedder, fit.sims_path)
    fit.sim_s = time.perf_counter() - t0
    n = fit.n
    if not n:
        raise ValueError(f"influence needs a pool and a target: got 0 and {len(fit.target)} documents")
    fit.n_cand = n if spec.candidates >= 1 else max(1, int(np.ceil(spec.candidates * n)))
    fit.cand_cut = None if fit.n_cand >= n else top_cut(position_batches(fit.sims_path, "target_sim"), fit.n_cand)
    fit.log(f"influence: embedding similarity of {n:,} pool documents to {len(fit.target):,} target documents "
            f"({spec.embedder}, {fit.sim_s:.0f} s)" + (f"; gradients for the {fit.n_cand:,} most similar "
                                                        f"({spec.candidates:.0%})" if fit.n_cand < n else ""))
    lm = spec.lm_spec()
    fit.tok = make_tokenizer(lm, _bpe_texts(fit.pool, chars))
    fit.model = build_model(lm, fit.tok.vocab_size, spec.seed, local=spec.local_model)
    if spec.params == "lora":
        from textcurate.influence.grads import add_lora

        fit.model = add_lora(fit.model, r=spec.lora_r, alpha=2 * spec.lora_r, seed=spec.seed)
    fit.tok.save(os.path.join(fit.out_dir, "tokenizer"))
    fit.target_tok = tokenize_documents(fit.tok, [d.text for d in fit.target], spec.context)
    fit.names = select_parameters(fit.model, spec.params)


def _warm_up(fit: _Fit) -> None:
    """Pass 2: the warm-up on a seeded share of the pool, keeping ``checkpoints`` snapshots (weights,
    learning rate and, for LESS, Adam's moments)."""
    import torch

    from textcurate.lm.data import tokenize_documents
    from textcurate.lm.train import TrainConfig, train_lm

    spec = fit.spec
    fit.warm, capped = _warm_positions(fit.n, spec)
    if capped:
        fit.log(f"influence: the warm-up draws {len(fit.warm):,} documents, not {spec.warmup_fraction:.0%} of the "
                f"pool ({capped:,}): enough for its {spec.warmup_tokens:,} tokens")
    snapshots = fit.snapshots
    fit.ticker = ticker = Ticker(fit.log)

    def on_step(step, total, m, opt, lr):
        ticker(f"influence: warm-up step {step:,}/{total:,}", step, total, "steps")
        every = max(1, total // spec.checkpoints)
        if step % every == 0 or step == total:
            if len(snapshots) and snapshots[-1]["step"] == step or len(snapshots) >= spec.checkpoints:
                return
            named = dict(m.named_parameters())
            state = getattr(opt, "optimizer", opt).state
            mom = [state.get(named[n], {}) for n in fit.names]
            snapshots.append({
                "step": step, "lr": lr, "weights": {k: v.detach().clone() for k, v in m.state_dict().items()},
                "m": torch.cat([s["exp_avg"].reshape(-1) for s in mom]) if all(mom) else None,
                "v": torch.cat([s["exp_avg_sq"].reshape(-1) for s in mom]) if all(mom) else None})

    t0 = time.perf_counter()
    ticker.start()
    warm_res = train_lm(fit.model, tokenize_documents(fit.tok, _texts_at(fit.pool, fit.warm), spec.context),
                        fit.tok.eos_id, spec.context,
                        TrainConfig(budget_tokens=spec.warmup_tokens, batch_size=spec.batch_size, seed=spec.seed,
                                    device=fit.device), on_step=on_step)
    fit.warm_s = time.perf_counter() - t0
    fit.warm_tokens = warm_res.tokens
    fit.log(f"influence: warm-up on {len(fit.warm):,} documents ({warm_res.tokens:,} tokens, {fit.warm_s:.0f} s), "
            f"{len(snapshots)} checkpoints; gradients of {len(fit.names)} tensors")


def _projected(fit: _Fit, c: int, snap: dict, batches, adam: bool, group: int, total: int):
    """(ids, projected float32 features) of a stream of gradient batches, in groups of about ``group``
    rows (a dense projection matrix too large to keep is generated once per group, not per batch);
    the fit's counters and timers move as it goes."""
    import torch

    from textcurate.influence.scores import adam_direction

    spec, grads, projector = fit.spec, fit.grads, fit.projector
    pending, ids = [], []
    for batch_ids, x, y in batches:
        t1 = time.perf_counter()
        g = grads.batch(x, y)
        if adam and spec.method == "less" and snap["m"] is not None:
            g = adam_direction(g, snap["m"].to(g.device), snap["v"].to(g.device), snap["step"])
        fit.grad_s += time.perf_counter() - t1
        fit.n_grads += len(x)
        fit.done += len(x)
        fit.ticker(f"influence: checkpoint {c + 1}/{len(fit.snapshots)}, gradients {fit.done:,}/{total:,}", fit.done,
                   total, "gradients")
        pending.append(g)
        ids.extend(batch_ids)
        if sum(len(p) for p in pending) >= group:
            t2 = time.perf_counter()
            yield ids, projector.project(torch.cat(pending)).cpu().numpy()
            fit.proj_s += time.perf_counter() - t2
            pending, ids = [], []
    if pending:
        t2 = time.perf_counter()
        yield ids, projector.project(torch.cat(pending)).cpu().numpy()
        fit.proj_s += time.perf_counter() - t2


def _checkpoint_pass(fit: _Fit, c: int, snap: dict) -> None:
    """Pass 3, once per checkpoint: the target's projected gradients, then the candidates' streamed,
    scored against them (LESS: a direction; TRAK: a kernel, which a second read of the spilled
    features applies); the scores spill to ``work/scores-C.f32``."""
    from textcurate.influence.grads import PerExampleGrads, document_batches
    from textcurate.influence.project import Projector
    from textcurate.influence.scores import TrakKernel, less_chunk, less_direction, method_normalize

    spec, out_dir = fit.spec, fit.out_dir
    fit.model.load_state_dict(snap["weights"])
    fit.grads = grads = PerExampleGrads(fit.model, spec.params, fit.device, dtype=grad_dtype(spec, fit.device))
    if fit.projector is None:
        fit.projector = Projector(grads.dim, spec.proj_dim, spec.proj_kind, spec.seed)
    group = max(spec.batch_size, PROJECT_BYTES // (4 * grads.dim))
    total = fit.n_cand + len(fit.target)
    fit.done = 0
    fit.ticker.start()
    t_feats = np.concatenate([f for _, f in _projected(
        fit, c, snap, document_batches(fit.target_tok, fit.tok.eos_id, spec.context, spec.batch_size), False, group,
        total)])
    with _FeatureWriter(os.path.join(out_dir, "features", f"ckpt-{c}-target")) as fw:
        fw.write([d.id for d in fit.target], t_feats)
    normalize = method_normalize(spec.method, spec.normalize)
    kernel = TrakKernel(normalize) if spec.method == "trak" else None
    direction = None if kernel else less_direction(t_feats, normalize)
    fit.score_files.append(os.path.join(fit.work, f"scores-{c}.f32"))
    raw = os.path.join(fit.work, f"features-{c}.f32")  # TRAK's second pass reads the float32 features again
    with _FeatureWriter(os.path.join(out_dir, "features", f"ckpt-{c}")) as fw, \
            open(fit.score_files[-1], "wb") as scores_out, \
            open(raw, "wb") if kernel else contextlib.nullcontext() as raw_out:
        for ids, f in _projected(fit, c, snap, _candidate_batches(fit.pool, fit.sims_path, fit.cand_cut, fit.tok, spec),
                                 True, group, total):
            fw.write(ids, f)
            if kernel:
                kernel.add(f)
                np.ascontiguousarray(f, dtype=np.float32).tofile(raw_out)
            else:
                less_chunk(f, direction, normalize).astype(np.float32).tofile(scores_out)
    if kernel:
        w = kernel.weights(t_feats, spec.lam)
        with open(raw, "rb") as fh, open(fit.score_files[-1], "wb") as scores_out:
            while len(f := np.fromfile(fh, dtype=np.float32, count=EMBED_ROWS * spec.proj_dim)):
                kernel.score(f.reshape(-1, spec.proj_dim), w).tofile(scores_out)
        os.remove(raw)
    fit.weights.append(snap["lr"] if spec.method == "less" else 1.0)
    fit.log(f"  checkpoint {c} (step {snap['step']}): {fit.n_cand + len(fit.target):,} gradients of dimension "
            f"{grads.dim:,} -> {spec.proj_dim:,}")


def _score_pass(fit: _Fit) -> dict:
    """Pass 4: the checkpoints' scores combined into influence.parquet beside the similarity
    baselines, their top fractions compared, the extremes kept; the card written and returned."""
    from textcurate.influence.pool import Comparison, Extremes, aligned
    from textcurate.select.radix import top_cut

    spec, n = fit.spec, fit.n
    partial = fit.cand_cut if fit.n_cand < n else None

    def scored():
        """(ids, positions, {influence, target_sim, target_sim_nearest}) through the pool in order."""
        reader = _Scores(fit.score_files, np.asarray(fit.weights), partial)
        pos = 0
        for b in pq.ParquetFile(fit.sims_path).iter_batches(batch_size=EMBED_ROWS):
            p = np.arange(pos, pos + b.num_rows, dtype=np.uint64)
            yield b.column("id").to_pylist(), p, reader.of(p, b)
            pos += b.num_rows

    out_path = os.path.join(fit.out_dir, "influence.parquet")
    tmp = temp_path(out_path)
    with pq.ParquetWriter(tmp, INFLUENCE_SCHEMA) as writer:
        for ids, _, s in scored():
            writer.write_table(pa.table({"id": ids, **{col: s[col].astype(np.float32)
                                                       for col in INFLUENCE_SCHEMA.names[1:]}}, schema=INFLUENCE_SCHEMA))
    commit(tmp, out_path)
    k = max(1, int(round(spec.compare_fraction * n)))
    cuts = {name: top_cut(lambda name=name: (pa.record_batch({"hash": pos, "score": s[name]})
                                             for _, pos, s in scored()), k) for name in INFLUENCE_SCHEMA.names[1:]}
    field_ = spec.compare_field
    comparison = Comparison(cuts, spec.compare_fraction, k, field_,
                            {d.metadata.get(field_) for d in fit.target} - {None} if field_ else None)
    extremes = Extremes(5)
    reader = _Scores(fit.score_files, np.asarray(fit.weights), partial)
    for pos, batch, t in aligned(fit.pool, fit.sims_path, ["target_sim", "target_sim_nearest"]):
        p = np.arange(pos, pos + len(batch), dtype=np.uint64)
        s = reader.of(p, t)
        comparison.add(p, s, batch)
        extremes.add(p, s["influence"], batch)
    grads = fit.grads
    card = {"kind": "influence", "method": spec.method, "spec": spec.model_dump(mode="json"),
            "pool": n, "target": len(fit.target), "grad_dim": int(fit.projector.dim_in),
            "parameters": len(fit.names), "checkpoints": [{"step": s["step"], "lr": s["lr"]} for s in fit.snapshots],
            "warmup": {"documents": int(len(fit.warm)), "tokens": fit.warm_tokens, "seconds": round(fit.warm_s, 1)},
            "candidates": {"share": spec.candidates, "documents": int(fit.n_cand)},
            "gradients": fit.n_grads, "gradient_method": grads.method,
            "gradient_dtype": "bf16" if grads.dtype is not None else "fp32", "similarity_seconds": round(fit.sim_s, 1),
            "comparison": comparison.result(),
            "gradients_per_s": round(fit.n_grads / max(fit.grad_s, 1e-9), 1),
            "projections_per_s": round(fit.n_grads / max(fit.proj_s, 1e-9), 1),
            "top": extremes.rows("top"), "bottom": extremes.rows("bottom"),
            "seconds": round(time.time() - fit.started, 1), "textcurate": __version__}
    write_json_atomic(os.path.join(fit.out_dir, "card.json"), card)
    return card


INFLUENCE_SCHEMA = pa.schema([("id", pa.string()), ("influence", pa.float32()), ("target_sim", pa.float32()),
                              ("target_sim_nearest", pa.float32())])
EMBED_ROWS = 16_384  # feature rows read at a time in the scoring passes
BPE_MAX_CHARS = 50_000_000  # a pool with more text trains the GPT's BPE on an id-hash sample of this many
WARMUP_MIN_DOCS = 10_000  # the warm-up draws at most max(this, 4 x its tokens / context) documents


def _bpe_texts(pool, chars: int):
    """The texts the small GPT's BPE is trained on: every pool text, or an id-hash sample of about
    ``BPE_MAX_CHARS`` characters when the pool has more (lazily: a local model's tokenizer reads none)."""
    from textcurate.io.sampling import BPE_SAMPLE_SALT, in_share

    share = min(1.0, BPE_MAX_CHARS / max(1, chars))
    return (d.text for d in pool if share >= 1 or in_share(d.id, share, BPE_SAMPLE_SALT))


def _warm_positions(n: int, spec: InfluenceSpec) -> tuple[np.ndarray, int]:
    """Pool positions of the warm-up documents, in the seeded permutation's order (the first
    ``warmup_fraction`` of it, capped), and the uncapped count when capped (else 0). The
    permutation is 4 bytes a document, for the moment of the draw."""
    k = max(1, int(round(spec.warmup_fraction * n)))
    cap = max(WARMUP_MIN_DOCS, 4 * spec.warmup_tokens // spec.context)
    order = np.arange(n, dtype=np.int32 if n < 2 ** 31 else np.int64)
    np.random.default_rng([spec.seed, WARMUP_SALT]).shuffle(order)  # the same order as rng.permutation(n)
    return order[:min(k, cap)].copy(), (k if k > cap else 0)


def _texts_at(pool, positions: np.ndarray) -> list[str]:
    """The texts of the pool documents at ``positions``, in that order (one pass)."""
    want = np.sort(positions)
    found: dict[int, str] = {}
    for p, d in enumerate(pool):
        i = np.searchsorted(want, p)
        if i < len(want) and want[i] == p:
            found[p] = d.text
        if len(found) == len(want):
            break
    return [found[int(p)] for p in positions]


def _candidate_batches(pool, sims_path: str, cut: dict | None, tok, spec: InfluenceSpec):
    """(ids, inputs, targets) of the candidates in pool order, ``batch_size`` at a time: the same
    batches as tokenizing every candidate first (chunks are whole numbers of batches)."""
    from textcurate.influence.grads import document_batches
    from textcurate.influence.pool import aligned
    from textcurate.io.files import batched
    from textcurate.lm.data import tokenize_documents
    from textcurate.select.radix import in_top

    def candidates():
        for pos, batch, t in aligned(pool, sims_path, ["target_sim"]):
            keep = np.ones(len(batch), bool) if cut is None else in_top(
                t.column("target_sim").to_numpy(), np.arange(pos, pos + len(batch), dtype=np.uint64), cut)
            yield from (d for d, k in zip(batch, keep) if k)

    chunk = spec.batch_size * max(1, 2048 // spec.batch_size)
    for docs in batched(candidates(), chunk):
        toks = tokenize_documents(tok, [d.text for d in docs], spec.context)
        for idx, x, y in document_batches(toks, tok.eos_id, spec.context, spec.batch_size):
            yield [docs[i].id for i in idx], x, y


class _Scores:
    """The checkpoints' candidate scores, averaged (weights: each checkpoint's learning rate for
    LESS), read from their spill files in pool order beside the baselines' rows: ``of(positions,
    rows)`` gives {influence (float64, NaN outside the candidates), target_sim, target_sim_nearest}."""

    def __init__(self, files: list[str], weights: np.ndarray, cut: dict | None):
        self.files, self.weights, self.cut, self.offset = files, weights, cut, 0

    def of(self, positions: np.ndarray, rows) -> dict:
        from textcurate.select.radix import in_top

        sim = np.asarray(rows.column("target_sim").to_numpy(zero_copy_only=False))
        cand = in_top(sim, positions, self.cut) if self.cut is not None else np.ones(len(sim), bool)
        m = int(cand.sum())
        per = np.stack([np.fromfile(f, dtype=np.float32, count=m, offset=4 * self.offset) for f in self.files])
        if per.shape[1] != m:
            raise ValueError(f"influence: a checkpoint's scores end early ({per.shape[1]:,} of {m:,} rows)")
        self.offset += m
        score = np.full(len(sim), np.nan)
        score[cand] = np.average(per, axis=0, weights=self.weights)
        return {"influence": score, "target_sim": sim,
                "target_sim_nearest": np.asarray(rows.column("target_sim_nearest").to_numpy(zero_copy_only=False))}


class _FeatureWriter:
    """features/ckpt-C/00000.parquet (id, float16 embedding) written group by group."""

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "00000.parquet")
        self.tmp = temp_path(self.path)
        self.writer = None

    def write(self, ids: list, x: np.ndarray) -> None:
        from textcurate.io.files import vectors_column

        t = pa.table({"id": ids, "embedding": vectors_column(x.astype(np.float16), pa.float16())})
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, t.schema)
        self.writer.write_table(t)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if self.writer is not None:
            self.writer.close()
            if exc_type is None:
                commit(self.tmp, self.path)
        return False


def grad_dtype(spec: InfluenceSpec, device: str):
    """torch.bfloat16 or None (float32): see ``InfluenceSpec.precision``."""
    import torch

    from textcurate.io.device import cpu_has_bf16

    if spec.precision == "auto":
        return torch.bfloat16 if spec.local_model and (device == "cuda" or cpu_has_bf16()) else None
    return torch.bfloat16 if spec.precision == "bf16" else None


def rescore(out_dir: str, normalize: bool | None = None, checkpoints: list[int] | None = None) -> np.ndarray:
    """The scores of a finished run again from its stored projected features, with another
    normalisation or a subset of its checkpoints (indices into ``card.json``'s), without a
    gradient: aligned with ``influence.parquet``'s rows, NaN outside the candidates. The features
    are streamed; memory is the returned scores."""
    from textcurate.influence.scores import TrakKernel, less_chunk, less_direction, method_normalize
    from textcurate.io.files import column_vectors

    with open(os.path.join(out_dir, "card.json")) as fh:
        card = json.load(fh)
    spec = InfluenceSpec(**card["spec"])
    use = list(range(len(card["checkpoints"]))) if checkpoints is None else list(checkpoints)
    norm = method_normalize(spec.method, normalize)

    def features(c: int, target: bool = False):
        path = os.path.join(out_dir, "features", f"ckpt-{c}" + ("-target" if target else ""), "00000.parquet")
        for b in pq.ParquetFile(path).iter_batches(batch_size=EMBED_ROWS):
            yield b.column("id").to_pylist(), column_vectors(b.column("embedding")).astype(np.float32)

    per_ckpt, weights, cand = [], [], None
    for c in use:
        t = np.concatenate([x for _, x in features(c, target=True)])
        if spec.method == "trak":
            kernel = TrakKernel(norm)
            for _, x in features(c):
                kernel.add(x)
            w = kernel.weights(t, spec.lam)
            chunks = [(ids, kernel.score(x, w)) for ids, x in features(c)]
        else:
            direction = less_direction(t, norm)
            chunks = [(ids, less_chunk(x, direction, norm)) for ids, x in features(c)]
        cand = [i for ids, _ in chunks for i in ids]
        per_ckpt.append(np.concatenate([x for _, x in chunks]))
        weights.append(card["checkpoints"][c]["lr"] if spec.method == "less" else 1.0)
    ids = pq.read_table(os.path.join(out_dir, "influence.parquet"), columns=["id"]).column("id")
    rows, j = np.empty(len(cand), dtype=np.int64), 0
    for i, x in enumerate(ids.to_pylist()):  # the candidates are a subsequence of the pool, in its order
        if j < len(cand) and x == cand[j]:
            rows[j], j = i, j + 1
    if j != len(cand):
        raise ValueError(f"{out_dir}: the features' ids are not in influence.parquet's order")
    score = np.full(len(ids), np.nan)
    score[rows] = np.average(np.stack(per_ckpt), axis=0, weights=np.asarray(weights))
    return score


def compare_selections(pool: list, target: list, scores: dict[str, np.ndarray], fraction: float,
                       field: str | None) -> dict:
    """The top ``fraction`` of the pool by each score (NaN never selected, ties by position): pairwise
    overlap (share of the first's selection also in the second's) and, with ``field``, precision:
    the share of a selection whose ``field`` value is one of the target's; ``random`` is the pool's
    base rate. The streamed fit computes the same with ``pool.Comparison``."""
    from textcurate.influence.pool import Comparison
    from textcurate.select.radix import top_cut

    k = max(1, int(round(fraction * len(pool))))
    pos = np.arange(len(pool), dtype=np.uint64)
    cuts = {name: top_cut(lambda s=s: iter([pa.record_batch({"hash": pos, "score": np.asarray(s, np.float64)})]), k)
            for name, s in scores.items()}
    cmp = Comparison(cuts, fraction, k, field, {d.metadata.get(field) for d in target} - {None} if field else None)
    cmp.add(pos, scores, pool)
    return cmp.result()
