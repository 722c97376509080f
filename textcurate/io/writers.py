"""Writers for the kept documents: datatrove's JSONL and Parquet writers, one file per task.

The JSONL writer gzips with a zero timestamp in the header, so the same input and seed
give the same output files byte for byte (datatrove's default gzip stamps the time).
"""

from __future__ import annotations

import base64
import decimal
import gzip

import fsspec.compression
import orjson
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter
from datatrove.pipeline.writers.jsonl import _json_default


def _reproducible_gzip(fileobj, mode="rb", **kwargs):
    return gzip.GzipFile(fileobj=fileobj, mode=mode, mtime=0, filename="", **kwargs)


if "gzip_reproducible" not in fsspec.compression.compr:
    fsspec.compression.register_compression("gzip_reproducible", _reproducible_gzip, [])


def json_default(obj):
    """datatrove's conversions (dates, numpy scalars), plus what Parquet and datasets rows can
    hold that JSON cannot: bytes as base64, Decimal as float, anything else as its str()."""
    try:
        return _json_default(obj)
    except TypeError:
        pass
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    if hasattr(obj, "tolist"):  # numpy arrays
        return obj.tolist()
    return str(obj)


def public_metadata(metadata: dict) -> dict:
    """Keys starting with ``__`` travel between steps (an embedding, say) but are not written."""
    return {k: v for k, v in metadata.items() if not k.startswith("__")}


def _rank_only_filename(self, document, rank=0, **kwargs) -> str:
    # datatrove also substitutes document metadata into the name, so a record with a "rank"
    # field would make every task write the same file; textcurate names files by task only
    return self.output_filename.substitute({"rank": str(rank).zfill(5), **kwargs})


class ReproducibleJsonlWriter(JsonlWriter):
    """datatrove's JsonlWriter with a wider JSON fallback; importing this module (as unpickling
    it does in a worker) registers the compression it uses."""

    _get_output_filename = _rank_only_filename

    def _write(self, document: dict, file_handler, _filename: str):
        if "metadata" in document:
            document["metadata"] = public_metadata(document["metadata"])
        file_handler.write(orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE, default=json_default))


class TaskParquetWriter(ParquetWriter):
    _get_output_filename = _rank_only_filename


def parquet_row(self, document) -> dict:
    """Metadata as a JSON string: documents differ in their metadata keys and types, and one
    Parquet file has one schema. textcurate's ParquetReader parses it back."""
    return {"id": document.id, "text": document.text,
            "metadata": orjson.dumps(public_metadata(document.metadata), default=json_default).decode()}


def make_writer(folder: str, fmt: str = "jsonl", compression: str | None = "gzip"):
    if fmt == "jsonl":
        name = "${rank}.jsonl" + {"gzip": ".gz", "zstd": ".zst", None: ""}[compression]
        return ReproducibleJsonlWriter(folder, output_filename=name,
                                       compression="gzip_reproducible" if compression == "gzip" else compression)
    if fmt == "parquet":
        return TaskParquetWriter(folder, output_filename="${rank}.parquet", adapter=parquet_row,
                             compression=compression if compression in ("snappy", "zstd", "gzip") else "snappy")
    raise ValueError(f"unknown output format {fmt!r}: use 'jsonl' or 'parquet'")
