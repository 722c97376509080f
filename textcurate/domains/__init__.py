"""Domains a mixture can weigh: every document's topic (the judge names each cluster) and format
(a head on the embeddings learns the judge's labels of a sample), and the report's domain x
quality table. Stage: ``domains``."""
