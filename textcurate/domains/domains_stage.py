"""The ``domains`` stage: every document's topic and format, as columns a mixture can weigh.

- **topic**: from the clusters of a ``cluster`` step. The judge reads the documents nearest each
  centroid (the highest ``centroid_sim`` of the cluster) and names their shared subject, as synth's
  topic step does; two clusters that get one name are one topic. Every cluster's name, the
  documents it was read from and why a cluster has none (an engine error, a name not parsed) are
  recorded in ``artifacts/NAME/domains.json``; a cluster without a name is ``cluster N``.
- **format**: tutorial, reference, code, news, forum, list or table, legal, other (the list is a
  parameter). The judge labels a sample (the smallest id-hashes) by the probabilities of the
  choices' numbers where its answer starts; a logistic regression on the stored embeddings learns
  those labels and labels every document (``format``, and ``format_p``, its probability). Its
  agreement with the judge, measured by cross-validation on the sample, is in the card. With
  ``format_by: embedding`` no judge is asked: each document gets the format whose description
  (``DESCRIPTIONS``, or ``descriptions``) is nearest its vector, embedded by the run's embedder.

Fit: each task keeps, in bounded memory, the ``per_cluster`` documents nearest each centroid and
the ``format_sample`` smallest id-hashes (with a preview of their text and, for the sample, the
vector); the fit merges the tasks' rows. Apply: a lookup of the cluster's topic and the head on
the vector. A judge that is small (the packaged SmolLM2) gives names and labels of its size; a
served model (``engine.kind: openai``) gives the labels FineWeb-Edu and WebOrganizer used.
"""

from __future__ import annotations

import heapq
import json
import os
import time
from typing import Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from pydantic import Field, model_validator

from textcurate.cluster.cluster_stage import BadVector, doc_vector, doc_vectors
from textcurate.embed.stage import EMBEDDING_KEY
from textcurate.engines.spec import EngineSpec
from textcurate.io.files import commit, temp_path, vector_type, write_json_atomic, write_parquet_atomic
from textcurate.io.records import stable_hash
from textcurate.io.rejects import Reject
from textcurate.registry import Needs, RunPaths, ScorerParams, stage
from textcurate.steps.base import Scorer
from textcurate.steps.fitted import RowFittedStage

FORMATS = ["tutorial", "reference", "code", "news", "forum", "list or table", "legal", "other"]
DESCRIPTIONS = {  # what ``format_by: embedding`` compares each document's vector with
    "tutorial": "a tutorial or textbook lesson that explains a subject step by step",
    "reference": "reference documentation describing commands, functions or options",
    "code": "source code of a program: functions, variables and statements in a programming language",
    "news": "a news article or an announcement of a release",
    "forum": "a forum thread or questions and answers between people",
    "list or table": "a list, a table, a log or data records",
    "legal": "a licence, terms of use or another legal text",
    "other": "other text",
}
SHARPNESS = 20.0  # cosine -> logit scale of the description head: format_p of 0.9 at a cosine 0.11 ahead
PREVIEW_CHARS = 600  # of each document kept for the judge
FORMAT_PROMPT = ("Here is the start of a document:\n\n{text}\n\nWhich of these best describes its format?\n"
                 "{choices}\n\nAnswer with the number only.")


