"""Embedding-space distillation: a small weighted set of real documents whose embeddings keep the
corpus's distribution (distribution matching, then back to documents), with the classic coresets
beside it and the metrics that compare them. Work in progress: see methods.py for what exists."""
