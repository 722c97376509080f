"""Scores from the answer's token distribution, with the transformers engine and the packaged
SmolLM2-135M: the digits' probabilities at the answer position, the rubric's prefix computed once.
(The vllm and openai backends against a real vLLM are in test_engines_vllm.py; the openai parsing
against a loopback server in test_engines_http.py.)"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest
import torch

from conftest import STDLIB_MODULES
from textcurate.engines.base import GenerationParams
from textcurate.engines.hf import TransformersEngine
from textcurate.judge.prompt import ANSWER_PREFIX, build_prompt

pytestmark = pytest.mark.slow  # loads SmolLM2 and runs it: minutes on a 2-core AVX2 CPU

CHOICES = [str(i) for i in range(6)]


@pytest.fixture(scope="module")
def prompts():
    texts = [inspect.getdoc(importlib.import_module(m)) for m in STDLIB_MODULES[:24]]
    return [build_prompt(t, 400) for t in texts if t and t.strip()][:6]


def test_distribution_equals_the_model_read_directly(prompts):
    params = GenerationParams(assistant_prefix=ANSWER_PREFIX)
    fast = TransformersEngine("smollm2", batch_size=4, reuse_prefix=True, dtype="float32")  # exact: fp32
    got = fast.answer_distribution(prompts, CHOICES, params)
    assert len(fast._prefix_ids) > 150  # the rubric, shared by every prompt, computed once
    # the reference: each whole prompt through the model, no cache, no batch
    lm, tok = fast._load()
    ids = {c: [enc[0] for s in (c, " " + c) if len(enc := tok.encode(s, add_special_tokens=False)) == 1]
           for c in CHOICES}
    # a tokenizer without single-token " 3" (SmolLM2's, Qwen's) gets the space in the prefix
    spaced = all(len(tok.encode(" " + c, add_special_tokens=False)) == 1 for c in CHOICES)
    assert fast._choice_ids(CHOICES)[1] == ("" if spaced else " ")
    for prompt, d in zip(prompts, got):
        text = fast._render(prompt, ANSWER_PREFIX + ("" if spaced else " "))
        x = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            p = torch.softmax(lm(input_ids=x).logits[0, -1].float(), dim=-1)
        mass = np.array([sum(float(p[i]) for i in ids[c]) for c in CHOICES])
        assert d.mass == pytest.approx(mass.sum(), abs=1e-4)
        assert d.probs == pytest.approx(list(mass / mass.sum()), abs=1e-4)
        assert 0 <= d.expected <= 5 and d.argmax == CHOICES[int(np.argmax(mass))]
    # without reuse, one at a time: the same numbers
    slow = TransformersEngine("smollm2", batch_size=1, reuse_prefix=False, dtype="float32")
    ref = [slow.answer_distribution([q], CHOICES, params)[0] for q in prompts]
    assert slow._prefix_ids == []
    assert [d.expected for d in got] == pytest.approx([r.expected for r in ref], abs=1e-4)
    # a single prompt after a batch reuses the cached rubric
    one = fast.answer_distribution(prompts[:1], CHOICES, params)[0]
    assert one.expected == pytest.approx(got[0].expected, abs=1e-4)


def test_choices_must_be_single_tokens():
    eng = TransformersEngine("smollm2")
    with pytest.raises(ValueError, match="not single tokens"):
        eng.answer_distribution(["x"], ["zero", "one-hundred-and-five"])
