"""Readers that never lose a record silently.

Each is a datatrove reader (sharding by file across tasks, ``limit``/``skip``, any fsspec
path), with one change: a record that cannot become a Document is written to
``rejects/`` with file, line and field, and counted. datatrove's own readers log a
warning and drop such records, or stop reading a file at its first bad byte.

Counting convention for the ledger: ``total`` = records seen, ``rejected`` = records
refused; every other record is yielded.
"""

from __future__ import annotations

import io
import os
from typing import Any, Iterable, Iterator

import orjson
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.readers.base import BaseDiskReader, BaseReader

from textcurate.io.records import DEFAULT_MAX_DOC_BYTES, RecordValidator, explain_bad_json_line, stable_hash
from textcurate.io.rejects import Reject, RejectSink
from textcurate.io.sampling import SAMPLE_SALT  # read_sample's hash


class _Validating:
    """Shared by the readers: a validator, a reject sink per task, the counts, and progress."""

    def progress_total(self, rank: int, world_size: int) -> tuple[int | None, str]:
        return None, "files"

    def progress_done(self) -> int:
        return int(self.stats["input_files"].total)

    rejects_folder: str | None
    validator: RecordValidator
    _rejects: RejectSink | None = None

    def _start_task(self, rank: int) -> None:
        self.validator.reset()
        self._files_done = self._rows_done = 0  # a worker may run several tasks with one reader
        self._rejects = RejectSink(self.rejects_folder, "read", rank)

    def _accept(self, result: Document | Reject) -> Document | None:
        self.stat_update("total")
        if isinstance(result, Reject):
            self._reject(result)
            return None
        return result

    def _reject(self, reject: Reject) -> None:
        self.stat_update("rejected")
        if self._rejects is not None:
            self._rejects.add(reject)

    def _end_task(self) -> None:
        if self._rejects is not None:
            self._rejects.close()

    def _skip_and_limit(self, units: Iterable[Iterable[Document]]) -> Iterator[Document]:
        """Apply ``skip`` and ``limit`` over lazily opened units (files, row blocks). Unlike
        datatrove's readers this stops *before* reading past the limit, so every record read is
        yielded, rejected, or skipped (which the ledger counts as dropped)."""
        yielded = skipped = 0
        for unit in units:
            for doc in unit:
                if skipped < self.skip:
                    skipped += 1
                    self.stat_update("skipped")
                    continue
                yield doc
                yielded += 1
                if self.limit != -1 and yielded >= self.limit:
                    return


class _DiskReader(_Validating, BaseDiskReader):
    def __init__(self, data_folder, rejects_folder: str | None = None, max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
                 text_key: str = "text", id_key: str = "id", glob_pattern: str | None = None, limit: int = -1,
                 skip: int = 0, recursive: bool = True, paths_file=None, default_metadata: dict | None = None):
        super().__init__(data_folder, paths_file=paths_file, limit=limit, skip=skip, text_key=text_key,
                         id_key=id_key, glob_pattern=glob_pattern, recursive=recursive,
                         default_metadata=default_metadata, add_file_path=False)
        self.rejects_folder = rejects_folder
        self.validator = RecordValidator(text_key, id_key, max_doc_bytes)

    def progress_total(self, rank: int, world_size: int) -> tuple[int | None, str]:
        try:
            return len(self.data_folder.get_shard(rank, world_size, recursive=self.recursive,
                                                  glob_pattern=self.glob_pattern)), "files"
        except Exception:
            return None, "files"

    def _finish(self, doc: Document | None) -> Document | None:
        if doc is not None and self.default_metadata:
            doc.metadata = self.default_metadata | doc.metadata
        return doc

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._start_task(rank)
        try:
            yield from super().run(data, rank, world_size)
        finally:
            self._end_task()

    def read_files_shard(self, shard: list[str]) -> DocumentsPipeline:
        return self._skip_and_limit(self._counted_file(f) for f in shard)

    def file_name(self, filepath: str) -> str:
        """How rejects and ``source_file`` name a file: its path under the input folder, or the input
        path itself when the input is one file (datatrove then lists it as "")."""
        return filepath or self.data_folder.path

    def _counted_file(self, filepath: str) -> Iterator[Document]:
        self.stat_update("input_files")
        yield from self.read_file(filepath)
        self._files_done = getattr(self, "_files_done", 0) + 1

    def progress_done(self) -> int:
        """Files read to their end: a file counts once it is finished, not once it is opened (a run
        of one large file would otherwise show every file read, and an ETA of the last batch)."""
        return getattr(self, "_files_done", 0)


