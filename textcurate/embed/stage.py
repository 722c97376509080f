"""The ``embed`` step: writes the feature store and hands each vector to the next steps.

``features/NAME/RANK.parquet`` holds ``id`` and ``embedding`` (float16, fixed length), in
stream order, with the same checkpoints and resume as an attribute table. The vector also
travels with the document as ``metadata["__embedding__"]`` (float32), which writers never
write, so a classifier head after this step does not embed again.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
from datatrove.data import Document
from pydantic import Field

from textcurate.embed.embedder import Embedder
from textcurate.io.files import as_vector_type, vector_type
from textcurate.io.rejects import Reject
from textcurate.registry import RunPaths, ScorerParams, stage
from textcurate.steps.base import Scorer

EMBEDDING_KEY = "__embedding__"


class Embed(Scorer):
    name = "embed"
    default_batch_size = 256
    default_checkpoint_every = 1024

    def __init__(self, *, model: str, max_tokens: int, encode_batch_size: int | None, device: str, dtype: str,
                 trust_remote_code: bool, features_folder: str | None = None, **kwargs):
        super().__init__(attributes_folder=features_folder, **kwargs)
        self.embedder = Embedder(model, max_tokens=max_tokens, batch_size=encode_batch_size, device=device,
                                 dtype=dtype, trust_remote_code=trust_remote_code)

    def setup(self, rank: int) -> None:
        # a later pass over a finished shard (a fit phase, a resume) answers from the store: take
        # the dimension from it rather than load the model only to learn its width
        stored = os.path.join(self.attributes_folder or "", self.step_name, f"{rank:05d}.parquet")
        if self.attributes_folder and os.path.exists(stored):
            self.columns = {"embedding": as_vector_type(pq.read_schema(stored).field("embedding").type)}
        else:
            self.columns = {"embedding": vector_type(self.embedder.dim)}

    def score(self, docs: list[Document]) -> list[dict | Reject]:
        vecs = self.embedder.encode([d.text for d in docs])
        return [{"embedding": v} for v in vecs]

    def _as_stored(self, results: list) -> list:
        # float16 as stored, float32 in memory: a resumed run hands on the very same vectors
        return [r if isinstance(r, Reject) else {"embedding": np.asarray(r["embedding"], dtype=np.float16)}
                for r in results]

    def to_metadata(self, row: dict) -> dict:
        return {EMBEDDING_KEY: np.asarray(row["embedding"], dtype=np.float32)}


@stage("embed")
class EmbedParams(ScorerParams):
    """Sentence embeddings into the feature store (features/NAME/)."""
    model: str = Field("minilm", description="sentence-transformers id or path; 'minilm' = the packaged MiniLM")
    max_tokens: int = Field(256, ge=1, description="tokens of each document the embedder sees")
    encode_batch_size: int | None = Field(None, ge=1, description="texts per forward pass; None: 32 on a CPU, "
                                                                  "512 on a GPU")
    device: str = Field("auto", description="auto | cpu | cuda[:N]")
    dtype: str = Field("auto", description="auto (bf16 where the hardware has it) | float32 | bfloat16 | float16")
    trust_remote_code: bool = Field(False, description="let the model's repository run its own code")
    provides = frozenset({EMBEDDING_KEY})

    def preflight(self) -> None:
        from textcurate.embed.embedder import check_model

        check_model(self.model)

    def build(self, paths: RunPaths, name: str):
        kw = self.scorer_kwargs(paths, name)
        kw.pop("attributes_folder")
        return Embed(**self.step_kwargs(), features_folder=paths.features, **kw)


def read_features(folder: str) -> tuple[list[str], np.ndarray]:
    """(ids, float32 [n, dim]) of a feature store folder, all tasks in rank order."""
    import glob
    import os

    import pyarrow.parquet as pq

    ids: list[str] = []
    parts = []
    for path in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        t = pq.read_table(path)
        ids.extend(t.column("id").to_pylist())
        col = t.column("embedding").combine_chunks()
        dim = col.type.list_size
        parts.append(col.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim))
    if not parts:
        raise FileNotFoundError(f"no feature shards in {folder}")
    return ids, np.concatenate(parts)
