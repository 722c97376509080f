"""Embedding-space distillation: a small weighted set of real documents whose embeddings keep the
corpus's distribution (distribution matching, then back to documents), with the classic coresets
beside it and the metrics that compare them.

store.py    the rows: a feature store streamed in blocks, or an array (one interface)
kernels.py  the kernel of DM and of the metrics (Gaussians around the median distance + linear)
methods.py  dm, herding, kcenter, facility, medoids, density, random; weights
metrics.py  MMD^2 to held-out documents, covering radius, cluster-histogram KL
run.py      one distillation with its baselines, and its files
stage.py    the ``distill`` pipeline stage; cli.py the ``textcurate distill`` verb; report.py its section
"""