class JsonlReader(_DiskReader):
    """JSON Lines, plain or compressed (.gz, .zst, .bz2, .xz: inferred from the name)."""

    name = "jsonl"

    def __init__(self, data_folder, compression: str | None = "infer", **kwargs):
        kwargs.setdefault("glob_pattern", None)
        super().__init__(data_folder, **kwargs)
        self.compression = compression
        # a line may hold its text JSON-escaped (up to 6 bytes per character) plus metadata
        self.max_line_bytes = 6 * self.validator.max_doc_bytes + (1 << 20)

    def read_file(self, filepath: str) -> Iterable[Document]:
        name = self.file_name(filepath)
        cap = self.max_line_bytes
        line_no = 0
        try:
            with self.data_folder.open(filepath, "rb", compression=self.compression) as raw_fh:
                fh = raw_fh if hasattr(raw_fh, "peek") else io.BufferedReader(raw_fh)
                while raw := fh.readline(cap):
                    line_no += 1
                    if len(raw) >= cap and not raw.endswith(b"\n"):
                        size = len(raw)
                        while chunk := fh.readline(cap):  # skip the rest of the record without holding it
                            size += len(chunk)
                            if chunk.endswith(b"\n"):
                                break
                        self._accept(Reject(name, line_no, "<record>",
                                            f"line too large: {size:,} bytes > {cap:,}", size_bytes=size))
                        continue
                    if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
                        raw = raw[3:]
                    if not raw.strip():
                        self.stat_update("blank_lines")
                        continue
                    try:
                        data = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        self._accept(explain_bad_json_line(raw, name, line_no))
                        continue
                    try:
                        result = self.validator.to_document(data, name, line_no, f"{name}:{line_no}",
                                                            len(raw))
                    except Exception as e:  # one odd record must not end the file
                        result = Reject(name, line_no, "<record>", f"{type(e).__name__}: {e}",
                                        size_bytes=len(raw))
                    if (doc := self._finish(self._accept(result))) is not None:
                        yield doc
        except Exception as e:  # truncated gzip, corrupt zstd frame, unreadable file: the rest of it is lost
            if isinstance(e, GeneratorExit):
                raise
            self._accept(Reject(name, line_no + 1, "<file>",
                                f"unreadable after line {line_no}: {type(e).__name__}: {e}"))


class ParquetReader(_DiskReader):
    """Parquet files; the row number (1-based) stands for the line."""

    name = "parquet"

    def __init__(self, data_folder, batch_size: int = 1000, **kwargs):
        super().__init__(data_folder, **kwargs)
        self.batch_size = batch_size

    def progress_total(self, rank: int, world_size: int) -> tuple[int | None, str]:
        """Rows of the task's files, from their footers: progress moves inside a large file."""
        import pyarrow.parquet as pq

        try:
            total = 0
            for path in self.data_folder.get_shard(rank, world_size, recursive=self.recursive,
                                                   glob_pattern=self.glob_pattern):
                with self.data_folder.open(path, "rb") as fh:
                    total += pq.ParquetFile(fh).metadata.num_rows
            return total, "rows"
        except Exception:  # an unreadable file is rejected when it is read; no total meanwhile
            return None, "rows"

    def progress_done(self) -> int:
        return getattr(self, "_rows_done", 0)

    def read_file(self, filepath: str) -> Iterable[Document]:
        import pyarrow.parquet as pq

        name = self.file_name(filepath)
        row = 0
        try:
            with self.data_folder.open(filepath, "rb") as fh:
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=self.batch_size):
                    for data in batch.to_pylist():
                        row += 1
                        self._rows_done = getattr(self, "_rows_done", 0) + 1
                        result = self.validator.to_document(data, name, row, f"{name}:{row}")
                        if (doc := self._finish(self._accept(result))) is not None:
                            yield doc
        except Exception as e:
            if isinstance(e, GeneratorExit):
                raise
            self._accept(Reject(name, row + 1 if row else None, "<file>",
                                f"unreadable Parquet after row {row}: {type(e).__name__}: {e}"))


