"""The ``synth`` input: a pipeline whose documents are pages an engine writes.

``prepare`` (once, in the process that starts the run) reads the seeds, names the topics and
samples the prompt grid into ``artifacts/synth/`` (``topics.json``, ``prompts.parquet``,
``prepare.json`` last: a rerun finds them and does not redo them). The reader then runs on the
executor's tasks like any reader: task ``r`` of ``n`` generates the prompts ``i`` with
``i % n == r`` (``generate.py``: batched, resumable, failures as rows) and yields one
document per prompt, id ``synth-<prompt_id>``, its page as text and its provenance in the
metadata (prompt_id, template_version, topic, subtopic, audience, style, framing, seed_id,
seed_extract, model, engine, finish_reason, synth_error). So the ledger's ``read`` line counts
prompts, and the ``synth_check`` stage drops the failures with their reasons.

Why not datatrove's ``InferenceRunner``: it drives an inference *server* (it starts vLLM or
SGLang, or calls an endpoint) from asyncio, so the CPU path (transformers in process) and the
in-process vLLM engine would need a server of their own; textcurate's engines already retry
HTTP with backoff, and this reader runs on the same datatrove executors (local, Slurm, Ray),
so generation shards across tasks and nodes the same way. Pointing ``engine.kind: openai`` at
a ``vllm serve`` (or several, behind a balancer) is the many-GPU route.
"""

from __future__ import annotations

import heapq
import os
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from pydantic import Field, field_validator, model_validator

from textcurate.engines.spec import EngineSpec
from textcurate.io.files import write_json_atomic, write_parquet_atomic
from textcurate.io.records import stable_hash
from textcurate.registry import InputParams, RunPaths, input_type
from textcurate.synth.prompts import AUDIENCES, STYLES, TEMPLATE_VERSION

PROMPT_FIELDS = ("prompt_id", "template_version", "topic", "subtopic", "audience", "style", "framing", "seed_id",
                 "seed_extract")


