"""Synthetic textbooks: seeds -> topics -> a prompt grid -> generation -> quality gates.

``textcurate synth`` and ``pipelines/textbooks.yaml``: the pipeline's input is of type
``synth`` (``source.py``): before the run it names topics from the seed corpus's clusters
(``topics.py``) and samples a grid of prompts (``prompts.py``); the run's tasks then generate
the pages through an engine, resumably (``generate.py``), and the pages flow through ordinary
stages: ``synth_check`` and ``decontaminate`` (``stage.py``), the classifier, MinHash.
"""