class Domains(RowFittedStage, Scorer):
    name = "domains"
    default_batch_size = 1024
    columns = {"topic": "string", "format": "string", "format_p": "float32"}

    def __init__(self, *, cluster_field: str, sim_field: str, embedding_field: str, per_cluster: int,
                 format_sample: int, formats: list[str], engine: EngineSpec, judge_batch: int, seed: int,
                 format_by: str, embedder: str, descriptions: dict | None, **kwargs):
        super().__init__(**kwargs)
        self.cluster_field, self.sim_field, self.embedding_field = cluster_field, sim_field, embedding_field
        self.per_cluster, self.format_sample, self.formats = per_cluster, format_sample, list(formats)
        self.engine, self.judge_batch, self.seed = engine, judge_batch, seed
        self.format_by, self.embedder = format_by, embedder
        self.descriptions = {f: (descriptions or {}).get(f) or DESCRIPTIONS.get(f) or f for f in self.formats}
        self.topics: dict[int, str] | None = None
        self.head: tuple[np.ndarray, np.ndarray, list[str]] | None = None  # W, b, classes

    # --- fit: bounded rows per task --------------------------------------------------------------------
    def fit_row(self, doc: Document) -> dict | None:
        c = doc.metadata.get(self.cluster_field)
        try:
            vec = doc_vector(doc, self.embedding_field, check=True)
        except (KeyError, BadVector):
            return None  # the apply pass rejects it, naming the field
        if not isinstance(c, int):
            return None
        sim = doc.metadata.get(self.sim_field)
        return {"id": doc.id, "hash": stable_hash(doc.id, self.seed), "cluster": c,
                "sim": float(sim) if isinstance(sim, (int, float)) else float("-inf"), "vector": vec,
                "text": doc.text[:PREVIEW_CHARS]}  # all the judge reads

    def fit_schema(self) -> pa.Schema:
        return pa.schema([("role", pa.string()), ("id", pa.string()), ("hash", pa.uint64()), ("cluster", pa.int64()),
                          ("sim", pa.float64()), ("vector", vector_type(None, pa.float32())), ("text", pa.string())])

    def write_fit_rows(self, rows: Iterator[dict], folder: str, rank: int) -> None:
        near: dict[int, list] = {}  # cluster -> min-heap of (sim, -hash, n, row): the nearest to the centroid
        sample: list = []  # max-heap (negated hash) of the smallest hashes
        for n, row in enumerate(rows):
            heap = near.setdefault(row["cluster"], [])
            item = (row["sim"], -row["hash"], -n, row)
            if len(heap) < self.per_cluster:
                heapq.heappush(heap, item)
            elif item[:3] > heap[0][:3]:
                heapq.heapreplace(heap, item)
            s_item = (-row["hash"], -n, row)
            if len(sample) < self.format_sample:
                heapq.heappush(sample, s_item)
            elif s_item[:2] > sample[0][:2]:
                heapq.heapreplace(sample, s_item)
        out = [{**r, "role": "near", "vector": None} for h in near.values() for *_, r in h]
        out += [{**r, "role": "sample"} for *_, r in sample]
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{rank:05d}.parquet")
        tmp = temp_path(path)
        pq.write_table(pa.Table.from_pylist(out, schema=self.fit_schema()), tmp)
        commit(tmp, path)

    def fit(self, table: pa.Table, artifacts: str) -> dict:
        rows = table.to_pylist()
        near: dict[int, list] = {}
        for r in sorted((r for r in rows if r["role"] == "near"), key=lambda r: (-r["sim"], r["hash"], r["id"])):
            if len(near.setdefault(r["cluster"], [])) < self.per_cluster:
                near[r["cluster"]].append(r)
        sample = sorted((r for r in rows if r["role"] == "sample"), key=lambda r: (r["hash"], r["id"]))
        sample = sample[:self.format_sample]
        engine = self.engine.make(self.judge_batch)
        t0 = time.perf_counter()
        try:
            chunk = prompts_at_once(engine, self.judge_batch)
            topics = name_topics(near, engine, chunk=chunk)
            t1 = time.perf_counter()
            labels = judge_formats(sample, self.formats, engine, chunk=chunk) if self.format_by == "judge" else []
        finally:
            engine.close()
        seconds = {"names": round(t1 - t0, 1), "formats": round(time.perf_counter() - t1, 1)}
        self.topics = {int(c): t["topic"] for c, t in topics.items()}
        os.makedirs(artifacts, exist_ok=True)
        if self.format_by == "judge":
            write_parquet_atomic(os.path.join(artifacts, "format_labels.parquet"), pa.table({
                "id": [r["id"] for r in sample], "format": [lab for lab, _ in labels],
                "p": pa.array([p for _, p in labels], pa.float64()), "text": [r["text"] for r in sample]}))
            card = train_format_head(sample, labels, self.formats, self.seed, artifacts)
        else:
            card = description_head(self.descriptions, self.embedder,
                                    len(sample[0]["vector"]) if sample else None, artifacts)
        card["format_by"] = self.format_by
        self._load_head(artifacts)
        card.update(kind="domains", step=self.step_name, engine=engine.name, model=engine.model,
                    seconds=seconds, clusters={str(c): t for c, t in sorted(topics.items())},
                    topics=sorted(set(self.topics.values())))
        write_json_atomic(os.path.join(artifacts, "domains.json"), card, indent=1)
        write_json_atomic(os.path.join(artifacts, "card.json"), {k: card[k] for k in (
            "kind", "step", "engine", "model", "topics", "formats", "judged", "head_agreement", "majority_share",
            "label_counts")})
        self.decision = {"artifact": artifacts, "topics": len(card["topics"]), "clusters": len(topics),
                         "format_by": self.format_by, "judged": card["judged"],
                         "head_agreement": card["head_agreement"]}
        return self.decision

    def _load_head(self, artifacts: str) -> None:
        from safetensors.numpy import load_file

        with open(os.path.join(artifacts, "format_head.json")) as fh:
            classes = json.load(fh)["classes"]
        t = load_file(os.path.join(artifacts, "format_head.safetensors"))
        self.head = (t["weight"], t["bias"], classes)

    def restore(self, artifacts: str) -> dict:
        with open(os.path.join(artifacts, "domains.json")) as fh:
            card = json.load(fh)
        self.topics = {int(c): t["topic"] for c, t in card["clusters"].items()}
        self._load_head(artifacts)
        return super().restore(artifacts)

    # --- apply ------------------------------------------------------------------------------------------
    def score(self, docs: list[Document]) -> list[dict | Reject]:
        out: list[dict | Reject | None] = [None] * len(docs)
        for i, doc in enumerate(docs):
            if not isinstance(doc.metadata.get(self.cluster_field), int):
                out[i] = Reject.for_doc(doc, self.cluster_field, "no cluster on this document: put a cluster step "
                                                                 "before domains")
        vecs, where, out = doc_vectors(docs, self.embedding_field, "domains", "no format can be read from it", out)
        if vecs:
            w, b, classes = self.head
            logits = np.stack(vecs).astype(np.float32) @ w.T + b
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            best = p.argmax(1)
            for i, j, pj in zip(where, best.tolist(), p[np.arange(len(best)), best].tolist()):
                c = docs[i].metadata[self.cluster_field]
                out[i] = {"topic": self.topics.get(c, f"cluster {c}"), "format": classes[j], "format_p": float(pj)}
        return out


