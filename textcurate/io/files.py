"""File plumbing that every stage shares: atomic writes, batching, vector columns, the device.

- ``atomic_write(path)`` (or ``temp_path`` + ``commit`` for a writer held open across
  calls): a context manager that yields a temporary path beside ``path``
  (unique per process and call, so two writers never share one), fsyncs the file, renames
  it over ``path`` and fsyncs the folder. A killed run leaves either the old file or the new
  one, never half of one; files that mark completion (decisions, cards, run.json) use it.
- ``write_json_atomic`` / ``write_parquet_atomic`` / ``write_text_atomic``: the common cases.
- ``batched(iterable, n)``: lists of up to ``n`` items (the one batching helper).
- ``vectors_column`` / ``column_vectors``: [n, d] arrays to and from Arrow fixed-size lists.
- ``pick_device("auto")``: CUDA when torch sees one, else the CPU (the one device picker);
  ``cpu_has_bf16()``: whether bf16 is fast on this CPU.

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


def temp_path(path: str) -> str:
    """A new empty file beside ``path`` with a name no other writer gets (for ``commit``)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
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


def batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Lists of ``n`` items (the last may be shorter); works on any iterable, lazily."""
    if n < 1:
        raise ValueError(f"batch size must be at least 1, got {n}")
    it = iter(items)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def vectors_column(vectors: np.ndarray, dtype=pa.float32()) -> pa.Array:
    """An [n, d] array as an Arrow fixed-size-list column."""
    n, d = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors).reshape(-1), type=dtype)
    return pa.FixedSizeListArray.from_arrays(flat, d)


def column_vectors(col) -> np.ndarray:
    """An Arrow list column of equal-length vectors as a float32 [n, d] array."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    if len(col) == 0:
        return flat.reshape(0, getattr(col.type, "list_size", 0) or 1)
    if len(flat) % len(col):
        raise ValueError("vectors of different lengths in one column")
    return flat.reshape(len(col), -1)


def pick_device(device: str = "auto") -> str:
    """``auto``: ``cuda`` when torch sees a GPU, else ``cpu``; anything else is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX512-BF16); elsewhere bf16 is emulated,
    slower than fp32."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