class HFDatasetReader(_Validating, BaseReader):
    """A Hugging Face ``datasets.Dataset``: in memory, a ``save_to_disk`` folder, or anything
    ``datasets.load_dataset`` takes (a local folder of data files, or a hub id when a hub is
    reachable). Each task reads a contiguous slice of the rows."""

    name = "hf_dataset"

    def __init__(self, dataset: Any, split: str | None = "train", rejects_folder: str | None = None,
                 max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES, text_key: str = "text", id_key: str = "id",
                 limit: int = -1, skip: int = 0, load_options: dict | None = None):
        super().__init__(limit=limit, skip=skip, text_key=text_key, id_key=id_key)
        self.dataset = dataset
        self.split = split
        self.load_options = load_options or {}
        self.rejects_folder = rejects_folder
        self.validator = RecordValidator(text_key, id_key, max_doc_bytes)

    def progress_total(self, rank: int, world_size: int) -> tuple[int | None, str]:
        return None, "rows"

    def progress_done(self) -> int:
        return int(self.stats["total"].total)

    def _load(self):
        import datasets

        ds = self.dataset
        if isinstance(ds, (str, os.PathLike)):
            path = os.fspath(ds)
            if os.path.isfile(os.path.join(path, "dataset_info.json")) or os.path.isfile(
                    os.path.join(path, "dataset_dict.json")):
                ds = datasets.load_from_disk(path)
            else:
                ds = datasets.load_dataset(path, split=self.split, **self.load_options)
        if isinstance(ds, datasets.DatasetDict):
            if self.split not in ds:
                raise ValueError(f"split {self.split!r} not in dataset (splits: {list(ds)})")
            ds = ds[self.split]
        return ds

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        ds = self._load()
        label = os.fspath(self.dataset) if isinstance(self.dataset, (str, os.PathLike)) else "<dataset>"
        n = len(ds)
        start, stop = rank * n // world_size, (rank + 1) * n // world_size
        self._start_task(rank)
        try:
            blocks = (self._read_rows(ds, label, offset, min(offset + 1000, stop)) for offset in range(start, stop, 1000))
            for doc in self._skip_and_limit(blocks):
                self.update_doc_stats(doc)
                yield doc
        finally:
            self._end_task()

    def _read_rows(self, ds, label: str, start: int, stop: int) -> Iterator[Document]:
        rows = ds[start:stop]
        keys = list(rows)
        for i in range(len(rows[keys[0]]) if keys else 0):
            row_no = start + i + 1
            record = {k: rows[k][i] for k in keys}
            if (doc := self._accept(self.validator.to_document(record, label, row_no, f"{label}:{row_no}"))):
                yield doc


