"""Exact boundaries over a stream of rows, by radix selection: the one selection under select,
prune, influence (``top_cut``) and the mixture's weighted draw.

A *boundary* is, for each group of rows, the row at which the running weight of the group's
rows, taken in key order (smaller first), first reaches the group's quota: with every weight 1,
the quota-th row (an exact top-k); with token counts as weights, the row that fills a token
budget. Every row up to the boundary is in, every row after it is out.

The rows are never held: ``batches()`` is called once per pass and read again. A pass counts one
8-bit digit of the key for the rows still tied with the boundary (those whose digits so far are
the boundary's), per group; the bucket that holds the quota fixes that digit. When a group's
bucket is small enough (``collect`` rows), one more pass gathers it and ``finish`` picks the
boundary among the gathered rows. Memory: 2 x 256 counters per group and the gathered buckets,
at most ``collect_total`` rows in one pass whatever the number of groups (a group over that
budget counts one more digit instead, and the first small group is always gathered).

Keys are tuples of unsigned 64-bit words, most significant first: (score's order bits, id-hash)
for the select step, (seeded hash,) for the mixture's draw. ``order_key`` turns float scores
into words whose unsigned order is the scores' order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

COLLECT = 1 << 18  # a boundary bucket this small is gathered and sorted instead of split again


@dataclass
class Rows:
    """One batch, as the selection reads it."""
    codes: np.ndarray  # int64 group of each row; -1 for a row that takes no part
    words: tuple[np.ndarray, ...]  # the key: uint64 words, most significant first; smaller is earlier
    weights: np.ndarray | None = None  # None: every row weighs 1 (an exact count)
    payload: Callable[[np.ndarray, int], Any] | None = None  # what ``finish`` needs of gathered rows:
    # called with the rows' indices in the batch and the position of the batch's first row in the pass


@dataclass
class _Group:
    rem: float  # weight still to take inside the boundary's bucket
    rows: int | None  # rows in that bucket (None before the first count)
    j: int = 0  # digits fixed
    prefix: int = 0  # their value, most significant first


class StreamChanged(RuntimeError):
    """The rows differed between two passes over the same stream."""

    def __init__(self, code: int):
        super().__init__(f"radix selection: the rows of group {code} changed between passes")
        self.code = code


def boundaries(batches: Callable[[], Iterable], rows: Callable[[Any], Rows], finish: Callable[[int, list, float], Any],
               *, digits: int, collect: int, collect_total: int | None = None,
               quota: Callable[[int, int, float], float] | None = None,
               start: dict[int, tuple[float, int]] | None = None) -> tuple[dict[int, Any], int]:
    """The boundary of every group, and the passes made.

    ``digits``: 8 per key word. The quotas come either from ``start`` (group -> (quota, rows at
    most)), known before any pass, or from ``quota(group, rows, total weight)``, asked after a
    first pass has counted every group (a group first seen then). A group whose quota is 0, or
    whose rows never reach it, gets None. ``finish(group, parts, rem)`` gets the gathered rows as
    a list of (words, weights, payload) per batch (``gathered`` joins them) and the weight still
    to take among them; its return is the group's boundary. Raises ``StreamChanged`` when a
    bucket chosen a pass ago no longer holds the quota."""
    results: dict[int, Any] = {}
    counting = start is None
    state = {} if counting else {c: _Group(rem=q, rows=n) for c, (q, n) in start.items() if q > 0}
    if not counting:
        results.update({c: None for c, (q, _) in start.items() if q <= 0})
    passes = 0
    while counting or state:
        gather = set() if counting else _to_gather(state, digits, collect, collect_total)
        hist: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        parts: dict[int, list] = {c: [] for c in gather}
        position = 0
        passes += 1
        for b in batches():
            r = rows(b)
            for c, idx in rows_by_code(r.codes, None if counting else state):
                g = state.get(c)
                if g is not None and g.j:
                    idx = idx[_matches(r.words, idx, g.prefix, g.j)]
                if not len(idx):
                    continue
                w = None if r.weights is None else r.weights[idx]
                if c in gather:
                    parts[c].append((tuple(x[idx] for x in r.words), w, r.payload(idx, position) if r.payload else None))
                    continue
                d = _digit(r.words, idx, g.j if g is not None else 0)
                h = hist.setdefault(c, (np.zeros(256, np.int64 if w is None else np.float64), np.zeros(256, np.int64)))
                counts = np.bincount(d, minlength=256)
                h[0][:] += counts if w is None else np.bincount(d, weights=w, minlength=256)
                h[1][:] += counts
            position += len(r.codes)
        if counting:
            for c in sorted(hist):
                q = quota(c, int(hist[c][1].sum()), float(hist[c][0].sum()))
                if q > 0:
                    state[c] = _Group(rem=q, rows=None)
                else:
                    results[c] = None
            counting = False
        for c in list(state):
            g = state[c]
            if c in gather:
                results[c] = finish(c, parts.pop(c), g.rem)
                del state[c]
                continue
            weight, count = hist.get(c, (np.zeros(256), np.zeros(256, np.int64)))
            cum = np.cumsum(weight)
            d = int(np.searchsorted(cum, g.rem))  # the bucket that holds the rem-th unit of weight
            if d >= 256:
                if g.j:  # the bucket chosen a pass ago held at least rem: it cannot have shrunk
                    raise StreamChanged(c)
                results[c] = None  # the group's whole weight stays below its quota: every row is in
                del state[c]
                continue
            g.rem -= cum[d - 1] if d else 0
            g.prefix, g.j, g.rows = (g.prefix << 8) | d, g.j + 1, int(count[d])
    return results, passes


def gathered(parts: list) -> tuple[tuple[np.ndarray, ...], np.ndarray | None, list, np.ndarray]:
    """The rows ``finish`` got, joined: (words, weights, payloads per batch, the order of the rows by
    key)."""
    n_words = len(parts[0][0]) if parts else 1
    words = tuple(np.concatenate([p[0][i] for p in parts]) if parts else np.zeros(0, np.uint64)
                  for i in range(n_words))
    weights = None if not parts or parts[0][1] is None else np.concatenate([p[1] for p in parts])
    return words, weights, [p[2] for p in parts], np.lexsort(words[::-1])


def _to_gather(state: dict[int, _Group], digits: int, collect: int, collect_total: int | None) -> set[int]:
    """The groups whose bucket the next pass gathers: every digit fixed, or small enough, smallest
    first within ``collect_total`` rows in all (but always at least one)."""
    out, budget = set(), collect_total
    for c in sorted(state, key=lambda c: (state[c].rows is None, state[c].rows or 0)):
        g = state[c]
        if g.rows is None:
            continue
        if g.j == digits or (g.rows <= collect and (budget is None or g.rows <= budget or not out)):
            out.add(c)
            if budget is not None:
                budget -= g.rows
    return out


def _digit(words: tuple[np.ndarray, ...], idx: np.ndarray, j: int) -> np.ndarray:
    """The j-th 8-bit digit (0 = most significant) of the rows' keys."""
    w = words[j // 8][idx]
    return ((w >> np.uint64(56 - 8 * (j % 8))) & np.uint64(0xFF)).astype(np.int64)


def _matches(words: tuple[np.ndarray, ...], idx: np.ndarray, prefix: int, j: int) -> np.ndarray:
    """Which of the rows have ``prefix`` as the first j digits of their key."""
    ok = np.ones(len(idx), dtype=bool)
    for i in range((j + 7) // 8):
        fixed = min(8, j - 8 * i)  # digits of word i that are fixed
        value = (prefix >> (8 * (j - 8 * i - fixed))) & ((1 << (8 * fixed)) - 1)
        ok &= (words[i][idx] >> np.uint64(64 - 8 * fixed)) == np.uint64(value) if fixed < 8 else \
            words[i][idx] == np.uint64(value)
    return ok


def rows_by_code(codes: np.ndarray, wanted=None) -> list[tuple[int, np.ndarray]]:
    """(group, its rows) of a batch, one sort for every group rather than a scan each; rows of code
    -1 never, and only the groups in ``wanted`` when given."""
    rows = np.flatnonzero(codes >= 0)
    if not len(rows):
        return []
    order = rows[np.argsort(codes[rows], kind="stable")]
    out = []
    for part in np.split(order, np.flatnonzero(np.diff(codes[order])) + 1):
        c = int(codes[part[0]])
        if wanted is None or c in wanted:
            out.append((c, part))
    return out


# --- the exact top-k of a score -------------------------------------------------------------------

def order_key(scores: np.ndarray, ascending: bool = False) -> np.ndarray:
    """uint64 words whose unsigned order is the scores' order, best first: the highest score first,
    or the lowest with ``ascending``. -0.0 is 0.0; NaN has no place (drop it first)."""
    bits = (np.asarray(scores, dtype=np.float64) + 0.0).view(np.uint64)
    key = np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))  # float order as unsigned order
    return ~key if not ascending else key


