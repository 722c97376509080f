"""Turn a raw record (a dict from JSON, a Parquet row, a dataset row) into a Document, or a Reject.

The rules are the same for every reader:
- the record must be an object with a non-empty string ``text`` of at most ``max_doc_bytes``;
- ``id`` is a string or an integer; when absent it is ``SOURCE:LINE`` (stable across runs);
- an id seen earlier in the same task is a duplicate and is rejected (the first one wins);
- ``metadata``, when present, is an object (or a JSON string of one); every other key is
  folded into metadata, as datatrove's readers do.
"""

from __future__ import annotations

import numpy as np
import orjson
import xxhash
from datatrove.data import Document

from textcurate.io.rejects import Reject, preview_of


def _preview_obj(data) -> str:
    try:
        return preview_of(orjson.dumps(data, default=str))
    except (TypeError, orjson.JSONEncodeError):  # e.g. nesting deeper than orjson writes
        return preview_of(repr(data)[:1000])

DEFAULT_MAX_DOC_BYTES = 10_000_000


def stable_hash(text: str, seed: int = 0) -> int:
    """xxhash64 of a string: the same on every machine and run (ids, sampling, tie-breaks)."""
    return xxhash.xxh64_intdigest(text.encode("utf-8", "surrogatepass"), seed=seed)


def hash_share(text: str, salt: int = 0) -> float:
    """A stable pseudo-uniform number in [0, 1) for a string: held-out splits by id."""
    return stable_hash(text, salt) / 2**64


def utf8_len(text: str) -> int:
    # isascii() is a fast C scan; encoding is only needed for non-ASCII text
    return len(text) if text.isascii() else len(text.encode("utf-8", errors="surrogatepass"))


