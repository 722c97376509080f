"""Influence: per-example gradients, random projections, TRAK and LESS scores."""
