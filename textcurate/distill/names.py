"""The names distill's parameters choose among, without the algorithms (which import torch): the
stage's parameter model validates with these ``Literal``s, and the CLI shows them as choices."""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["dm", "herding", "kcenter", "facility", "medoids", "density", "random"]
LabelMethod = Literal["dd", "gm", "tm", "dm"]
Coreset = Literal["random", "herding", "kcenter"]
Head = Literal["linear", "mlp"]
Weights = Literal["kernel", "mass"]
Mapping = Literal["greedy", "nearest"]

METHODS: tuple[str, ...] = get_args(Method)
LABEL_METHODS: tuple[str, ...] = get_args(LabelMethod)
CORESETS: tuple[str, ...] = get_args(Coreset)
HEADS: tuple[str, ...] = get_args(Head)
WEIGHTS: tuple[str, ...] = get_args(Weights)
MAPPINGS: tuple[str, ...] = get_args(Mapping)
SAMPLE = 100_000  # documents the methods hold in memory by default
