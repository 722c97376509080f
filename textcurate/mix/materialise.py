"""Write the mixed dataset a plan asks for: seeded, shuffled, streaming.

Source i must contribute T_i = weight_i x budget training tokens. With U_i its exact token
count, every document appears floor(T_i / U_i) times, and the remainder is filled by a
partial pass in a seeded hash order of the ids, up to the document that crosses T_i. So the
realised count is within one document of the plan (the ledger checks it: tolerance = the
source's largest document).

Three passes over the documents, none holding the corpus in memory: (1) exact token counts
(read from the count pass's log where it has them) to a spill file of (source, id, tokens,
weight), one row per document, and totals per source; then the partial pass's last document
per source, by radix selection over the spill (``_Draw``); (2) every copy of every drawn
document to one of B bucket files by a seeded random key, the spill read alongside to know
each document's copies; (3) each bucket sorted by that key into an output shard. Memory: a
batch, counters per source, and one shard in pass 3 (``shard_bytes``). The output order is then a
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
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from textcurate.io.files import write_json_atomic
from textcurate.io.sampling import MATERIALISE_SALT
from textcurate.io.records import stable_hash
from textcurate.mix.planner import Plan
from textcurate.select.radix import Rows, StreamChanged, boundaries, gathered, rows_by_code

SCHEMA = pa.schema([("id", pa.string()), ("doc_id", pa.string()), ("source", pa.string()), ("epoch", pa.int32()),
                    ("text", pa.string()), ("tokens", pa.int64()), ("metadata", pa.string()), ("key", pa.uint64())])
HASH_SPACE = 2 ** 64
# materialising's spill: one row per document of a planned source, in the order they come
SPILL_SCHEMA = pa.schema([("source", pa.int32()), ("id", pa.string()), ("tokens", pa.int64()), ("weight", pa.float64())])
# the count pass's token log (accounting.count_sources): the same for every counted document
LOG_SCHEMA = pa.schema([("source", pa.string()), ("id", pa.string()), ("tokens", pa.int64())])
BATCH = 65_536  # spill rows written and read at a time
COLLECT = 1 << 16  # a boundary bucket this small is gathered and sorted instead of split again
COLLECT_TOTAL = 1 << 18  # rows gathered in one pass, all sources together
QUEUED_BYTES = 32 * 2**20  # copies waiting for their bucket files, all buckets together


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


class TokenLog:
    """Rows appended in the order they come to one Parquet file, ``BATCH`` at a time: the count
    pass's (source, id, tokens) for materialising, and materialising's own spill. Memory: one
    batch."""

    def __init__(self, path: str, schema: pa.Schema = LOG_SCHEMA):
        self.path, self.schema = path, schema
        self._cols: list[list] = [[] for _ in schema.names]
        self._writer = None
        self.rows = 0

    def add(self, *values) -> None:
        for col, v in zip(self._cols, values):
            col.append(v)
        if len(self._cols[0]) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._cols[0]:
            return
        if self._writer is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, self.schema)
        self._writer.write_table(pa.table(dict(zip(self.schema.names, self._cols)), schema=self.schema))
        self.rows += len(self._cols[0])
        for col in self._cols:
            col.clear()

    def close(self) -> None:
        self.flush()
        if self._writer is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            pq.write_table(self.schema.empty_table(), self.path)
        else:
            self._writer.close()


def _log_batches(path: str):
    if path and os.path.exists(path):
        yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH)


def _log_rows(path: str | None):
    for b in _log_batches(path):
        yield from zip(*(b.column(i).to_pylist() for i in range(b.num_columns)))


class _Draw:
    """How many copies each document of the spill gets, decided from per-source totals and one
    boundary per source, never from a table of the documents.

    Unweighted, source s gets ``full[s]`` copies of everything, then the partial pass: the
    documents in (key, id, position) order, key = the seeded hash of the id, while the running
    token total is below ``rest[s]``. Weighted, document i gets floor(e_i) copies, e_i = target x
    w_i / sum(w t), then one more in the order of its exponential race -log(u_i) / frac(e_i)
    (u_i: a seeded hash in (0, 1)) while the total is below the rest. Either way the partial pass
    is the prefix of an order up to a boundary row, which ``_boundaries`` finds by streamed radix
    selection on the key. Same copies as ``draw_copies`` on the whole source in memory."""

    def __init__(self, names: list[str], targets: list[float], tokens: list[float], mass: list[float],
                 seed: int, weighted: bool):
        self.names, self.seed, self.weighted = names, seed, weighted
        self.target = np.asarray(targets, dtype=np.float64)
        self.total = np.asarray(tokens, dtype=np.float64)
        self.mass = np.asarray(mass, dtype=np.float64)
        ok = (self.target > 0) & ((self.mass if weighted else self.total) > 0)
        self.ok = ok
        if weighted:
            self.full = np.zeros(len(names), dtype=np.int64)
            self.rest = np.zeros(len(names))  # after the floors: ``add_floors`` fills it
        else:
            self.full = np.where(ok, np.floor(self.target / np.where(ok, self.total, 1)), 0).astype(np.int64)
            self.rest = np.where(ok, self.target - self.full * self.total, 0.0)
        self.salt = [seed + MATERIALISE_SALT * (int(f) + 1) for f in self.full]
        self.boundary: dict[int, tuple | None] = {}

    def _columns(self, b):
        return (np.asarray(b.column(0).to_numpy(zero_copy_only=False), dtype=np.int64), b.column(1).to_pylist(),
                np.asarray(b.column(2).to_numpy(zero_copy_only=False), dtype=np.float64),
                np.asarray(b.column(3).to_numpy(zero_copy_only=False), dtype=np.float64))

    def floors(self, codes, tokens, weights) -> tuple[np.ndarray, np.ndarray]:
        """Copies every document gets for sure, and the fraction left (weighted)."""
        if not self.weighted:
            return self.full[codes], np.zeros(len(codes))
        ok = self.ok[codes]
        expected = np.where(ok, self.target[codes] * weights / np.where(ok, self.mass[codes], 1), 0.0)
        f = np.floor(expected)
        return f.astype(np.int64), expected - f

    def keys(self, codes, ids, frac) -> tuple[np.ndarray, np.ndarray]:
        """The partial pass's order key of each row (unsigned, smaller first) and whether the row
        takes part at all."""
        if not self.weighted:
            keys = np.fromiter((stable_hash(i, self.salt[c]) for i, c in zip(ids, codes.tolist())),
                               dtype=np.uint64, count=len(ids))
            return keys, self.rest[codes] > 0
        h = np.fromiter((stable_hash(i, self.seed + MATERIALISE_SALT) for i in ids), dtype=np.uint64, count=len(ids))
        u = (h.astype(np.float64) + 0.5) / HASH_SPACE
        live = frac > 0
        race = np.where(live, -np.log(u) / np.maximum(frac, 1e-300), np.inf) + 0.0
        return race.view(np.uint64), live & (self.rest[codes] > 0)

    def add_floors(self, batches) -> None:
        """Weighted: the token total of the sure copies per source, hence the rest (one pass)."""
        if not self.weighted:
            return
        sure = np.zeros(len(self.names))
        for b in batches():
            codes, _, tokens, weights = self._columns(b)
            f, _ = self.floors(codes, tokens, weights)
            sure += np.bincount(codes, weights=f * tokens, minlength=len(self.names))
        self.rest = np.where(self.ok, self.target - sure, 0.0)

    def find_boundaries(self, batches, sizes) -> int:
        """The last row of each source's partial pass, by ``radix.boundaries`` on the key weighted by
        tokens: at most COLLECT rows of one source gathered and sorted by (key, id, position), at most
        COLLECT_TOTAL in one pass whatever the number of sources. Memory: 2 x 256 counters per
        source and the gathered buckets. Returns the passes made."""
        def rows(b) -> Rows:
            codes, ids, tokens, weights = self._columns(b)
            _, frac = self.floors(codes, tokens, weights)
            keys, live = self.keys(codes, ids, frac)
            id_column = b.column(1)
            return Rows(np.where(live, codes, -1), (keys,), tokens,
                        payload=lambda idx, at: (idx + at, id_column.take(pa.array(idx))))

        start = {c: (float(self.rest[c]), int(sizes[c])) for c in range(len(self.names)) if self.rest[c] > 0}
        try:
            found, passes = boundaries(batches, rows, lambda _c, parts, rem: _last_drawn(parts, rem), digits=8,
                                       collect=COLLECT, collect_total=COLLECT_TOTAL, start=start)
        except StreamChanged as e:
            raise RuntimeError(f"materialise: the spill changed during the selection of source "
                               f"{self.names[e.code]!r}") from e
        self.boundary = {c: found.get(c) for c in range(len(self.names))}
        return passes

    def copies(self, b, position: int) -> np.ndarray:
        """Copies of each row of a spill batch that starts at row ``position``."""
        codes, ids, tokens, weights = self._columns(b)
        f, frac = self.floors(codes, tokens, weights)
        keys, live = self.keys(codes, ids, frac)
        extra = np.zeros(len(codes), dtype=bool)
        for c, rows in rows_by_code(np.where(live, codes, -1)):
            bound = self.boundary.get(c)
            if bound is None:
                extra[rows] = True
                continue
            bk = np.uint64(bound[0])
            extra[rows[keys[rows] < bk]] = True
            for r in rows[keys[rows] == bk].tolist():
                extra[r] = (ids[r], position + r) <= (bound[1], bound[2])
        return f + extra


def _last_drawn(parts: list, rem: float) -> tuple | None:
    """(key, id, position) of the row whose tokens, in (key, id, position) order, bring the running
    total to ``rem``; None when all of them stay below it. ``parts``: the gathered rows, whose
    payload is (positions, ids as an Arrow string array)."""
    if not parts:
        return None
    (keys,), tokens, payloads, _ = gathered(parts)
    pos = np.concatenate([p[0] for p in payloads])
    order = np.lexsort((pos, keys))
    keys, pos, tokens = keys[order], pos[order], tokens[order]
    j = int(np.searchsorted(np.cumsum(tokens), rem))
    if j >= len(keys):
        return None
    lo, hi = int(np.searchsorted(keys, keys[j])), int(np.searchsorted(keys, keys[j], side="right"))
    if hi - lo == 1:
        return int(keys[j]), _id_at(payloads, order[j]), int(pos[j])
    # rows tied on the key (the same id twice, or a 64-bit hash collision): by id, then position
    acc = float(tokens[:lo].sum())
    for doc_id, p, t, i in sorted((_id_at(payloads, order[i]), int(pos[i]), float(tokens[i]), i)
                                  for i in range(lo, hi)):
        acc += t
        if acc >= rem:
            return int(keys[i]), doc_id, p
    return None


def _id_at(payloads: list, i: int) -> str:
    for positions, ids in payloads:
        if i < len(positions):
            return ids[int(i)].as_py()
        i -= len(positions)
    raise IndexError(i)


@dataclass
class _Mix:
    """What the three passes of ``materialise`` share: the plan's sources, the spill of per-document
    (source, id, tokens, weight) rows, the totals per source, and the realised counts."""
    names: list
    out: str
    seed: int
    tmp: str = ""
    spill_path: str = ""
    docs: np.ndarray = None
    unique: np.ndarray = None
    largest: np.ndarray = None
    mass: np.ndarray = None
    nbytes: int = 0  # an estimate of the bytes of one copy of every document, to size the buckets
    unplanned: int = 0
    tokenised: int = 0
    buckets: int = 0
    bucket_bytes: np.ndarray = None
    copies_total: np.ndarray = None
    drawn: np.ndarray = None
    realised: np.ndarray = None
    shards: int = 0

    def __post_init__(self):
        n = len(self.names)
        self.code_of = {name: i for i, name in enumerate(self.names)}
        self.docs, self.copies_total, self.drawn = (np.zeros(n, dtype=np.int64) for _ in range(3))
        self.unique, self.largest, self.mass, self.realised = (np.zeros(n) for _ in range(4))
        self.tmp = os.path.join(self.out, "_work")
        self.spill_path = os.path.join(self.tmp, "documents.parquet")

    def batches(self):
        return _log_batches(self.spill_path)


def materialise(plan: Plan, documents, out: str, tokenize, seed: int = 0, shard_bytes: int = 256 * 2**20,
                progress=None, token_log: str | None = None, weight_field: str | None = None) -> dict:
    """``documents``: a callable returning a fresh iterator of (source, Document), the same
    documents in the same order on every call; it is called twice. ``token_log``: a
    ``TokenLog`` file of (source, id, tokens) the count pass wrote while reading the same
    documents in the same order; documents found there in turn are not tokenised again.
    ``weight_field``: a metadata field of per-document weights (e.g. ``distill_weight``): inside
    each source, copies follow the weights (``draw_copies``); a document without the field has
    weight 0. Writes OUT/part-NNNNN.parquet and OUT/mixture.json (the realised ledger).

    Three passes over one ``_Mix``: the exact token counts to a spill, each copy to a bucket by its key,
    each bucket sorted into output shards. Memory: a batch of documents, per-source counters and one
    boundary bucket (``_Draw``); the per-document rows go to the spill under OUT, read back in batches."""
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
    mix = _Mix([r.name for r in plan.rows], out, seed)
    _count_pass(mix, documents, tokenize, token_log, weight_field)
    draw = _Draw(mix.names, [r.train_tokens for r in plan.rows], mix.unique.tolist(), mix.mass.tolist(), seed,
                 weighted=bool(weight_field))
    draw.add_floors(mix.batches)
    passes = draw.find_boundaries(mix.batches, mix.docs)
    expected = sum(r.train_tokens for c, r in enumerate(plan.rows) if draw.ok[c])
    mix.buckets = _bucket_count(mix.nbytes * expected / max(float(mix.unique.sum()), 1.0), shard_bytes)
    _bucket_pass(mix, documents, draw)
    _shard_pass(mix, shard_bytes, progress)
    shutil.rmtree(mix.tmp)
    result = _ledger(mix, plan, fingerprint, passes)
    write_json_atomic(ledger_path, result, indent=1)
    return result


def _count_pass(mix: _Mix, documents, tokenize, token_log: str | None, weight_field: str | None) -> None:
    """Pass 1: exact token counts (from the count pass's log where it has them) to the spill, in
    stream order, and the totals per source."""
    spill = TokenLog(mix.spill_path, SPILL_SCHEMA)
    known = _log_rows(token_log)
    ahead = next(known, None)
    pending: list = []  # (code, id, weight, tokens or None, text): in stream order
    planned_docs = 0

    def flush():
        todo = [p[4] for p in pending if p[3] is None]
        mix.tokenised += len(todo)
        counted = iter(tokenize(todo)) if todo else iter(())
        for c, doc_id, w, n, _ in pending:
            n = len(next(counted)) if n is None else n
            spill.add(c, doc_id, n, w)
            mix.docs[c] += 1
            mix.unique[c] += n
            mix.largest[c] = max(mix.largest[c], n)
            mix.mass[c] += w * n
        pending.clear()

    for name, doc in documents():
        n = None
        if ahead is not None and ahead[0] == name and ahead[1] == doc.id:
            n = ahead[2]
            ahead = next(known, None)
        c = mix.code_of.get(name)
        if c is None:
            mix.unplanned += 1
            continue
        mix.nbytes += len(doc.text) + 2 * len(doc.id) + 48
        if planned_docs % 16 == 0:  # the metadata column's size, measured on every 16th document
            mix.nbytes += 16 * len(_metadata_json(doc))
        planned_docs += 1
        w = 1.0
        if weight_field:
            w = _weight(doc, name, weight_field)
        pending.append((c, doc.id, w, n, doc.text if n is None else None))
        if len(pending) >= 512:
            flush()
    flush()
    spill.close()


def _bucket_pass(mix: _Mix, documents, draw: "_Draw") -> None:
    """Pass 2: each copy to a bucket by its key, the spill read alongside the documents. Buckets are
    Arrow IPC streams (lz4): nothing of what was written stays in memory, whatever the number of
    buckets and batches (a Parquet writer keeps every row group's metadata until it closes)."""
    buckets, seed, names, code_of = mix.buckets, mix.seed, mix.names, mix.code_of
    _allow_open_files(buckets + 64)
    ipc = pa.ipc.IpcWriteOptions(compression="lz4")
    sinks = [pa.OSFile(os.path.join(mix.tmp, f"{b:05d}.arrows"), "wb") for b in range(buckets)]
    writers = [pa.ipc.new_stream(sink, SCHEMA, options=ipc) for sink in sinks]
    queued: list[list[dict]] = [[] for _ in range(buckets)]
    queued_size = np.zeros(buckets, dtype=np.int64)  # bytes waiting per bucket (text, metadata, ids, the row)
    mix.bucket_bytes = np.zeros(buckets, dtype=np.int64)  # bytes written per bucket, in memory's terms

    def write(b: int):
        if queued[b]:
            t = pa.Table.from_pylist(queued[b], schema=SCHEMA)
            writers[b].write_table(t)
            mix.bucket_bytes[b] += t.nbytes
            queued[b].clear()
            queued_size[b] = 0

    rows = _spill_rows(mix.batches, draw)
    for name, doc in documents():
        if name not in code_of:
            continue
        row = next(rows, None)
        if row is None or row[1] != doc.id or row[0] != code_of[name]:
            raise RuntimeError(f"materialise: the documents changed between its two passes: expected "
                               f"{'the end' if row is None else repr(row[1])} of source "
                               f"{names[row[0]] if row else name!r}, read {doc.id!r} of {name!r}")
        c, _, n_tokens, k = row
        if not k:
            continue
        mix.copies_total[c] += k
        mix.drawn[c] += 1
        mix.realised[c] += k * n_tokens
        meta = _metadata_json(doc)
        size = len(doc.text) + len(meta) + 3 * len(doc.id) + 400
        for epoch in range(k):
            key = stable_hash(f"{name}\x00{doc.id}\x00{epoch}", seed)
            b = key * buckets // HASH_SPACE
            queued[b].append({"id": f"{doc.id}#{epoch}", "doc_id": doc.id, "source": name, "epoch": epoch,
                              "text": doc.text, "tokens": n_tokens, "metadata": meta, "key": key})
            queued_size[b] += size
            if len(queued[b]) >= 1024 or queued_size[b] >= 2**20:
                write(b)
        if queued_size.sum() > QUEUED_BYTES:  # many buckets: the fullest ones go out first
            for b in np.argsort(-queued_size)[: max(1, buckets // 4)].tolist():
                write(b)
    if next(rows, None) is not None:
        raise RuntimeError("materialise: the documents changed between its two passes: fewer documents the "
                           "second time")
    for b in range(buckets):
        write(b)
        writers[b].close()
        sinks[b].close()


def _shard_pass(mix: _Mix, shard_bytes: int, progress) -> None:
    """Pass 3: each bucket sorted by key into output shards. A bucket larger than shard_bytes (the
    estimate was short) is cut into equal ranges of its keys, each read back on its own, so memory
    stays one shard whatever the estimate; the sorted rows are taken and written a slice at a time
    rather than as a second, sorted copy."""
    buckets = mix.buckets
    for b in range(buckets):
        path = os.path.join(mix.tmp, f"{b:05d}.arrows")
        parts = max(1, math.ceil(int(mix.bucket_bytes[b]) / shard_bytes))
        # bucket b holds the keys k with k * buckets // 2**64 == b: from ceil(b 2**64 / B) to ceil((b + 1) 2**64 / B) - 1
        lo, hi = -(-b * HASH_SPACE // buckets), -(-(b + 1) * HASH_SPACE // buckets)
        for p in range(parts):
            a, z = lo + (hi - lo) * p // parts, lo + (hi - lo) * (p + 1) // parts
            t = _read_key_range(path, None if parts == 1 else (a, z))
            order = pa.array(np.argsort(t.column("key").to_numpy(), kind="stable"))
            with pq.ParquetWriter(os.path.join(mix.out, f"part-{mix.shards:05d}.parquet"), SCHEMA) as w:
                for i in range(0, len(order), 131_072):
                    w.write_table(t.take(order[i:i + 131_072]))
            mix.shards += 1
            del t, order
        if progress:
            progress(b + 1, buckets)


def _ledger(mix: _Mix, plan: Plan, fingerprint: str, passes: int) -> dict:
    """The realised ledger (mixture.json): per source, what was planned and what was written."""
    stats = {}
    for c, row in enumerate(plan.rows):
        t = float(mix.unique[c])
        stats[row.name] = {"documents": int(mix.docs[c]), "unique_tokens": int(t), "planned_tokens": row.train_tokens,
                           "realised_tokens": int(mix.realised[c]), "copies": int(mix.copies_total[c]),
                           "documents_drawn": int(mix.drawn[c]), "planned_epochs": row.epochs,
                           "realised_epochs": float(mix.realised[c] / t) if t else 0.0,
                           "tolerance_tokens": int(mix.largest[c])}
        if mix.docs[c] == 0 and row.train_tokens > 0:
            stats[row.name]["error"] = "no documents for this source"
    ok = all(abs(s["realised_tokens"] - s["planned_tokens"]) <= max(s["tolerance_tokens"], 1) for s in stats.values()
             if "error" not in s)
    return {"fingerprint": fingerprint, "plan_budget_tokens": plan.budget_tokens,
            "realised_tokens": int(mix.realised.sum()), "sources": stats, "shards": mix.shards, "seed": mix.seed,
            "within_tolerance": bool(ok), "documents_outside_the_plan": mix.unplanned, "selection_passes": passes,
            "tokenised_here": mix.tokenised,
            "tolerance": "per source, |realised - planned| <= its largest document's tokens"}


def _read_key_range(path: str, keys: tuple[int, int] | None) -> pa.Table:
    """A bucket's rows, all of them or those with a <= key < z, read a record batch at a time."""
    with pa.OSFile(path) as f:
        reader = pa.ipc.open_stream(f)
        if keys is None:
            return reader.read_all()
        a, z = pa.scalar(keys[0], pa.uint64()), pa.scalar(keys[1] - 1, pa.uint64())
        parts = []
        for batch in reader:
            k = batch.column("key")
            parts.append(batch.filter(pc.and_(pc.greater_equal(k, a), pc.less_equal(k, z))))
        return pa.Table.from_batches(parts, schema=SCHEMA)


def _allow_open_files(n: int) -> None:
    """One open file per bucket in pass 2: raise the soft limit towards the hard one when needed."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n if hard == resource.RLIM_INFINITY else min(n, hard), hard))


def _bucket_count(total_bytes: float, shard_bytes: int) -> int:
    return max(1, math.ceil(total_bytes / shard_bytes))


def _metadata_json(doc) -> str:
    return json.dumps({k: v for k, v in doc.metadata.items() if not k.startswith("__")}, default=str)


def _weight(doc, name: str, field: str) -> float:
    value = doc.metadata.get(field)
    try:
        w = 0.0 if value is None else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"document {doc.id!r} of source {name!r}: {field} = {value!r} is not a number") from None
    if not (w >= 0 and math.isfinite(w)):
        raise ValueError(f"document {doc.id!r} of source {name!r}: {field} = {value!r} (weights must be finite "
                         f"and >= 0)")
    return w


def _spill_rows(batches, draw: _Draw):
    """(source code, id, tokens, copies) of every spill row, in order, a batch at a time."""
    position = 0
    for b in batches():
        k = draw.copies(b, position)
        codes = b.column(0).to_pylist()
        ids = b.column(1).to_pylist()
        tokens = b.column(2).to_pylist()
        yield from zip(codes, ids, tokens, k.tolist())
        position += len(ids)


def read_mixture(out: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(glob.glob(os.path.join(out, "part-*.parquet")))])
