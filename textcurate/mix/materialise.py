"""Write the mixed dataset a plan asks for: seeded, shuffled, streaming.

Source i must contribute T_i = weight_i x budget training tokens. With U_i its exact token
count, every document appears floor(T_i / U_i) times, and the remainder is filled by a
partial pass in a seeded hash order of the ids, up to the document that crosses T_i. So the
realised count is within one document of the plan (the ledger checks it: tolerance = the
source's largest document).

Three passes, none holding the corpus in memory: (1) ids and exact token counts per source,
(2) every copy of every drawn document to one of B bucket files by a seeded random key,
(3) each bucket sorted by that key into an output shard. The output order is then a
uniform shuffle of all copies, whatever the input order; copies of one document land in
independent places. A rerun of a finished mixture of the same plan does nothing; an
unfinished one, or another plan, is written again from the start (it is deterministic).
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.io.files import write_json_atomic
from textcurate.lm.experiment import MATERIALISE_SALT
from textcurate.io.records import stable_hash
from textcurate.mix.planner import Plan

SCHEMA = pa.schema([("id", pa.string()), ("doc_id", pa.string()), ("source", pa.string()), ("epoch", pa.int32()),
                    ("text", pa.string()), ("tokens", pa.int64()), ("metadata", pa.string()), ("key", pa.uint64())])
HASH_SPACE = 2 ** 64


def draw_copies(ids: list[str], tokens: np.ndarray, target: float, seed: int,
                weights: np.ndarray | None = None) -> np.ndarray:
    """Copies of each document so that their tokens reach ``target``: full passes, then a
    partial pass in seeded hash order until the running total crosses the target.

    With ``weights`` (per document, >= 0; a weighted coreset's shares), document i gets about
    target x w_i / sum_j(w_j t_j) copies: the integer part, then the fractional parts drawn in the
    order of seeded exponential races (a document with a larger fraction tends to come first) until
    the running total crosses the target. Documents of weight 0 are never drawn."""
    if weights is not None:
        return _weighted_copies(ids, tokens, target, seed, np.asarray(weights, dtype=np.float64))
    total = float(tokens.sum())
    copies = np.zeros(len(ids), dtype=np.int64)
    if total <= 0 or target <= 0:
        return copies
    full = int(target // total)
    copies[:] = full
    rest = target - full * total
    if rest > 0:
        order = sorted(range(len(ids)), key=lambda i: (stable_hash(ids[i], seed + MATERIALISE_SALT * (full + 1)), ids[i]))
        acc = 0.0
        for i in order:
            if acc >= rest:
                break
            copies[i] += 1
            acc += tokens[i]
    return copies


def _weighted_copies(ids, tokens, target, seed, w) -> np.ndarray:
    if (w < 0).any() or not np.isfinite(w).all():
        bad = int(np.flatnonzero((w < 0) | ~np.isfinite(w))[0])
        raise ValueError(f"document {ids[bad]!r}: weight {w[bad]} (weights must be finite and >= 0)")
    copies = np.zeros(len(ids), dtype=np.int64)
    mass = float((w * tokens).sum())
    if mass <= 0 or target <= 0:
        return copies
    expected = target * w / mass
    copies[:] = np.floor(expected).astype(np.int64)
    rest = target - float((copies * tokens).sum())
    frac = expected - copies
    u = np.array([(stable_hash(i, seed + MATERIALISE_SALT) + 0.5) / HASH_SPACE for i in ids])
    race = np.where(frac > 0, -np.log(u) / np.maximum(frac, 1e-300), np.inf)
    acc = 0.0
    for i in np.lexsort((np.array(ids, dtype=object).astype(str), race)):
        if acc >= rest or not np.isfinite(race[i]):
            break
        copies[i] += 1
        acc += tokens[i]
    return copies


def materialise(plan: Plan, documents, out: str, tokenize, seed: int = 0, shard_bytes: int = 256 * 2**20,
                progress=None, known_tokens: dict | None = None, weight_field: str | None = None) -> dict:
    """``documents``: a callable returning a fresh iterator of (source, Document); it is called
    twice. ``known_tokens``: {(source, id): tokens} already counted (by exact accounting); only
    the other documents are tokenised. ``weight_field``: a metadata field of per-document weights
    (e.g. ``distill_weight``): inside each source, copies follow the weights (``draw_copies``); a
    document without the field has weight 0. Writes OUT/part-NNNNN.parquet and OUT/mixture.json (the
    realised ledger)."""
    ledger_path = os.path.join(out, "mixture.json")
    fingerprint = hashlib.sha256(json.dumps([[r.name, r.train_tokens] for r in plan.rows] + [seed, weight_field],
                                            sort_keys=True).encode()).hexdigest()[:16]
    if os.path.exists(ledger_path):
        with open(ledger_path) as fh:
            done = json.load(fh)
        if done.get("fingerprint") == fingerprint:  # this very plan is written already
            return done
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    planned = {r.name: r for r in plan.rows}

    # pass 1: ids, exact token counts, bytes
    ids: dict[str, list[str]] = {n: [] for n in planned}
    toks: dict[str, list[int]] = {n: [] for n in planned}
    wts: dict[str, dict[str, float]] = {n: {} for n in planned}
    nbytes = 0
    unplanned = 0
    batch: list = []

    def flush():
        for (name, doc), ids_ in zip(batch, tokenize([d.text for _, d in batch])):
            ids[name].append(doc.id)
            toks[name].append(len(ids_))
        batch.clear()

    known = known_tokens or {}
    for name, doc in documents():
        if name not in planned:
            unplanned += 1
            continue
        nbytes += len(doc.text)
        if weight_field:
            value = doc.metadata.get(weight_field)
            try:
                wts[name][doc.id] = 0.0 if value is None else float(value)
            except (TypeError, ValueError):
                raise ValueError(f"document {doc.id!r} of source {name!r}: {weight_field} = {value!r} is not a "
                                 f"number") from None
        n = known.get((name, doc.id))
        if n is not None:
            ids[name].append(doc.id)
            toks[name].append(n)
            continue
        batch.append((name, doc))
        if len(batch) >= 512:
            flush()
    flush()
    copies: dict[str, dict[str, int]] = {}
    stats = {}
    for name, row in planned.items():
        t = np.asarray(toks[name], dtype=np.float64)
        c = draw_copies(ids[name], t, row.train_tokens, seed,
                        np.array([wts[name][i] for i in ids[name]]) if weight_field else None)
        copies[name] = {i: int(k) for i, k in zip(ids[name], c) if k}
        stats[name] = {"documents": len(ids[name]), "unique_tokens": int(t.sum()),
                       "planned_tokens": row.train_tokens, "realised_tokens": int((c * t).sum()),
                       "copies": int(c.sum()), "documents_drawn": int((c > 0).sum()),
                       "planned_epochs": row.epochs,
                       "realised_epochs": float((c * t).sum() / t.sum()) if t.sum() else 0.0,
                       "tolerance_tokens": int(t.max()) if len(t) else 0}
        if len(t) == 0 and row.train_tokens > 0:
            stats[name]["error"] = "no documents for this source"
    unique = sum(s["unique_tokens"] for s in stats.values())
    total_copies_bytes = nbytes * sum(s["realised_tokens"] for s in stats.values()) / max(unique, 1)
    buckets = max(1, math.ceil(total_copies_bytes / shard_bytes))

    # pass 2: each copy to a bucket by its key
    tmp = os.path.join(out, "_buckets")
    os.makedirs(tmp)
    writers = [pq.ParquetWriter(os.path.join(tmp, f"{b:05d}.parquet"), SCHEMA) for b in range(buckets)]
    pending: list[list[dict]] = [[] for _ in range(buckets)]
    tok_index = {n: dict(zip(ids[n], toks[n])) for n in planned}

    def write(b: int):
        if pending[b]:
            writers[b].write_table(pa.Table.from_pylist(pending[b], schema=SCHEMA))
            pending[b].clear()

    for name, doc in documents():
        k = copies.get(name, {}).get(doc.id, 0)
        if not k:
            continue
        meta = json.dumps({k2: v for k2, v in doc.metadata.items() if not k2.startswith("__")}, default=str)
        n_tokens = tok_index[name][doc.id]
        for epoch in range(k):
            key = stable_hash(f"{name}\x00{doc.id}\x00{epoch}", seed)
            b = key * buckets // HASH_SPACE
            pending[b].append({"id": f"{doc.id}#{epoch}", "doc_id": doc.id, "source": name, "epoch": epoch,
                               "text": doc.text, "tokens": n_tokens, "metadata": meta, "key": key})
            if len(pending[b]) >= 1024:
                write(b)
    for b in range(buckets):
        write(b)
        writers[b].close()

    # pass 3: sort each bucket by key into an output shard
    for b in range(buckets):
        t = pq.read_table(os.path.join(tmp, f"{b:05d}.parquet"))
        t = t.sort_by("key")
        pq.write_table(t, os.path.join(out, f"part-{b:05d}.parquet"))
        if progress:
            progress(b + 1, buckets)
    shutil.rmtree(tmp)

    realised = {n: s["realised_tokens"] for n, s in stats.items()}
    ok = all(abs(s["realised_tokens"] - s["planned_tokens"]) <= max(s["tolerance_tokens"], 1) for s in stats.values()
             if "error" not in s)
    result = {"fingerprint": fingerprint, "plan_budget_tokens": plan.budget_tokens, "realised_tokens": int(sum(realised.values())),
              "sources": stats, "shards": buckets, "seed": seed, "within_tolerance": bool(ok),
              "documents_outside_the_plan": unplanned,
              "tolerance": "per source, |realised - planned| <= its largest document's tokens"}
    write_json_atomic(ledger_path, result, indent=1)
    return result


def read_mixture(out: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(glob.glob(os.path.join(out, "part-*.parquet")))])