class FileTreeReader(_Validating, BaseReader):
    """A local file tree (or several): one document per file, or per section of a long file.

    ``paths`` may hold ``@stdlib`` (this Python's standard library) and ``@docs`` (installed
    documentation). Metadata: path, relpath, language, kind, file_bytes, section, n_sections, line.
    Binary, undecodable, empty and oversized files are rejected, never skipped silently.
    """

    name = "file_tree"

    def __init__(self, paths: list[str], include: list[str] | None = None, exclude: list[str] | None = None,
                 max_section_chars: int = 8000, max_file_bytes: int = 20_000_000,
                 max_sections_per_file: int | None = None, file_fraction: float = 1.0, seed: int = 0,
                 rejects_folder: str | None = None,
                 limit: int = -1, skip: int = 0, default_metadata: dict | None = None):
        super().__init__(limit=limit, skip=skip, default_metadata=default_metadata)
        self.paths = list(paths)
        self.include = include or ["*"]
        self.exclude = exclude or []
        self.max_section_chars = max_section_chars
        self.max_file_bytes = max_file_bytes
        self.max_sections_per_file = max_sections_per_file
        self.file_fraction = file_fraction
        self.seed = seed
        self.rejects_folder = rejects_folder
        self.validator = RecordValidator()
        self._files = None

    def progress_total(self, rank: int, world_size: int) -> tuple[int | None, str]:
        return len(self.files()[rank::world_size]), "files"

    def files(self):
        from textcurate.io.filetree import list_files, resolve_roots

        if self._files is None:  # listed once per task; every task lists the same sorted files
            files = list_files(resolve_roots(self.paths), self.include, self.exclude, self.max_file_bytes)
            if self.file_fraction < 1.0:  # a seeded sample of files, decided by name: the same on every machine
                cut = int(self.file_fraction * 2**64)
                files = [f for f in files if stable_hash(f.rel, self.seed) < cut]
            self._files = files
        return self._files

    def _read_one(self, f) -> Iterable[Document]:
        from textcurate.io.filetree import classify, read_bytes, split_sections

        self.stat_update("input_files")
        if f.problem:
            self._accept(Reject(f.shown, None, "<file>", f.problem))
            return
        try:
            data = read_bytes(f.path, self.max_file_bytes)
        except Exception as e:
            self._accept(Reject(f.shown, None, "<file>", f"unreadable: {type(e).__name__}: {e}"))
            return
        if len(data) > self.max_file_bytes:
            self._accept(Reject(f.shown, None, "text", f"file too large: > max_file_bytes {self.max_file_bytes:,}",
                                size_bytes=len(data)))
            return
        if b"\x00" in data[:8192]:
            self._accept(Reject(f.shown, None, "text", "binary content (NUL bytes)", size_bytes=len(data)))
            return
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            self._accept(Reject(f.shown, line, "text", f"invalid UTF-8 at byte {e.start}", size_bytes=len(data),
                                preview=data[max(0, e.start - 40): e.start + 40].decode("utf-8", "replace")))
            return
        if not data.strip():
            self._accept(Reject(f.shown, None, "text", "empty file", size_bytes=len(data)))
            return
        language, kind = classify(f.path)
        sections = split_sections(text, language, self.max_section_chars)
        n_sections = len(sections)
        if self.max_sections_per_file is not None and n_sections > self.max_sections_per_file:
            cut = n_sections - self.max_sections_per_file  # read but not kept: the ledger counts them dropped
            self.stat_update("total", value=cut)
            self.stat_update("sections_cut", value=cut)
            sections = sections[: self.max_sections_per_file]
        for k, (line, section) in enumerate(sections):
            meta = {"path": f.shown, "relpath": f.rel, "language": language, "kind": kind, "file_bytes": len(data),
                    "section": k, "n_sections": n_sections, "line": line}
            doc_id = f"{f.rel}#{k}"
            dup = self.validator.check_id(doc_id, f.shown, line, section[:200])
            if (doc := self._accept(dup or Document(text=section, id=doc_id, metadata=meta))) is not None:
                if self.default_metadata:
                    doc.metadata = self.default_metadata | doc.metadata
                yield doc

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        shard = self.files()[rank::world_size]
        self._start_task(rank)
        try:
            for doc in self._skip_and_limit(self._read_one(f) for f in shard):
                self.update_doc_stats(doc)
                yield doc
        finally:
            self._end_task()


