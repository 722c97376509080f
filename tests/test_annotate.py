"""Annotation runs with the transformers engine on a tiny local model: rows for every
document, unparsable outputs kept with their raw text and a reason, resume after a crash."""

import pyarrow.parquet as pq
import pytest
from datatrove.data import Document

from textcurate.engines.hf import TransformersEngine
from textcurate.judge.annotate import annotate, sample_documents
from textcurate.engines.base import GenerationParams
from textcurate.judge.prompt import PROMPT_VERSION, PROMPTS


class CrashAfter(TransformersEngine):
    """The real engine, made to fail on its n-th call (a crash in the middle of a run)."""

    def __init__(self, model, n):
        super().__init__(model, batch_size=4)
        self.calls, self.n = 0, n

    def generate(self, prompts, params=None):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt("simulated crash")
        return super().generate(prompts, params)


def test_transformers_engine_generates_deterministically(tiny_lm):
    eng = TransformersEngine(tiny_lm, batch_size=2)
    a = eng.generate(["hello there", "a second, longer prompt for padding"], None)
    assert len(a) == 2 and a == eng.generate(["hello there", "a second, longer prompt for padding"], None)


def test_annotate_records_everything_and_resumes(tiny_lm, tmp_path):
    docs = sample_documents([Document(text=f"document {i} about rivers", id=f"d{i}") for i in range(30)], 10, seed=1)
    assert len(docs) == 10 and docs == sample_documents(iter(docs[::-1]), 10, seed=1)
    out = str(tmp_path / "ann.parquet")
    with pytest.raises(KeyboardInterrupt):
        annotate(docs, CrashAfter(tiny_lm, 2), out, batch_size=4)
    eng = CrashAfter(tiny_lm, 99)
    table = annotate(docs, eng, out, batch_size=4)
    assert eng.calls == 2  # 4 were done before the crash; 6 remained, in 2 batches
    rows = table.to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(d.id for d in docs)
    for r in rows:  # a random tiny model cannot answer the rubric: recorded, never guessed
        assert r["score"] is None and r["reason"] and r["raw"] is not None and r["engine"] == "transformers"
        assert r["prompt_version"] == PROMPT_VERSION and r["injection_suspected"] is False and r["text"].startswith("document")
    assert pq.read_table(out).num_rows == 10


@pytest.mark.parametrize("scoring", ["both", "distribution"])
def test_annotate_records_the_answer_distribution(tiny_lm, tmp_path, scoring):
    docs = [Document(text=f"document {i} about rivers and lakes", id=f"d{i}") for i in range(5)]
    table = annotate(docs, TransformersEngine(tiny_lm, batch_size=4), str(tmp_path / "a.parquet"), batch_size=4,
                     scoring=scoring)
    for r in table.to_pylist():
        assert 0 <= r["score_expected"] <= 5 and 0 < r["score_mass"] <= 1 + 1e-6 and 0 <= r["score_argmax"] <= 5
        if scoring == "distribution":  # nothing generated: the label is the most likely digit
            assert r["raw"] is None and r["score"] == r["score_argmax"] and r["reason"] == "distribution"
        else:
            assert r["raw"] is not None
    with pytest.raises(ValueError, match="scoring must be"):
        annotate(docs, TransformersEngine(tiny_lm), str(tmp_path / "b.parquet"), scoring="guess")


def test_annotate_with_a_yes_no_prompt_and_the_documents_sources(tiny_lm, tmp_path):
    """Ask-LLM reads P(Yes) as 5 x P(Yes); a yes/no prompt has no written score to parse, so
    generating is refused; the documents' source and split metadata are kept for train-classifier."""
    docs = [Document(text=f"document {i} about rivers and lakes", id=f"d{i}",
                     metadata={"source": f"pkg{i % 2}", "split": "test" if i % 2 else "train"}) for i in range(4)]
    eng = TransformersEngine(tiny_lm, batch_size=4)
    table = annotate(docs, eng, str(tmp_path / "a.parquet"), scoring="distribution", prompt="ask-llm-v1")
    direct = eng.answer_distribution([PROMPTS["ask-llm-v1"].build(d.text) for d in docs], ["Yes", "No"],
                                     GenerationParams(assistant_prefix="Answer:"))
    for r, d in zip(table.to_pylist(), direct):
        assert r["prompt_version"] == "ask-llm-v1" and r["score_argmax"] in (0, 5)
        assert r["score_expected"] == pytest.approx(5 * d.probs[0], abs=1e-5)
        assert r["source"] == f"pkg{int(r['id'][1:]) % 2}" and r["split"] in ("train", "test")
    with pytest.raises(ValueError, match="use --scoring distribution"):
        annotate(docs, eng, str(tmp_path / "b.parquet"), scoring="generate", prompt="ask-llm-v1")
    with pytest.raises(ValueError, match="prompt must be one of"):
        annotate(docs, eng, str(tmp_path / "c.parquet"), prompt="no-such-prompt")


def test_injection_report_reads_the_continuous_score(tiny_lm):
    """With scoring='distribution' every pair is scored (no parsing to fail), a pair moved when its
    score changed by the threshold, and a yes/no prompt works; a fence-only run of another prompt
    and generating for a yes/no prompt are refused."""
    from textcurate.judge.injection import INJECTIONS, injection_report

    eng = TransformersEngine(tiny_lm, batch_size=4)
    texts = [f"document {i} about rivers and lakes and how water moves" for i in range(3)]
    r = injection_report(eng, texts, prompt="ask-llm-v1", scoring="distribution", threshold=0.0)
    assert r["pairs"] == r["both_parsed"] == len(INJECTIONS) * len(texts) and r["prompt"] == "ask-llm-v1"
    assert r["moved"] == r["pairs"]  # threshold 0: every pair counts as moved
    assert abs(r["mean_shift"]) <= 5
    with pytest.raises(ValueError, match="fence-only"):
        injection_report(eng, texts, prompt="ask-llm-v1", scoring="distribution", neutralise_requests=False)
    with pytest.raises(ValueError, match="no written 0-5 answer"):
        injection_report(eng, texts, prompt="ask-llm-v1")
