"""File plumbing that every stage shares: atomic writes, batching, vector columns.

- ``atomic_write(path)`` (or ``temp_path`` + ``commit`` for a writer held open across
  calls): a context manager that yields a temporary path beside ``path``
  (unique per process and call, so two writers never share one), fsyncs the file, renames
  it over ``path`` and fsyncs the folder. A killed run leaves either the old file or the new
  one, never half of one; files that mark completion (decisions, cards, run.json) use it.
- ``write_json_atomic`` / ``write_parquet_atomic`` / ``write_text_atomic``: the common cases.
- ``batched(iterable, n)``: lists of up to ``n`` items (the one batching helper).
- ``vector_type`` / ``as_vector_type``: the one Arrow type of a vector column;
  ``vectors_column`` / ``column_vectors``: [n, d] arrays to and from Arrow fixed-size lists.

This module imports no stage, so any package can use it without import cycles.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
from typing import Iterable, Iterator, TypeVar

import numpy as np
import pyarrow as pa

T = TypeVar("T")


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:  # some filesystems do not open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """This process's umask, read without changing it where Linux says it (/proc/self/status);
    elsewhere set and restored at once."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: 0666 less the umask (0644 under 022)."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode ``os.makedirs`` gives a new folder: 0777 less the umask (for ``mkdtemp``'s 0700)."""
    return 0o777 & ~current_umask()


def temp_path(path: str) -> str:
    """A new empty file beside ``path`` with a name no other writer gets (for ``commit``). Its
    mode follows the umask, as ``open`` would make it: ``mkstemp``'s 0600 would stay on the
    committed file and hide a run's outputs from the rest of a team on a shared file system."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    return tmp


def commit(tmp: str, path: str) -> None:
    """fsync ``tmp``, rename it over ``path``, fsync the folder: ``path`` is whole or absent."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[str]:
    """Yield a temporary path; on success it is committed over ``path``; on an exception it is
    removed and ``path`` is untouched."""
    tmp = temp_path(path)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_json_atomic(path: str, data, indent: int | None = 2) -> None:
    """JSON through ``atomic_write``; values JSON cannot hold are written as strings."""
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=indent, default=str)


def write_parquet_atomic(path: str, table: pa.Table, **options) -> None:
    import pyarrow.parquet as pq

    with atomic_write(path) as tmp:
        pq.write_table(table, tmp, **options)


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_safetensors(path: str) -> None:
    """ValueError naming ``path`` unless it is a whole safetensors file: its header must parse and
    the file must be as long as the header says (a copy cut short, or another format, fails here,
    in one line, instead of deep inside a loader)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > min(size - 8, 100 << 20):
                raise ValueError(f"{path}: not a whole safetensors file ({size:,} bytes; its header cannot be read)")
            header = json.loads(fh.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a whole safetensors file ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file (its header is not a table of tensors)")
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
               and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2), default=0)
    if 8 + n + end != size:
        raise ValueError(f"{path}: truncated or damaged safetensors file: {size:,} bytes, its header says "
                         f"{8 + n + end:,}")


def check_model_folder(folder: str) -> None:
    """ValueError naming the file when a local model folder's weights would not load: a safetensors
    file cut short, or pickle weights only (textcurate never unpickles: ``torch.load`` would run
    code the file carries)."""
    names = [n for n in os.listdir(folder)] if os.path.isdir(folder) else []
    tensors = [n for n in names if n.endswith(".safetensors")]
    for sub in ("0_Transformer",):  # older sentence-transformers folders keep the weights one level down
        if not tensors and os.path.isdir(os.path.join(folder, sub)):
            return check_model_folder(os.path.join(folder, sub))
    for n in sorted(tensors):
        check_safetensors(os.path.join(folder, n))
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickles and not tensors:
        raise ValueError(f"{os.path.join(folder, pickles[0])}: pickle weights, which textcurate does not load "
                         f"(unpickling runs code the file carries); convert them to safetensors, e.g. "
                         f"`model.save_pretrained(folder, safe_serialization=True)` where you trust the file")


def batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Lists of ``n`` items (the last may be shorter); works on any iterable, lazily."""
    if n < 1:
        raise ValueError(f"batch size must be at least 1, got {n}")
    it = iter(items)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def vector_type(dim: int | None, value: pa.DataType = pa.float16()) -> pa.DataType:
    """The one Arrow type of a vector column: a list of ``value`` (fixed-size when ``dim`` is given)
    whose child is named ``item``. Every writer of a vector column uses it, so a shard written by a
    resumed task is byte for byte the one an uninterrupted task writes."""
    return pa.list_(value, dim) if dim else pa.list_(value)


def as_vector_type(t: pa.DataType) -> pa.DataType:
    """``t`` (a list type read back from Parquet, whose child is then named ``element``) as
    ``vector_type`` spells it."""
    if pa.types.is_fixed_size_list(t):
        return vector_type(t.list_size, t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return vector_type(None, t.value_type)
    return t


def vectors_column(vectors: np.ndarray, dtype=pa.float32()) -> pa.Array:
    """An [n, d] array as an Arrow fixed-size-list column."""
    n, d = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors).reshape(-1), type=dtype)
    return pa.FixedSizeListArray.from_arrays(flat, d)


def bad_vectors(x: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
    """(mask of the rows of [n, d] ``x`` that no cosine can use, the reason of each row or None):
    a NaN or an infinity, or all zeros."""
    x = np.asarray(x)
    nonfinite = ~np.isfinite(x).all(axis=1) if x.size else np.zeros(len(x), bool)
    zero = ~np.any(x != 0, axis=1) if x.ndim == 2 and x.shape[1] else np.ones(len(x), bool)
    bad = nonfinite | zero
    reasons = [None if not b else "the vector holds NaN or inf" if f else "the vector is all zeros"
               for b, f in zip(bad.tolist(), nonfinite.tolist())]
    return bad, reasons


def column_vectors(col) -> np.ndarray:
    """An Arrow list column of equal-length vectors as a float32 [n, d] array."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    if len(col) == 0:
        return flat.reshape(0, getattr(col.type, "list_size", 0) or 1)
    if len(flat) % len(col):
        raise ValueError("vectors of different lengths in one column")
    return flat.reshape(len(col), -1)