def detect_input(path: str) -> tuple[str, str]:
    """(path to read, format) of a run folder (its documents/), a JSONL or Parquet file or folder,
    or anything else (a file tree). ``@assets/REL`` names a file of textcurate's shipped data."""
    from textcurate.io.shipped import expand

    path = expand(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    if os.path.exists(os.path.join(path, "run.json")):
        path = os.path.join(path, "documents")
    # a single file is judged by its own name (os.walk of a file lists nothing)
    names = [os.path.basename(path)] if os.path.isfile(path) else \
        [n for _, _, files in os.walk(path) for n in files]
    fmt = "parquet" if names and all(n.endswith(".parquet") for n in names) else \
        "jsonl" if names and all(".jsonl" in n or n.endswith(".json") for n in names) else "file_tree"
    return path, fmt


def read_documents(path: str, fmt: str | None = None, rejects_folder: str | None = None):
    """Documents from a run folder (its documents/), a JSONL or Parquet folder or file, or a file
    tree. Bad records are skipped with a warning, and written to ``rejects_folder`` when given."""
    path, detected = detect_input(path)
    fmt = fmt or detected
    if fmt == "file_tree":
        return FileTreeReader([path], rejects_folder=rejects_folder).run()
    return (ParquetReader if fmt == "parquet" else JsonlReader)(path, rejects_folder=rejects_folder).run()


def smallest_hashes(docs, n: int, seed: int, input_order: bool = False) -> tuple[list, int]:
    """The ``n`` documents of ``docs`` with the smallest xxhash64(id, seed), streamed through a heap
    of ``n`` (a uniform sample whatever the input's order), in hash order or, with
    ``input_order``, in the order they came. Returns (documents, how many were read)."""
    import heapq

    heap: list = []  # (-hash, id, position, document)
    seen = 0
    for doc in docs:
        key = -stable_hash(doc.id, seed)
        if len(heap) < n:
            heapq.heappush(heap, (key, doc.id, seen, doc))
        elif key > heap[0][0]:
            heapq.heapreplace(heap, (key, doc.id, seen, doc))
        seen += 1
    order = (lambda x: x[2]) if input_order else (lambda x: (-x[0], x[1]))
    return [d for *_, d in sorted(heap, key=order)], seen


def read_sample(path: str, n: int | None, seed: int = SAMPLE_SALT) -> tuple[list, int]:
    """At most ``n`` documents of ``path``, streamed: all of them when there are no more, else the
    ``n`` with the smallest xxhash64(id, seed) (``smallest_hashes``). They keep the input's order.
    Returns (documents, how many were read). Memory: ``n`` documents."""
    if n is None:
        docs = list(read_documents(path))
        return docs, len(docs)
    return smallest_hashes(read_documents(path), n, seed, input_order=True)


def reader_for(inp, paths) -> BaseReader:
    """The datatrove reader of an input config (``textcurate.config``'s built-in types, or a registered
    input type's own ``build_reader``)."""
    if hasattr(inp, "build_reader"):
        return inp.build_reader(paths)
    common = {"rejects_folder": paths.rejects, "limit": inp.limit, "skip": inp.skip}
    if inp.type == "file_tree":
        return FileTreeReader(inp.paths, include=inp.include, exclude=inp.exclude,
                              max_section_chars=inp.max_section_chars, max_file_bytes=inp.max_file_bytes,
                              max_sections_per_file=inp.max_sections_per_file, file_fraction=inp.file_fraction,
                              seed=inp.seed, **common)
    rec = {"max_doc_bytes": inp.max_doc_bytes, "text_key": inp.text_key, "id_key": inp.id_key, **common}
    if inp.type == "jsonl":
        return JsonlReader(inp.path, compression=inp.compression, glob_pattern=inp.glob, **rec)
    if inp.type == "parquet":
        return ParquetReader(inp.path, glob_pattern=inp.glob, **rec)
    return HFDatasetReader(inp.path, split=inp.split, load_options=inp.load_options, **rec)
