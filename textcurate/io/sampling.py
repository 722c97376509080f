"""Salts of every id-hash split and sample, named here once, and ``in_share``: whether a document's
id-hash falls in a share. Every wing that splits or samples by id reads its salt here, so that two
wings that must agree (evaluate and influence hold out the same target) agree by construction, and
two that must not (a BPE sample, a validation split) never reuse one salt."""

from __future__ import annotations

from textcurate.io.records import hash_share

TARGET_SALT = 101        # the held-out target of evaluate and influence (``split_target``): the same documents
GENERAL_SALT = 202       # evaluate's general held-out sample
BPE_SAMPLE_SALT = 303    # evaluate's sample of the pool for training the BPE
PROXY_BPE_SALT = 404     # the mixture proxies' sample of the sources for training the BPE
MIX_TARGET_SALT = 505    # a fitted mixture's held-out target (mix.run.fit_weights)
MATERIALISE_SALT = 7919  # mix/materialise.py's per-pass document order
RANDOM_SUBSET_SALT = 7   # evaluate's seeded permutation of the pool: rng([seed, 7])
WARMUP_SALT = 11         # influence's seeded warm-up subset: rng([seed, 11])
SAMPLE_SALT = 0x5A3D    # io.readers.read_sample's uniform sample of a pool (smallest id-hashes)
REPORT_SAMPLE_SALT = 0x7E57  # the report's example documents (the middle of a score, a cluster's few)
HEAD_VALIDATION_SALT = 13  # value's annotations held out as the head's validation loss: hash salt seed + 13


def in_share(doc_id: str, share: float, salt: int) -> bool:
    return hash_share(doc_id, salt) < share