def prompts_at_once(engine, judge_batch: int) -> int:
    """Prompts per engine call in the fit: what the engine runs at once, so that the calls between
    progress lines never slow it: a transformers batch, four rounds of an OpenAI server's requests in
    flight, a vLLM engine's whole list (it schedules them itself)."""
    if engine.name == "vllm":
        return 1 << 30
    return max(judge_batch, 4 * getattr(engine, "concurrency", 0))


def in_chunks(prompts: list, chunk: int, call, what: str, log=print) -> list:
    """``call`` over ``prompts`` ``chunk`` at a time, with a progress line at most every 15 s (a 1.5B
    judge on a CPU takes seconds a prompt, and the fit would be silent for minutes)."""
    from textcurate.runner.progress import Ticker

    ticker, out = Ticker(log), []
    for i in range(0, len(prompts), max(1, chunk)):
        out += call(prompts[i:i + max(1, chunk)])
        ticker(f"domains: {what}, {len(out):,} of {len(prompts):,} prompts", len(out), len(prompts), "prompts")
    return out


def name_topics(near: dict[int, list], engine, chunk: int = 8) -> dict[int, dict]:
    """{cluster: {topic, raw, reason, documents}}: the judge names each cluster from its nearest
    documents (synth's naming prompt); clusters named alike share the first one's name and say so."""
    from textcurate.engines.base import GenerationParams
    from textcurate.synth.topics import NAME_PROMPT, clean_name, extracts

    clusters = sorted(near)
    params = GenerationParams(max_tokens=24, temperature=0.0, assistant_prefix="Topic:", stop=["\n"])
    gens = in_chunks([NAME_PROMPT.format(n=len(near[c]), extracts=extracts([r["text"] for r in near[c]]))
                      for c in clusters], chunk, lambda ps: engine.generate_detailed(ps, params), "naming clusters")
    out: dict[int, dict] = {}
    first: dict[str, int] = {}
    for c, g in zip(clusters, gens):
        name = "" if g.error else clean_name(g.text)
        t = {"topic": name, "raw": g.text, "documents": [r["id"] for r in near[c]], "reason": ""}
        if g.error:
            t.update(topic=f"cluster {c}", reason=f"engine error: {g.error}")
        elif not name:
            t.update(topic=f"cluster {c}", reason=f"no name parsed from {g.text[:80]!r}")
        elif name.lower() in first:
            t.update(topic=out[first[name.lower()]]["topic"], reason=f"named like cluster {first[name.lower()]}: one topic")
        else:
            first[name.lower()] = c
            t["reason"] = "named by the judge"
        out[c] = t
    return out


