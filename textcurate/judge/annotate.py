"""``textcurate annotate``: an LLM rates a sample of documents; one Parquet row per document.

Rows: id, text, score (0-5 or null), raw (the model's output), reason (why a score is null),
score_expected / score_argmax / score_mass (the answer's token distribution, with ``scoring``
``distribution`` or ``both``),
model, engine, prompt_version, judged_chars, injection_suspected (the judged text held a
forged fence marker, an answer line or a request to the grader, neutralised before judging),
source and split (the document's metadata of those names, when it has them: train-classifier
holds out the ``test`` split, or whole sources). The sample is the ``sample`` documents with the
smallest seeded hash of their id: uniform, and the same on every run. Rows are written in
parts after every batch, so a killed annotation resumes where it stopped.
"""

from __future__ import annotations

import glob
import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.engines.base import Engine, GenerationParams
from textcurate.io.files import write_json_atomic, write_parquet_atomic
from textcurate.judge.prompt import PROMPT_VERSION, PROMPTS, parse_score, suspected_injection

SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("score", pa.int8()), ("raw", pa.string()),
                    ("reason", pa.string()), ("model", pa.string()), ("engine", pa.string()),
                    ("prompt_version", pa.string()), ("judged_chars", pa.int32()),
                    ("injection_suspected", pa.bool_()), ("score_expected", pa.float32()),
                    ("score_argmax", pa.int8()), ("score_mass", pa.float32()),
                    ("source", pa.string()), ("split", pa.string())])
SCORINGS = ("generate", "distribution", "both")


def sample_documents(docs, n: int | None, seed: int = 0) -> list:
    """The n documents with the smallest xxhash64(id, seed), in hash order; all when n is None."""
    if n is None:
        return list(docs)
    from textcurate.io.readers import smallest_hashes

    return smallest_hashes(docs, n, seed)[0]


def _meta(doc, key: str) -> str | None:
    value = (doc.metadata or {}).get(key)
    return None if value is None else str(value)


META_KEY = b"textcurate"


def written_by(path: str) -> str | None:
    """"annotate" when ``path`` is a Parquet file of annotations that textcurate wrote, else None."""
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[META_KEY]).get("verb") if META_KEY in meta else None
    except Exception:  # noqa: BLE001 - not Parquet, unreadable: not ours
        return None


def _settings(path: str) -> dict | None:
    try:
        return json.loads((pq.read_schema(path).metadata or {})[META_KEY]).get("settings")
    except Exception:  # noqa: BLE001
        return None


def annotate(docs, engine: Engine, out: str, batch_size: int = 16, max_chars: int = 1000,
             params: GenerationParams | None = None, progress=None, scoring: str = "generate",
             prompt: str = PROMPT_VERSION, settings: dict | None = None, overwrite: bool = False) -> pa.Table:
    """``scoring``: ``generate`` (the judge writes its answer, parsed into ``score``), ``distribution``
    (no generation: the answer's choices' probabilities where the answer starts give ``score_expected``,
    ``score_argmax`` and ``score_mass``; ``score`` is the argmax) or ``both``. ``prompt``: a name in
    ``textcurate.judge.prompt.PROMPTS``; a yes/no prompt (Ask-LLM) scores 5 x P(Yes) and needs
    ``distribution``. ``settings`` (what was asked: the input, the sample, the engine, the model...)
    are written into the file and its parts: a file or parts of other settings are stale and
    refused (ValueError), or replaced with ``overwrite``; the same settings resume."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    if prompt not in PROMPTS:
        raise ValueError(f"prompt must be one of {', '.join(PROMPTS)}, got {prompt!r}")
    jp = PROMPTS[prompt]
    if scoring != "distribution" and not jp.digits:
        raise ValueError(f"prompt {prompt!r} answers {'/'.join(jp.choices)}, not a written 0-5 score: "
                         "use --scoring distribution")
    if params is None:
        params = GenerationParams(max_tokens=4, temperature=0.0, assistant_prefix=jp.answer_prefix)
    parts_dir = out + ".parts"
    settings = {**(settings or {}), "engine": engine.name, "model": engine.model, "prompt": jp.version,
                "scoring": scoring, "max_chars": max_chars, "max_tokens": params.max_tokens}
    settings = json.loads(json.dumps(settings, default=str))
    settings_file = os.path.join(parts_dir, "settings.json")
    old = _settings(out) if os.path.exists(out) else None
    if old is None and os.path.exists(settings_file):
        with open(settings_file) as fh:
            old = json.load(fh)
    if old is not None and old != settings:
        if not overwrite:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise ValueError(f"{out} holds annotations made with other settings ({', '.join(diff)} differ): pass "
                             f"--overwrite to annotate again, or choose another --out")
        shutil.rmtree(parts_dir, ignore_errors=True)
        if os.path.exists(out):
            os.remove(out)
    done: set[str] = set()
    if os.path.exists(out):  # finished earlier with these settings: nothing to do
        return pq.read_table(out)
    for p in sorted(glob.glob(os.path.join(parts_dir, "*.parquet"))):
        done.update(pq.read_table(p, columns=["id"]).column("id").to_pylist())
    todo = [d for d in docs if d.id not in done]
    os.makedirs(parts_dir, exist_ok=True)
    write_json_atomic(settings_file, settings)
    n_parts = len(glob.glob(os.path.join(parts_dir, "*.parquet")))
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        prompts = [jp.build(d.text, max_chars) for d in batch]
        outputs = engine.generate(prompts, params) if scoring != "distribution" else [None] * len(batch)
        dists = engine.answer_distribution(prompts, jp.choices, params) if scoring != "generate" \
            else [None] * len(batch)
        rows = []
        for doc, raw, dist in zip(batch, outputs, dists):
            if raw is not None:
                raw = params.assistant_prefix + raw  # the whole answer, as the judge gave it
                score, reason = parse_score(raw)
            else:
                score, reason = jp.argmax(dist), "distribution"
            rows.append({"id": doc.id, "text": doc.text, "score": score, "raw": raw, "reason": reason,
                         "model": engine.model, "engine": engine.name, "prompt_version": jp.version,
                         "judged_chars": min(len(doc.text), max_chars),
                         "injection_suspected": suspected_injection(doc.text, max_chars),
                         "score_expected": jp.score(dist) if dist else None,
                         "score_argmax": jp.argmax(dist) if dist else None,
                         "score_mass": dist.mass if dist else None,
                         "source": _meta(doc, "source"), "split": _meta(doc, "split")})
        path = os.path.join(parts_dir, f"part-{n_parts:06d}.parquet")
        write_parquet_atomic(path, pa.Table.from_pylist(rows, schema=SCHEMA))
        n_parts += 1
        if progress:
            progress(len(done) + start + len(batch), len(done) + len(todo))
    parts = sorted(glob.glob(os.path.join(parts_dir, "*.parquet")))
    table = pa.concat_tables([pq.read_table(p) for p in parts]) if parts else SCHEMA.empty_table()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           META_KEY: json.dumps({"verb": "annotate", "settings": settings})})
    write_parquet_atomic(out, table)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return table
