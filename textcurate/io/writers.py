"""Writers for the kept documents: datatrove's JSONL and Parquet writers, one file per task."""

from __future__ import annotations

from datatrove.pipeline.writers import JsonlWriter, ParquetWriter


def make_writer(folder: str, fmt: str = "jsonl", compression: str | None = "gzip"):
    if fmt == "jsonl":
        name = "${rank}.jsonl" + {"gzip": ".gz", "zstd": ".zst", None: ""}[compression]
        return JsonlWriter(folder, output_filename=name, compression=compression)
    if fmt == "parquet":
        return ParquetWriter(folder, output_filename="${rank}.parquet",
                             compression=compression if compression in ("snappy", "zstd", "gzip") else "snappy")
    raise ValueError(f"unknown output format {fmt!r}: use 'jsonl' or 'parquet'")