def judge_formats(sample: list[dict], formats: list[str], engine, chunk: int = 8) -> list[tuple[str | None, float]]:
    """(format, probability) per sampled document: the judge's distribution over the choices' numbers
    where its answer starts; (None, 0) where the engine failed or gives no distribution and no
    parsable number."""
    import re

    from textcurate.engines.base import GenerationParams

    choices = "\n".join(f"{i + 1}. {f}" for i, f in enumerate(formats))
    prompts = [FORMAT_PROMPT.format(text=" ".join(r["text"].split())[:PREVIEW_CHARS], choices=choices) for r in sample]
    numbers = [str(i + 1) for i in range(len(formats))]
    params = GenerationParams(max_tokens=3, temperature=0.0, assistant_prefix="Answer:")
    if not prompts:
        return []
    try:
        dists = in_chunks(prompts, chunk, lambda ps: engine.answer_distribution(ps, numbers, params),
                          "labelling formats")
        return [(formats[int(np.argmax(d.probs))], float(np.max(d.probs))) if d.mass > 0 else (None, 0.0)
                for d in dists]
    except NotImplementedError:
        out = []
        for g in in_chunks(prompts, chunk, lambda ps: engine.generate_detailed(ps, params), "labelling formats"):
            m = re.search(r"\d+", g.text or "")
            k = int(m.group()) - 1 if m else -1
            out.append((formats[k], 1.0) if 0 <= k < len(formats) else (None, 0.0))
        return out


def description_head(descriptions: dict[str, str], embedder: str, dim: int | None, artifacts: str) -> dict:
    """The format head without a judge: each format's description embedded by the run's embedder; a
    document's logits are its cosine with each, times ``SHARPNESS`` (the cheapest baseline of
    bench/domains.py, which beat SmolLM2-135M's labels there)."""
    from safetensors.numpy import save_file

    from textcurate.embed.embedder import Embedder

    formats = list(descriptions)
    w = np.asarray(Embedder(embedder).encode([descriptions[f] for f in formats]), dtype=np.float32)
    w /= np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-9)
    if dim is not None and w.shape[1] != dim:
        raise ValueError(f"domains: format_by: embedding: the embedder {embedder!r} gives {w.shape[1]} dimensions, "
                         f"the documents' vectors have {dim}; set embedder to the embed step's model")
    os.makedirs(artifacts, exist_ok=True)
    save_file({"weight": np.ascontiguousarray(SHARPNESS * w), "bias": np.zeros(len(formats), dtype=np.float32)},
              os.path.join(artifacts, "format_head.safetensors"))
    write_json_atomic(os.path.join(artifacts, "format_head.json"), {"classes": formats, "dim": int(w.shape[1])})
    return {"formats": formats, "descriptions": descriptions, "embedder": embedder, "judged": 0, "sampled": 0,
            "label_counts": {}, "head_agreement": None, "majority_share": None, "head_classes": formats}