class IdHashes:
    """An exact set of 64-bit id hashes in about 8 bytes each, where a Python set of ints costs
    about 70: the newest hashes in a small set, the older ones frozen into sorted numpy runs that
    merge as they grow (their sizes halve from the oldest), with a bitmap of 8 bits a hash (at
    most 128 MB) in front of the runs so that a new hash (the usual case) is told apart in one byte
    lookup. Adding N hashes costs O(N log N) in all; a reader's task of 10M documents holds about
    100 MB instead of 700."""

    RECENT = 1 << 16
    MAX_BITS = 1 << 30

    def __init__(self):
        self.recent: set[int] = set()
        self.runs: list = []
        self.bits: bytearray | None = None
        self.nbits = 0

    def __len__(self) -> int:
        return len(self.recent) + sum(len(r) for r in self.runs)

    def add(self, h: int) -> bool:
        """Add ``h``; False when it was there already."""
        if h in self.recent:
            return False
        if self.bits is not None:
            i = h & (self.nbits - 1)
            if self.bits[i >> 3] >> (i & 7) & 1:
                x = np.uint64(h)
                for r in self.runs:
                    j = int(r.searchsorted(x))
                    if j < len(r) and r[j] == x:
                        return False
        self.recent.add(h)
        if len(self.recent) >= self.RECENT:
            self._freeze()
        return True

    def _freeze(self) -> None:
        run = np.fromiter(self.recent, dtype=np.uint64, count=len(self.recent))
        run.sort()
        self.recent = set()
        self.runs.append(run)
        total = sum(len(r) for r in self.runs)
        nbits = min(self.MAX_BITS, max(1 << 20, 1 << (8 * total - 1).bit_length()))
        if nbits != self.nbits:  # grown: every run's bits again
            self.bits, self.nbits = bytearray(nbits // 8), nbits
            marked = self.runs
        else:
            marked = [run]
        view = np.frombuffer(self.bits, dtype=np.uint8)
        for r in marked:
            idx = r & np.uint64(self.nbits - 1)
            np.bitwise_or.at(view, (idx >> np.uint64(3)).astype(np.int64), (1 << (idx & np.uint64(7))).astype(np.uint8))
        del view
        while len(self.runs) > 1 and 2 * len(self.runs[-1]) >= len(self.runs[-2]):
            last = self.runs.pop()
            merged = np.concatenate([self.runs.pop(), last])
            del last
            merged.sort()
            self.runs.append(merged)


class RecordValidator:
    def __init__(self, text_key: str = "text", id_key: str = "id", max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES):
        self.text_key = text_key
        self.id_key = id_key
        self.max_doc_bytes = max_doc_bytes
        self._seen = IdHashes()

    def reset(self) -> None:
        self._seen = IdHashes()

    def check_id(self, doc_id: str, file: str, line: int | None, preview: str) -> Reject | None:
        if not self._seen.add(stable_hash(doc_id)):
            return Reject(file, line, self.id_key, f"duplicate id {doc_id!r}: an earlier record of this task has it",
                          id=doc_id, preview=preview)
        return None

    def to_document(self, data, file: str, line: int | None, default_id: str, raw_size: int | None = None,
                    ) -> Document | Reject:
        if not isinstance(data, dict):
            return Reject(file, line, "<record>", f"expected an object, got {type(data).__name__}",
                          preview=_preview_obj(data), size_bytes=raw_size)
        text = data.get(self.text_key)
        if self.text_key not in data:
            return Reject(file, line, self.text_key, f"missing (keys present: {sorted(data)[:10]})",
                          preview=_preview_obj(data), size_bytes=raw_size)
        if not isinstance(text, str):
            return Reject(file, line, self.text_key, f"must be a string, got {type(text).__name__}",
                          preview=preview_of(str(text)), size_bytes=raw_size)
        n_bytes = utf8_len(text)
        if n_bytes > self.max_doc_bytes:
            return Reject(file, line, self.text_key,
                          f"too large: {n_bytes:,} bytes > max_doc_bytes {self.max_doc_bytes:,}",
                          preview=preview_of(text), size_bytes=n_bytes)
        if not text.strip():
            return Reject(file, line, self.text_key, "empty text", preview=preview_of(text), size_bytes=n_bytes)
        doc_id = data.get(self.id_key, None) if self.id_key in data else default_id
        if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
            return Reject(file, line, self.id_key, f"must be a string or an integer, got {type(doc_id).__name__}",
                          preview=preview_of(text), size_bytes=n_bytes)
        doc_id = str(doc_id)
        if not doc_id:
            return Reject(file, line, self.id_key, "empty id", preview=preview_of(text), size_bytes=n_bytes)
        metadata = data.get("metadata", {})
        if isinstance(metadata, str):
            try:
                metadata = orjson.loads(metadata)
            except orjson.JSONDecodeError:
                pass
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            return Reject(file, line, "metadata", f"must be an object, got {type(metadata).__name__}",
                          id=doc_id, preview=preview_of(text), size_bytes=n_bytes)
        try:  # what cannot be written back out is refused here, not by the writer at the end
            orjson.dumps(metadata, default=_lenient)
        except (TypeError, orjson.JSONEncodeError) as e:
            return Reject(file, line, "metadata", f"cannot be stored as JSON: {e}", id=doc_id,
                          preview=preview_of(text), size_bytes=n_bytes)
        dup = self.check_id(doc_id, file, line, preview_of(text))
        if dup is not None:
            dup.size_bytes = n_bytes
            return dup
        extra = {k: v for k, v in data.items() if k not in (self.text_key, self.id_key, "metadata", "media")}
        metadata = {**metadata, **extra} if extra else dict(metadata)
        metadata.setdefault("source_file", file)
        return Document(text=text, id=doc_id, metadata=metadata)


def _lenient(obj):
    return str(obj)  # the writer converts other types; only structure errors matter here


def explain_bad_json_line(raw: bytes, file: str, line: int) -> Reject:
    """Why orjson refused a line: bad UTF-8 (and in which field), or bad JSON."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        field = "<record>"
        try:  # find the field that holds the bad bytes, for a more useful message
            parsed = orjson.loads(raw.decode("utf-8", errors="replace"))
            if isinstance(parsed, dict):
                field = next((k for k, v in parsed.items() if isinstance(v, str) and "\ufffd" in v), field)
        except orjson.JSONDecodeError:
            pass
        return Reject(file, line, field, f"invalid UTF-8 at byte {e.start} of the line", preview=preview_of(raw),
                      size_bytes=len(raw))
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return Reject(file, line, "<record>", f"invalid JSON: {e}", preview=preview_of(raw), size_bytes=len(raw))
    return Reject(file, line, "<record>", "unreadable line", preview=preview_of(raw), size_bytes=len(raw))
