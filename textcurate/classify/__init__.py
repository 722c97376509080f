"""Heads on frozen embeddings, a fast hashed n-gram model, training, metrics, artifacts."""