@input_type("synth")
class SynthInput(InputParams):
    """Pages written by an engine from a grid of topic x audience x style prompts."""
    type: Literal["synth"]
    seeds: dict | None = Field(None, description="the seed corpus: any input (jsonl, parquet, file_tree, ...)")
    topics: list | None = Field(None, description="or: a list of topics (strings or {topic, subtopics})")
    curriculum: str | None = Field(None, description="or: a YAML file of {topic, subtopics}")
    clusters: int = Field(8, ge=1, description="seed clusters, each a candidate topic")
    per_cluster: int = Field(3, ge=1, description="documents nearest each centroid shown to the engine")
    seed_sample: int = Field(2000, ge=1, description="seed documents embedded and clustered (seeded sample)")
    keep_threshold: float = Field(0.5, ge=0, le=1, description="a cluster is kept when P(Yes) to 'could a "
                                                              "textbook teach it' is at least this")
    embedder: str = "minilm"
    pages: int = Field(24, ge=1, description="prompts in the grid (one page each)")
    audiences: list[str] = Field(list(AUDIENCES))
    styles: list[str] = Field(list(STYLES))
    extract_chars: int = Field(1000, ge=0, description="characters of the seed extract in each prompt")
    engine: EngineSpec = EngineSpec()
    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.8, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int = Field(0, description="samples the grid, the seeds and the generation")
    batch_size: int = Field(8, ge=1, description="prompts per engine call (and per part written)")

    @field_validator("audiences", "styles", mode="before")
    @classmethod
    def _commas(cls, v):
        if isinstance(v, str):  # --audiences college,researchers
            return [x.strip() for x in v.split(",") if x.strip()]
        return v

    @field_validator("audiences", "styles")
    @classmethod
    def _known(cls, v, info):
        known = AUDIENCES if info.field_name == "audiences" else STYLES
        bad = [a for a in v if a not in known]
        if bad or not v:
            raise ValueError(f"unknown {info.field_name[:-1]}(s) {bad}: choose from {', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _check(self):
        if not (self.seeds or self.topics or self.curriculum):
            raise ValueError("give seeds (a corpus to find topics in), topics (a list) or curriculum (a YAML file)")
        if self.topics and self.curriculum:
            raise ValueError("give topics or curriculum, not both")
        if self.seeds is not None:
            from textcurate.config import validate_input

            validate_input(self.seeds)
        return self

    def input_paths(self) -> list[str]:
        """What the run reads from disk (``runner.inputs``: a changed file starts a finished run afresh)."""
        paths = [p for p in ([self.seeds.get("path")] + list(self.seeds.get("paths") or []) if self.seeds else [])
                 if isinstance(p, str) and not p.startswith("@")]
        return paths + ([self.curriculum] if self.curriculum else [])

    def folder(self, run_dir: str) -> str:
        return os.path.join(run_dir, "artifacts", "synth")

    def prepare(self, run_dir: str, paths: RunPaths) -> dict:
        import json

        from textcurate.synth.prompts import as_dicts, prompt_grid
        from textcurate.synth.topics import attach_seeds, topics_from_file, topics_from_list, topics_from_seeds

        folder = self.folder(run_dir)
        if os.path.exists(os.path.join(folder, "prepare.json")):  # written last: the grid is ready
            with open(os.path.join(folder, "prepare.json")) as fh:
                return json.load(fh)
        os.makedirs(folder, exist_ok=True)
        seeds = self._read_seeds(paths) if self.seeds else []
        if self.seeds and not seeds:
            raise ValueError("the seed corpus holds no document")
        engine = None
        if self.topics:
            topics = topics_from_list(self.topics)
        elif self.curriculum:
            topics = topics_from_file(self.curriculum)
        else:
            engine = self.engine.make(self.batch_size)
            topics = topics_from_seeds(seeds, engine, min(self.clusters, len(seeds)), self.per_cluster,
                                       self.embedder, self.seed, self.keep_threshold)
        if (self.topics or self.curriculum) and seeds:
            attach_seeds(topics, seeds, self.embedder)
        if engine is not None:
            engine.close()
        write_json_atomic(os.path.join(folder, "topics.json"),  # first: a grid that fails can be looked into
                          [{**{k: v for k, v in t.items() if k != "seeds"}, "seed_ids": [s["id"] for s in t["seeds"]]}
                           for t in topics])
        kept = [t for t in topics if t["kept"]]
        rows = as_dicts(prompt_grid(kept, self.pages, self.audiences, self.styles, self.seed, self.extract_chars))
        write_parquet_atomic(os.path.join(folder, "prompts.parquet"), pa.Table.from_pylist(rows))
        summary = {"seeds": len(seeds), "topics": len(topics), "kept_topics": len(kept), "prompts": len(rows),
                   "template_version": TEMPLATE_VERSION, "writer": f"{self.engine.kind}:{self.engine.resolved_model()}",
                   "grid": {"audiences": self.audiences, "styles": self.styles},
                   "dropped_topics": {t["topic"] or f"cluster {t['cluster']}": t["reason"] for t in topics
                                      if not t["kept"]}}
        write_json_atomic(os.path.join(folder, "prepare.json"), summary)
        return summary

    def _read_seeds(self, paths: RunPaths) -> list[Document]:
        """A seeded uniform sample of ``seed_sample`` seed documents (bounded memory: a heap)."""
        from textcurate.config import validate_input
        from textcurate.io.readers import reader_for

        reader = reader_for(validate_input(self.seeds), RunPaths(paths.run_dir and os.path.join(paths.run_dir,
                                                                                                "artifacts", "synth")))
        heap: list = []
        for doc in reader.run(None, 0, 1):
            if not doc.text.strip():
                continue
            key = -stable_hash(doc.id, self.seed)
            item = (key, doc.id, doc)
            if len(heap) < self.seed_sample:
                heapq.heappush(heap, item)
            elif key > heap[0][0]:
                heapq.heapreplace(heap, item)
        return [d for _, _, d in sorted(heap, key=lambda x: (-x[0], x[1]))]

    def build_reader(self, paths: RunPaths) -> PipelineStep:
        return SynthReader(self, self.folder(paths.run_dir))


class SynthReader(PipelineStep):
    type = "📖 - READER"
    name = "synth"

    def __init__(self, spec: SynthInput, folder: str):
        super().__init__()
        self.spec, self.folder = spec, folder
        self._done = 0
        self._prompts: list[dict] | None = None  # read once per task (progress_total, then run)

    def _mine(self, rank: int, world_size: int) -> list[dict]:
        if self._prompts is None:
            self._prompts = pq.read_table(os.path.join(self.folder, "prompts.parquet")).to_pylist()
        return [p for i, p in enumerate(self._prompts) if i % world_size == rank]

    def progress_total(self, rank: int, world_size: int):
        return len(self._mine(rank, world_size)), "pages"

    def progress_done(self) -> int:
        return self._done

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from textcurate.engines.base import GenerationParams
        from textcurate.synth.generate import iter_pages

        if data:
            yield from data
        mine = {p["prompt_id"]: p for p in self._mine(rank, world_size)}
        params = GenerationParams(max_tokens=self.spec.max_tokens, temperature=self.spec.temperature,
                                  top_p=self.spec.top_p, seed=self.spec.seed + rank)
        # the engine is made only if a prompt is left to generate (a rerun over finished parts loads no model)
        def engine():
            from textcurate.runner import progress

            made = self.spec.engine.make(self.spec.batch_size)
            made.on_tokens = lambda n: progress.count("tokens", n)  # the line moves inside a long batch
            return made

        pages = iter_pages(list(mine.values()), engine,
                           os.path.join(self.folder, "generated"), params, self.spec.batch_size,
                           prefix=f"task{rank:05d}")
        for pid, r in pages:
            p = mine[pid]
            meta = {k: p[k] for k in PROMPT_FIELDS}
            meta.update(model=r["model"], engine=r["engine"], finish_reason=r["finish_reason"],
                        synth_error=r["error"])
            self._done += 1
            self.stat_update("pages")
            yield Document(text=r["text"] or "", id=f"synth-{pid}", metadata=meta)