def top_cut(batches, k: int, ascending: bool = False, collect: int = COLLECT) -> dict | None:
    """The exact k-th best row of a stream, best meaning the highest score (the lowest with
    ``ascending``), then the smaller ``hash``. ``batches()`` yields record batches with columns
    ``hash`` (uint64: an id-hash, or a position for ties broken by order) and ``score`` (NaN never
    selected), again on every call. Returns ``{"score", "hash", "kept", "eligible"}``, or None when
    nothing is selected; ``in_top`` applies it."""
    if k <= 0:
        return None
    seen = {}

    def rows(b) -> Rows:
        hashes = np.asarray(b.column(b.schema.names.index("hash")).to_numpy(zero_copy_only=False), np.uint64)
        scores = np.asarray(b.column(b.schema.names.index("score")).to_numpy(zero_copy_only=False), np.float64)
        ok = ~np.isnan(scores)
        return Rows(np.where(ok, 0, -1), (order_key(np.where(ok, scores, 0.0), ascending), hashes),
                    payload=lambda idx, _: scores[idx] + 0.0)

    def quota(_c, n, _w):
        seen["n"] = n
        return min(k, n)

    cut, _ = boundaries(batches, rows, lambda _c, parts, rem: exact_last(parts, rem), digits=16, collect=collect,
                        quota=quota)
    found = cut.get(0)
    return None if found is None else {**found, "kept": min(k, seen["n"]), "eligible": seen["n"]}


def exact_last(parts: list, rem: float) -> dict:
    """``finish`` of an exact count whose key is (score's order, hash) and whose payload is the
    score: the rem-th row's score and hash."""
    words, _, payloads, order = gathered(parts)
    last = order[int(rem) - 1]
    return {"score": float(np.concatenate(payloads)[last]), "hash": int(words[1][last])}


def in_top(scores: np.ndarray, hashes: np.ndarray, cut: dict | None, ascending: bool = False) -> np.ndarray:
    """Which rows ``top_cut``'s boundary keeps: the boundary row and every row before it."""
    s = np.asarray(scores, dtype=np.float64) + 0.0  # -0.0 is 0.0, as in the fit
    if cut is None:
        return np.zeros(len(s), dtype=bool)
    better = s < cut["score"] if ascending else s > cut["score"]
    return better | ((s == cut["score"]) & (np.asarray(hashes, dtype=np.uint64) <= np.uint64(cut["hash"])))

