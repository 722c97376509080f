"""Embeddings: computed once per corpus, stored as float16 shards, read by every later stage."""
