"""The ``minhash`` step: datatrove's MinHash deduplication as one stage of a textcurate pipeline.

datatrove runs MinHash as four pipelines (signatures, buckets, clusters, filter). Here they
map onto a fitted stage, with datatrove's own classes doing all the work: the fit phase
streams the corpus into ``MinhashDedupSignature``, the fit runs ``MinhashDedupBuckets`` for
every bucket and ``MinhashDedupCluster`` once, and the applying pass is
``MinhashDedupFilter``. The filter finds documents by their position in the task's stream,
which is the same in both passes because the reader and the steps before are deterministic.
So lexical (MinHash) and semantic (SemDeDup) deduplication compose in one YAML pipeline.

The word tokenizer. datatrove's signatures split words with its per-language tokenizer (spaCy
for English), after ``simplify_text`` has lower-cased the text, removed punctuation and
normalised whitespace; on this project's machines that tokenizer is about 90 % of the
signature's time. ``tokenizer: whitespace`` splits the simplified text on whitespace instead.
What it changes: after simplification the two agree on most English words; spaCy still splits a
few forms (contractions such as "dont" -> "do", "nt"; some numbers and hyphen-free compounds),
so the shingles, and the signatures, differ slightly, and duplicates are found at about the
same rate (``bench/minhash.py`` measures recall on planted near-duplicates beside datatrove's
default). For languages written without spaces between words (Chinese, Japanese, Thai, ...)
a whitespace split makes whole clauses into one "word": ``auto`` (the default) keeps
datatrove's tokenizer for every language outside a list written with spaces.
"""

from __future__ import annotations

import glob
import os
import struct

from datatrove.pipeline.base import PipelineStep
from datatrove.utils.hashing import HashConfig
from datatrove.utils.word_tokenizers import WordTokenizer
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                              MinhashDedupFilter, MinhashDedupSignature)

from typing import Literal

from pydantic import Field

from textcurate.registry import RunPaths, StageParams, stage
from textcurate.steps.fitted import FittedStage


# languages written with spaces between words: ``tokenizer: auto`` splits these on whitespace
SPACED = frozenset("""en fr de es it pt nl sv da no nb nn fi is et lv lt pl cs sk sl hr sr bs hu ro bg ru uk be mk
    el tr az kk uz ky tg mn ka hy he ar fa ur ps ku hi mr ne bn pa gu or ta te kn ml si sw so ha yo ig zu xh af
    ga cy gd br eu ca gl oc la eo id ms tl vi mt sq lb fy""".split())


class WhitespaceTokenizer(WordTokenizer):
    """Words are the text's whitespace-separated runs (datatrove's tokenizer interface)."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in text.splitlines() if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        import re

        return [m.span() for m in re.finditer(r"\S+", text)]


def word_tokenizer(tokenizer: str, language: str):
    """What datatrove's ``MinhashDedupSignature`` takes as ``language``: a language code (its own
    tokenizer) or a tokenizer object."""
    if tokenizer == "whitespace" or (tokenizer == "auto" and language in SPACED):
        return WhitespaceTokenizer(language)
    return language


class MinHashDedup(FittedStage, PipelineStep):
    type = "🫂 - DEDUP"
    name = "minhash"

    def __init__(self, *, n_grams: int, num_buckets: int, hashes_per_bucket: int, seed: int, language: str,
                 hash_fc: str, tokenizer: str, step_name: str = "minhash"):
        super().__init__()
        # sha1 by default: datatrove 0.10.1's xxhash path passes str, which xxhash>=4 (what
        # `datasets` pulls in) refuses
        self.config = MinhashConfig(n_grams=n_grams, num_buckets=num_buckets, hashes_per_bucket=hashes_per_bucket,
                                    seed=seed, hash_config=HashConfig(hash_fc=hash_fc))
        self.language = language
        self.tokenizer = tokenizer
        self.step_name = step_name
        self.remove_folder: str | None = None

    def write_fit_stream(self, data, folder: str, rank: int, world_size: int) -> None:
        MinhashDedupSignature(os.path.join(folder, "signatures"), self.config,
                              word_tokenizer(self.tokenizer, self.language)).run(data, rank, world_size)

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        sigs, buckets = os.path.join(folder, "signatures"), os.path.join(folder, "buckets")
        self.remove_folder = os.path.join(folder, "remove_ids")
        for bucket in range(self.config.num_buckets):
            MinhashDedupBuckets(sigs, buckets, config=self.config).run(None, bucket, self.config.num_buckets)
        MinhashDedupCluster(buckets, self.remove_folder, config=self.config, save_cluster_id=True,
                            save_cluster_size=True).run(None, 0, 1)
        tok = word_tokenizer(self.tokenizer, self.language)
        removed = sum(os.path.getsize(p) // struct.calcsize("I")
                      for p in glob.glob(os.path.join(self.remove_folder, "*.remove")))
        self.decision = {"kind": "minhash", "duplicates": int(removed), "config": str(self.config),
                         "n_grams": self.config.n_grams, "num_buckets": self.config.num_buckets,
                         "hashes_per_bucket": self.config.hashes_per_bucket, "language": self.language,
                         "tokenizer": "datatrove's for " + tok if isinstance(tok, str) else "whitespace",
                         "remove_folder": self.remove_folder}
        return self.decision

    def restore(self, artifacts: str) -> dict:
        decision = super().restore(artifacts)
        self.remove_folder = decision["remove_folder"]
        return decision

    def run(self, data, rank: int = 0, world_size: int = 1):
        self.require_fitted()
        step = MinhashDedupFilter(self.remove_folder, load_cluster_ids=True, load_cluster_sizes=True)
        for doc in step.run(data, rank, world_size):
            yield doc
        for key, metric in step.stats.stats.items():
            self.stats[key] = metric


@stage("minhash")
class MinHashParams(StageParams):
    """datatrove's MinHash deduplication as one stage (fitted)."""
    n_grams: int = Field(5, ge=1)
    num_buckets: int = Field(14, ge=1)
    hashes_per_bucket: int = Field(8, ge=1)
    seed: int = 1
    language: str = "en"
    hash_fc: str = Field("sha1", pattern="^(sha1|xxhash)$")
    tokenizer: Literal["auto", "whitespace", "datatrove"] = Field(
        "auto", description="words of the simplified text: whitespace (a split, several times faster), datatrove "
                            "(its tokenizer for the language: spaCy for English), auto (whitespace for languages "
                            "written with spaces, else datatrove's)")
    provides = frozenset()

    def build(self, paths: RunPaths, name: str):
        return MinHashDedup(**self.step_kwargs(), step_name=name)
