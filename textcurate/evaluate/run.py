"""Data-efficiency evaluation: does a selection train a better small LM than random data?

The pool is split once, by id-hash: the target (held-out documents of the domain that
matters, or a separate set), a general held-out sample, and the training pool. A BPE is
trained on the pool and shared by every run. Then, for every seed, a fresh GPT with the
same architecture, initialisation and token budget is trained on each random fraction of
the pool (nested subsets of one seeded permutation) and on each selection; every run
reports its target loss, its general held-out loss and the epochs its budget took. From the
random runs of a seed, ``curves.multiplier`` gives each selection's data-efficiency
multiplier; the spread over seeds is reported with it. Finished runs are cached under
``OUT/runs/``, so a killed evaluation continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass

import numpy as np

from textcurate.evaluate.curves import RandomCurve, multiplier, summarize
from textcurate.evaluate.spec import EvaluateSpec
from textcurate.io.records import hash_share, stable_hash, write_json_atomic



@dataclass
class Split:
    pool: list            # Documents a run may train on
    target: list
    general: list


def split_documents(docs: list, spec: EvaluateSpec, target_docs: list | None = None) -> Split:
    from textcurate.select.expr import Expr

    target, rest = [], []
    if spec.target.expr:
        expr = Expr(spec.target.expr)
        for d in docs:
            try:
                hit = expr.keep(d.metadata)
            except Exception:  # a document without the field is not the target
                hit = False
            (target if hit and hash_share(d.id, 101) < spec.target.holdout else rest).append(d)
    else:
        target, rest = list(target_docs or []), list(docs)
        ids = {d.id for d in target}
        rest = [d for d in rest if d.id not in ids]
    general = [d for d in rest if hash_share(d.id, 202) < spec.general_holdout]
    pool = [d for d in rest if hash_share(d.id, 202) >= spec.general_holdout]
    if not target:
        raise ValueError("the target is empty: no pool document matches target.expr (or the target set is empty)")
    if len(pool) < 2:
        raise ValueError(f"{len(pool)} documents left to train on")
    return Split(pool, target, general)


def _take_tokens(order: np.ndarray, lengths: np.ndarray, want: float) -> np.ndarray:
    """The shortest prefix of ``order`` holding at least ``want`` tokens."""
    cum = np.cumsum(lengths[order])
    k = int(np.searchsorted(cum, want - 1e-9)) + 1
    return order[: min(k, len(order))]


def selection_points(spec: EvaluateSpec, pool: list, lengths: np.ndarray) -> list[dict]:
    """[{name, requested, indices}] for every selection (one point per fraction for ranked ones)."""
    from textcurate.select.expr import Expr

    total = lengths.sum()
    points = []
    for sel in spec.selections:
        eligible = np.arange(len(pool))
        if sel.ids:
            wanted = _read_ids(sel.ids)
            eligible = np.array([i for i in eligible if pool[i].id in wanted], dtype=np.int64)
        if sel.expr:
            expr = Expr(sel.expr)
            keep = []
            for i in eligible:
                try:
                    if expr.keep(pool[i].metadata):
                        keep.append(i)
                except Exception:
                    pass
            eligible = np.array(keep, dtype=np.int64)
        if sel.by is None:
            points.append({"name": sel.name, "requested": None, "indices": eligible})
            continue
        scores = np.array([_score(pool[i].metadata, sel.by) for i in eligible], dtype=np.float64)
        ok = ~np.isnan(scores)
        eligible, scores = eligible[ok], scores[ok]
        hashes = np.array([stable_hash(pool[i].id) for i in eligible], dtype=np.uint64)
        order = eligible[np.lexsort((hashes, scores if sel.ascending else -scores))]
        for f in sel.fractions:
            points.append({"name": sel.name, "requested": f, "indices": _take_tokens(order, lengths, f * total)})
    for p in points:
        if len(p["indices"]) == 0:
            raise ValueError(f"selection {p['name']!r} keeps no document of the pool")
    return points


def _score(metadata: dict, key: str) -> float:
    v = metadata.get(key)
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _read_ids(path: str) -> set[str]:
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        return set(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    with open(path) as fh:
        return {line.strip() for line in fh if line.strip()}


def _fingerprint(spec: EvaluateSpec, ids: list[str]) -> str:
    blob = json.dumps({"spec": spec.model_dump(mode="json"), "ids": hashlib.sha256("\n".join(ids).encode())
                       .hexdigest()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def evaluate(docs: list, spec: EvaluateSpec, out_dir: str, target_docs: list | None = None, log=print) -> dict:
    import torch

    from textcurate.lm.data import tokenize_documents
    from textcurate.lm.model import GPT, GPTConfig
    from textcurate.lm.tokenizer import LMTokenizer
    from textcurate.lm.train import TrainConfig, heldout_loss, train_lm

    started = time.time()
    split = split_documents(docs, spec, target_docs)
    os.makedirs(out_dir, exist_ok=True)
    fp = _fingerprint(spec, sorted(d.id for d in split.pool))
    runs_dir = os.path.join(out_dir, "runs")
    stamp = os.path.join(out_dir, "fingerprint")
    if not os.path.exists(stamp) or open(stamp).read() != fp:  # another pool or spec: cached runs do not apply
        shutil.rmtree(runs_dir, ignore_errors=True)
        with open(stamp, "w") as fh:
            fh.write(fp)
    os.makedirs(runs_dir, exist_ok=True)

    m = spec.model
    if m.tokenizer:
        tok = LMTokenizer.from_model(m.tokenizer)
    else:
        sample = [d.text for d in split.pool if hash_share(d.id, 303) < min(1.0, 2e6 / max(1, sum(len(x.text) for x in split.pool)))]
        tok = LMTokenizer.train(sample or [d.text for d in split.pool], vocab_size=m.vocab_size)
    tok.save(os.path.join(out_dir, "tokenizer"))
    pool_tok = tokenize_documents(tok, [d.text for d in split.pool], spec.max_doc_tokens)
    target_tok = tokenize_documents(tok, [d.text for d in split.target], spec.max_doc_tokens)
    general_tok = tokenize_documents(tok, [d.text for d in split.general], spec.max_doc_tokens)
    lengths = np.array([len(t) + 1 for t in pool_tok], dtype=np.int64)
    total = int(lengths.sum())
    points = selection_points(spec, split.pool, lengths)
    gcfg = GPTConfig(vocab_size=tok.vocab_size, block_size=m.block_size, n_layer=m.n_layer, n_head=m.n_head,
                     n_embd=m.n_embd)
    domains = None
    if spec.domain_field:
        domains = np.array([str(d.metadata.get(spec.domain_field)) for d in split.target])
    log(f"evaluate: pool {len(split.pool):,} documents ({total:,} tokens), target {len(split.target):,}, general "
        f"{len(split.general):,}; {len(spec.fractions)} random fractions + {len(points)} selection points x "
        f"{len(spec.seeds)} seeds, {spec.budget_tokens:,} training tokens each")

    def one_run(name: str, requested, indices: np.ndarray, seed: int) -> dict:
        key = f"{name}@{requested if requested is not None else 'all'}-s{seed}"
        path = os.path.join(runs_dir, key.replace("/", "_") + ".json")
        if os.path.exists(path):
            with open(path) as fh:
                return json.load(fh)
        torch.manual_seed(seed)
        model = GPT(gcfg)
        res = train_lm(model, [pool_tok[i] for i in indices], tok.eos_id, m.block_size,
                       TrainConfig(budget_tokens=spec.budget_tokens, batch_size=spec.batch_size, lr=spec.lr,
                                   seed=seed, device=spec.device))
        ts, tc = heldout_loss(model, target_tok, tok.eos_id, m.block_size, device=spec.device)
        row = {"name": name, "requested": requested, "seed": seed, "documents": int(len(indices)),
               "tokens": int(lengths[indices].sum()), "fraction": float(lengths[indices].sum() / total),
               "target_loss": float(ts.sum() / tc.sum()), "epochs": res.epochs, "train_seconds": res.seconds,
               "train_tokens_per_s": res.tokens_per_s, "final_train_loss": float(np.mean(res.losses[-5:]))}
        if len(general_tok):
            gs, gc = heldout_loss(model, general_tok, tok.eos_id, m.block_size, device=spec.device)
            row["general_loss"] = float(gs.sum() / gc.sum())
        if domains is not None:
            row["target_loss_by_domain"] = {str(v): float(ts[domains == v].sum() / tc[domains == v].sum())
                                            for v in sorted(set(domains)) if tc[domains == v].sum()}
        write_json_atomic(path, row, indent=1)
        log(f"  {key:34s} fraction {row['fraction']:.3f}  epochs {row['epochs']:6.2f}  target loss "
            f"{row['target_loss']:.4f}  ({res.seconds:.0f} s)")
        return row

    runs = []
    for seed in spec.seeds:
        perm = np.random.default_rng([seed, 7]).permutation(len(split.pool))
        for f in sorted(spec.fractions):
            runs.append(one_run("random", f, _take_tokens(perm, lengths, f * total), seed))
        for p in points:
            runs.append(one_run(p["name"], p["requested"], p["indices"], seed))

    result = {"pool": {"documents": len(split.pool), "tokens": total}, "target": {"documents": len(split.target)},
              "general": {"documents": len(split.general)}, "tokenizer": {"kind": tok.kind, "vocab": tok.vocab_size},
              "model": {**gcfg.to_dict(), "parameters": GPT(gcfg).num_params()}, "spec": spec.model_dump(mode="json"),
              "runs": runs, "selections": _multipliers(runs, spec.seeds),
              "seconds": round(time.time() - started, 1)}
    with open(os.path.join(out_dir, "evaluate.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    return result


def _multipliers(runs: list[dict], seeds: list[int]) -> list[dict]:
    """Per selection point: target loss and multiplier per seed, summarised over seeds."""
    curves = {}
    for s in seeds:
        rr = [r for r in runs if r["name"] == "random" and r["seed"] == s]
        curves[s] = RandomCurve([r["fraction"] for r in rr], [r["target_loss"] for r in rr])
    out: dict[tuple, dict] = {}
    for r in runs:
        if r["name"] == "random":
            continue
        key = (r["name"], r["requested"])
        item = out.setdefault(key, {"name": r["name"], "requested": r["requested"], "fraction": r["fraction"],
                                    "per_seed": []})
        curve = curves[r["seed"]]
        mult, bound = multiplier(curve, r["fraction"], r["target_loss"])
        item["per_seed"].append({"seed": r["seed"], "target_loss": r["target_loss"], "multiplier": mult,
                                 "bound": bound, "delta": curve.delta(r["fraction"], r["target_loss"]),
                                 "epochs": r["epochs"], "general_loss": r.get("general_loss")})
    for item in out.values():
        item["multiplier"] = summarize([p["multiplier"] for p in item["per_seed"]])
        item["target_loss"] = summarize([p["target_loss"] for p in item["per_seed"]])
        item["delta"] = summarize([p["delta"] for p in item["per_seed"]])
        bounds = {p["bound"] for p in item["per_seed"]}
        item["bound"] = bounds.pop() if len(bounds) == 1 else ("mixed" if bounds - {None} else None)
    return list(out.values())
