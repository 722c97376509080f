"""Data valuation at the level where it is affordable: units (sources, clusters, buckets) valued by
leave-one-out, Data Shapley and Data Banzhaf over a small-LM utility, and per-document influence
functions for the classifier head on embeddings, checked against its real leave-one-out.

games.py      the estimators over any cached utility U(subset)
run.py        the small-LM utility over units, and the annotation influence entry point
influence.py  influence functions for a ridge head on embeddings, and its exact leave-one-out
cli.py        the ``textcurate value`` verb; report.py its section
"""
