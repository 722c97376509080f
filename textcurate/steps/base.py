"""The scorer base: batched scoring, metadata + attribute table, resume inside a task.

A subclass declares its output ``columns`` ({name: arrow type}) and implements
``score(docs) -> list[dict | Reject]``. The base does the rest: batches, cache of rows
scored by a crashed attempt, checkpoints every ``checkpoint_every`` new rows, the
attribute table, counts (``scored``, ``cached``, ``rejected``) and timing.
"""

from __future__ import annotations

import os
from abc import abstractmethod

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

import pyarrow as pa

from textcurate.io.attributes import AttributeWriter, arrow_schema
from textcurate.io.files import batched
from textcurate.io.rejects import Reject, RejectSink


class Scorer(PipelineStep):
    type = "🔢 - SCORER"
    name = "scorer"
    columns: dict[str, str] = {}
    default_batch_size = 256
    default_checkpoint_every = 1024

    def __init__(self, *, attributes_folder: str | None = None, rejects_folder: str | None = None,
                 batch_size: int | None = None, checkpoint_every: int | None = None, step_name: str | None = None):
        super().__init__()
        self.step_name = step_name or self.name
        self.attributes_folder = attributes_folder
        self.rejects_folder = rejects_folder
        self.batch_size = batch_size or self.default_batch_size
        self.checkpoint_every = checkpoint_every or self.default_checkpoint_every

    @abstractmethod
    def score(self, docs: list[Document]) -> list[dict | Reject]:
        """One dict of column values (or a Reject) per document, in order."""

    def _as_stored(self, results: list) -> list:
        """Rows as the attribute table stores them (float32 stays float32): a value read back from
        the cache on resume must equal the one a fresh run puts in metadata, or thresholds drift."""
        ok = [r for r in results if not isinstance(r, Reject)]
        if not ok or not self.columns:
            return results
        cast = iter(pa.Table.from_pylist(ok, schema=arrow_schema(self.columns).remove(0)).to_pylist())
        return [r if isinstance(r, Reject) else next(cast) for r in results]

    def to_metadata(self, row: dict) -> dict:
        """What of a row goes into the document's metadata (all of it, by default)."""
        return row

    def setup(self, rank: int) -> None:
        """Load models etc. Called once per task, in the worker, before the first batch."""

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data is None:
            return
        self.setup(rank)
        store = None
        cache = None
        if self.attributes_folder:
            store = AttributeWriter(os.path.join(self.attributes_folder, self.step_name), rank, self.columns,
                                    self.checkpoint_every)
            cache = store.load_cache()
        rejects = RejectSink(self.rejects_folder, self.step_name, rank)
        data = iter(data)
        try:
            for batch in batched(data, self.batch_size):
                cached = cache.lookup([d.id for d in batch]) if cache is not None and len(cache) else \
                    [None] * len(batch)
                todo = [d for d, c in zip(batch, cached) if c is None]
                if todo:
                    with self.track_time("batch"):
                        results = self.score(todo)
                    if len(results) != len(todo):
                        raise RuntimeError(f"{type(self).__name__}.score returned {len(results)} rows "
                                           f"for {len(todo)} documents")
                    fresh = dict(zip((d.id for d in todo), self._as_stored(results)))
                    self.stat_update("scored", value=len(todo))
                else:
                    fresh = {}
                if len(todo) < len(batch):
                    self.stat_update("cached", value=len(batch) - len(todo))
                for doc, old in zip(batch, cached):
                    is_new = old is None
                    row = fresh[doc.id] if is_new else old
                    if isinstance(row, Reject):
                        row.id = doc.id
                        rejects.add(row)
                        self.stat_update("rejected")
                        continue
                    doc.metadata.update(self.to_metadata(row))
                    if store is not None:
                        store.add(doc.id, row, new=is_new)
                    yield doc
            if store is not None:
                store.close()
        finally:
            rejects.close()
