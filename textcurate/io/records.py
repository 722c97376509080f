"""Turn a raw record (a dict from JSON, a Parquet row, a dataset row) into a Document, or a Reject.

The rules are the same for every reader:
- the record must be an object with a non-empty string ``text`` of at most ``max_doc_bytes``;
- ``id`` is a string or an integer; when absent it is ``SOURCE:LINE`` (stable across runs);
- an id seen earlier in the same task is a duplicate and is rejected (the first one wins);
- ``metadata``, when present, is an object (or a JSON string of one); every other key is
  folded into metadata, as datatrove's readers do.
"""

from __future__ import annotations

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


class RecordValidator:
    def __init__(self, text_key: str = "text", id_key: str = "id", max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES):
        self.text_key = text_key
        self.id_key = id_key
        self.max_doc_bytes = max_doc_bytes
        self._seen: set[int] = set()

    def reset(self) -> None:
        self._seen = set()

    def check_id(self, doc_id: str, file: str, line: int | None, preview: str) -> Reject | None:
        h = stable_hash(doc_id)
        if h in self._seen:
            return Reject(file, line, self.id_key, f"duplicate id {doc_id!r}: an earlier record of this task has it",
                          id=doc_id, preview=preview)
        self._seen.add(h)
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