def train_format_head(sample: list[dict], labels: list[tuple[str | None, float]], formats: list[str], seed: int,
                      artifacts: str) -> dict:
    """A multinomial logistic regression on the sample's vectors and the judge's labels; its weights in
    safetensors, and the card: counts per label, agreement with the judge by 5-fold
    cross-validation (None below 10 labelled rows or with one label), beside the share of the
    commonest label (what always answering it would agree)."""
    from safetensors.numpy import save_file
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    os.makedirs(artifacts, exist_ok=True)
    rows = [(r, lab) for r, (lab, _) in zip(sample, labels) if lab is not None]
    counts = {f: sum(lab == f for _, lab in rows) for f in formats}
    classes = [f for f in formats if counts[f]]
    dim = len(sample[0]["vector"]) if sample else 0
    agreement = None
    if len(classes) >= 2:
        x = np.asarray([r["vector"] for r, _ in rows], dtype=np.float32)
        y = np.asarray([classes.index(lab) for _, lab in rows])
        clf = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
        if len(y) >= 10:  # stratified where every label has 5 rows; else plain folds (a rare label is then
            # sometimes missing from a fold's training rows, and counted as disagreement when it is)
            cv = StratifiedKFold(5, shuffle=True, random_state=seed) if np.bincount(y).min() >= 5 else \
                KFold(5, shuffle=True, random_state=seed)
            pred = cross_val_predict(clf, x, y, cv=cv)
            agreement = round(float((pred == y).mean()), 4)
        clf.fit(x, y)
        w, b = clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)
        if len(classes) == 2:  # sklearn's binary form: one row for class 1
            w, b = np.concatenate([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
    else:  # one label or none: every document gets it
        classes = classes or ["other"]
        w, b = np.zeros((1, dim), dtype=np.float32), np.zeros(1, dtype=np.float32)
    save_file({"weight": np.ascontiguousarray(w), "bias": np.ascontiguousarray(b)},
              os.path.join(artifacts, "format_head.safetensors"))
    write_json_atomic(os.path.join(artifacts, "format_head.json"), {"classes": classes, "dim": dim})
    majority = round(max(counts.values()) / len(rows), 4) if rows else None
    return {"formats": formats, "judged": len(rows), "sampled": len(sample), "label_counts": counts,
            "head_agreement": agreement, "majority_share": majority, "head_classes": classes}


@stage("domains", needs=[Needs("embedding_field", EMBEDDING_KEY, ("embed",), "the format head reads the embeddings"),
                         Needs("cluster_field", "cluster_id", ("cluster",), "a topic is a named cluster")])
class DomainsParams(ScorerParams):
    """Topic (the judge names each cluster) and format (a head on the embeddings learns the judge's
    labels of a sample): topic, format, format_p (fitted)."""
    cluster_field: str = Field("cluster_id", description="metadata field holding the cluster")
    sim_field: str = Field("centroid_sim", description="metadata field holding the cosine to the centroid (the "
                                                       "nearest documents name the cluster)")
    embedding_field: str = Field(EMBEDDING_KEY, description="metadata field holding the vector")
    per_cluster: int = Field(3, ge=1, description="documents nearest each centroid that the judge reads")
    format_sample: int = Field(300, ge=2, description="documents (smallest id-hashes) the judge labels for the "
                                                      "format head")
    formats: list[str] = Field(FORMATS, min_length=2, description="the format labels, in the order the judge sees")
    format_by: Literal["judge", "embedding"] = Field("judge", description=(
        "judge: the judge labels a sample and a head learns its labels; embedding: no judge, each document gets "
        "the format whose description is nearest its vector"))
    descriptions: dict[str, str] | None = Field(None, description="format_by embedding: a description per format "
                                                                  "(default: built in for the default formats)")
    embedder: str = Field("minilm", description="format_by embedding: the embed step's model, to embed the "
                                                "descriptions")
    engine: EngineSpec = EngineSpec()
    judge_batch: int = Field(8, ge=1, description="prompts per engine call")
    seed: int = Field(0, description="seeds the sample's id-hash and the head")
    provides = frozenset({"topic", "format", "format_p"})

    @model_validator(mode="after")
    def _descriptions_of_formats(self):
        unknown = sorted(set(self.descriptions or {}) - set(self.formats))
        if unknown:
            raise ValueError(f"descriptions: {unknown} are not among the formats {self.formats}")
        return self

    def fields_read(self) -> dict[str, list[str]]:
        return {"cluster_field": [self.cluster_field], "embedding_field": [self.embedding_field]}

    def build(self, paths: RunPaths, name: str):
        return Domains(**self.step_kwargs(), **self.scorer_kwargs(paths, name))
