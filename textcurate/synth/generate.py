"""Resumable generation: prompts in, one row per prompt out, written in parts as they finish.

A part (Parquet, written atomically) holds the rows of one batch; a rerun reads the prompt
ids of every part and asks the engine only for the others, so a killed run neither loses a
finished page nor generates it twice. A failure is a row too: ``error`` says why (the engine
isolates the failing prompt; HTTP backends retried it first), ``finish_reason`` ``length``
says the page was cut at ``max_tokens``. The gates downstream drop them with their reasons.
"""

from __future__ import annotations

import glob
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.engines.base import Engine, GenerationParams
from textcurate.io.files import write_parquet_atomic

SCHEMA = pa.schema([("prompt_id", pa.string()), ("text", pa.string()), ("finish_reason", pa.string()),
                    ("error", pa.string()), ("model", pa.string()), ("engine", pa.string()),
                    ("seconds", pa.float32())])


def finished(parts_dir: str) -> dict[str, dict]:
    """{prompt_id: row} of every part already written (the first row of an id wins)."""
    rows: dict[str, dict] = {}
    for path in sorted(glob.glob(os.path.join(parts_dir, "*.parquet"))):
        for r in pq.read_table(path).to_pylist():
            rows.setdefault(r["prompt_id"], r)
    return rows


def generate_pages(prompts: list[dict], engine: Engine, parts_dir: str, params: GenerationParams,
                   batch_size: int = 8, prefix: str = "part", progress=None) -> dict[str, dict]:
    """Generate every prompt (``{prompt_id, prompt}``) not yet in ``parts_dir``; returns {prompt_id: row}
    for all of ``prompts``."""
    return dict(iter_pages(prompts, engine, parts_dir, params, batch_size, prefix, progress))


def iter_pages(prompts: list[dict], engine: Engine | None, parts_dir: str, params: GenerationParams,
               batch_size: int = 8, prefix: str = "part", progress=None):
    """(prompt_id, row) for every prompt, in order, as each batch is written: the prompts of a batch
    without a row in ``parts_dir`` go to the engine in one call (``engine`` may be a callable that
    makes it, called only when something is left to generate)."""
    os.makedirs(parts_dir, exist_ok=True)
    done = finished(parts_dir)
    n = len(glob.glob(os.path.join(parts_dir, f"{prefix}-*.parquet")))
    made = None
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        todo = [p for p in chunk if p["prompt_id"] not in done]
        if todo:
            if made is None:
                made = engine() if callable(engine) and not isinstance(engine, Engine) else engine
            t0 = time.perf_counter()
            gens = made.generate_detailed([p["prompt"] for p in todo], params)
            secs = (time.perf_counter() - t0) / max(1, len(todo))
            rows = [{"prompt_id": p["prompt_id"], "text": g.text or "", "finish_reason": g.finish_reason,
                     "error": g.error, "model": made.model, "engine": made.name, "seconds": secs}
                    for p, g in zip(todo, gens)]
            while os.path.exists(os.path.join(parts_dir, f"{prefix}-{n:06d}.parquet")):
                n += 1
            write_parquet_atomic(os.path.join(parts_dir, f"{prefix}-{n:06d}.parquet"),
                                 pa.Table.from_pylist(rows, schema=SCHEMA))
            n += 1
            done.update({r["prompt_id"]: r for r in rows})
        for p in chunk:
            yield p["prompt_id"], done[p["prompt_id"]]
        if progress:
            progress(min(start + batch_size, len(prompts)), len(prompts))
    if made is not None and made is not engine:
        made.close()
