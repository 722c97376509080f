"""Synthetic textbooks: the prompt grid, generation that resumes, the gates, the pipeline.

The writer is a real OpenAI-shaped HTTP server on loopback (http.server in a thread) that
writes pages by the prompt's topic, so every path is deterministic and countable: ``fail``
topics answer HTTP 500 (retried, then recorded), ``short`` a line, ``cut`` a page with
finish_reason ``length``, ``copy`` the seed extract back, ``twin`` the same page with a word
changed (a near-copy for MinHash), ``bench`` a page that quotes a benchmark passage re-wrapped
and re-cased. Topics and seeds come from the fixture; the topic names and P(Yes) of a real
engine are tested with SmolLM2.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import loopback_server, read_output_docs, write_jsonl
from textcurate.synth.prompts import AUDIENCES, STYLES, TEMPLATE_VERSION, prompt_grid

BENCH = [{"id": "q1", "text": "Which git command records the staged changes of the working tree as a new commit in "
                              "the current branch's history? A) git push B) git add C) git commit D) git fetch."},
         {"id": "q2", "text": "What is the time complexity of looking up a key in a hash table on average, when the "
                              "hash function spreads keys evenly? A) O(1) B) O(log n) C) O(n)."}]


SENTENCES = [f"{a} {b} {c}." for a, b, c in zip(
    ["An ordered list", "A hash table", "A queue", "A stack", "A binary tree", "A graph", "A heap", "A trie",
     "A linked list", "An array", "A set", "A matrix", "A string", "A deque", "A bitmap"],
    ["lets a program", "helps a student", "allows an engineer", "makes it easy to", "is how a compiler can",
     "shows a reader how to", "teaches a class to", "gives a library a way to", "lets a database",
     "helps a search engine", "allows a game to", "makes a scheduler", "lets a router", "helps a parser",
     "lets a spreadsheet"],
    ["find an item by halving the range", "count words in a novel", "serve customers in order",
     "undo the last edit", "keep keys sorted for range queries", "plan the shortest route between cities",
     "always pick the most urgent job", "complete a word as it is typed", "insert in the middle cheaply",
     "index pixels of an image", "test membership in constant time", "rotate shapes in a drawing",
     "match a pattern in a log line", "add and remove at both ends", "track which pages are free"])]


def page_for(topic: str, extract: str, n: int) -> tuple[str, str]:
    """(text, finish_reason) the fake writer returns for a prompt on ``topic`` (the n-th request)."""
    import random

    rng = random.Random(n)
    body = f"Lesson {n} on {topic}. " + " ".join(rng.sample(SENTENCES, 6)) + " Try the exercise at the end. "
    if topic.startswith("short"):
        return "Too short.", "stop"
    if topic.startswith("cut"):
        return body * 2, "length"
    if topic.startswith("copy"):
        return extract, "stop"
    if topic.startswith("twin"):
        text = ("A page about queues: a queue keeps items in the order they arrive; the first item in is the "
                "first item out. Printers, network routers and call centres use queues, and a program can "
                "model one with a list or a deque whose appendleft and pop run in constant time. ") * 3
        return text.replace("constant", "constant" if n % 2 else "steady"), "stop"
    if topic.startswith("bench"):
        quoted = BENCH[0]["text"].upper().replace(" ", "\n", 5).replace("?", " ?").replace(",", "")
        return f"Review question for the chapter on version control.\n{quoted}\nThink before you answer. " + body, \
            "stop"
    return body, "stop"


class Writer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        st = self.server.state
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        topic = re.search(r"Topic: ([^,.\n]+)", prompt).group(1)
        extract = prompt.split("<extract>\n")[1].split("\n</extract>")[0] if "<extract>" in prompt else ""
        with st["lock"]:
            st["hits"][prompt] += 1
            n = sum(st["hits"].values())
        time.sleep(st.get("delay", 0.0))
        if topic.startswith("fail"):
            data, status = b'{"error": "overloaded"}', 500
        else:
            text, reason = page_for(topic, extract, n)
            data, status = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"], "choices": [
                {"index": 0, "finish_reason": reason, "message": {"role": "assistant", "content": text}}]}).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def writer():
    yield from loopback_server(Writer, {"lock": threading.Lock(), "hits": Counter()})


def test_prompt_grid_is_deterministic_and_covers_every_cell():
    topics = [{"topic": f"topic {i}", "subtopics": [f"sub {i}a", f"sub {i}b"],
               "seeds": [{"id": f"s{i}{j}", "text": f"seed text {i} {j} " * 200} for j in range(3)]} for i in range(3)]
    auds, styles = list(AUDIENCES)[:3], list(STYLES)[:4]
    n_cells = 3 * len(auds) * len(styles)
    a = prompt_grid(topics, n_cells, auds, styles, seed=7, extract_chars=300)
    b = prompt_grid(topics, n_cells, auds, styles, seed=7, extract_chars=300)
    assert [r.prompt_id for r in a] == [r.prompt_id for r in b] and [r.prompt for r in a] == [r.prompt for r in b]
    assert Counter((r.topic, r.audience, r.style) for r in a) == Counter(
        {(t["topic"], x, y): 1 for t in topics for x in auds for y in styles})  # each cell exactly once
    more = prompt_grid(topics, 2 * n_cells + 5, auds, styles, seed=7, extract_chars=300)
    assert min(Counter((r.topic, r.audience, r.style) for r in more).values()) == 2
    assert len({r.prompt_id for r in more}) == len(more)
    c = prompt_grid(topics, n_cells, auds, styles, seed=8, extract_chars=300)
    assert [r.prompt_id for r in c] != [r.prompt_id for r in a]
    assert all(r.template_version == TEMPLATE_VERSION and len(r.seed_extract) <= 300 and r.seed_extract in r.prompt
               for r in a)
    assert len({r.framing for r in a}) > 1  # openings vary
    with pytest.raises(ValueError, match="unknown audience"):
        prompt_grid(topics, 3, ["toddlers"], styles)


def _pipeline(tmp_path, url, topics, pages, tasks=1, delay_stage=False):
    seeds = [{"id": f"seed-{i}", "text": f"Seed document {i} about {t}: " + " ".join(
        f"word{i}_{j}" for j in range(150))} for i, t in enumerate(topics * 2)]
    write_jsonl(tmp_path / "seeds" / "s.jsonl", seeds)
    write_jsonl(tmp_path / "bench.jsonl", BENCH)
    return {"name": "synth-test", "input": {
        "type": "synth", "seeds": {"type": "jsonl", "path": str(tmp_path / "seeds")}, "topics": topics,
        "pages": pages, "audiences": ["high_school", "college"], "styles": ["textbook_academic", "how_to"],
        "extract_chars": 400, "engine": {"kind": "openai", "model": "writer", "base_url": url, "concurrency": 1,
                                          "max_retries": 1, "timeout": 10},
        "max_tokens": 200, "batch_size": 2},
        "stages": [{"type": "synth_check", "min_chars": 100}, {"type": "text_stats"},
                   {"type": "minhash"}, {"type": "decontaminate", "benchmarks": [str(tmp_path / "bench.jsonl")]}],
        "output": {"path": str(tmp_path / "run")}, "executor": {"type": "local", "tasks": tasks}}


def test_pipeline_gates_every_failure_with_its_reason(tmp_path, writer):
    from textcurate.config import parse_pipeline
    from textcurate.runner.run import run_pipeline

    srv, url = writer
    topics = ["binary search", "fail hard", "short answers", "cut pages", "copy the seed", "twin queues",
              "bench questions"]
    cfg = parse_pipeline(_pipeline(tmp_path, url, topics, pages=28))
    rec = run_pipeline(cfg, report=True)
    led = rec["ledger"]["totals"]
    assert rec["status"] == "complete" and led["in"] == 28 and led["balanced"]
    docs = read_output_docs(tmp_path / "run")
    assert led["kept"] == len(docs)
    by = {k.split(": ", 2)[2]: v for k, v in rec["rejects"]["by_reason"].items()}
    assert by["engine error"] == 4 and by["shorter than min_chars"] == 4 and by["copies its seed extract"] == 4
    assert by["truncated at max_tokens (N chars)"] == 4
    assert by["contains a benchmark text"] == 4  # re-wrapped, upper-cased, punctuation moved
    minhash = next(s for s in rec["ledger"]["steps"] if s["step"] == "minhash")
    assert minhash["dropped"] == 3  # the four near-copies of one page keep one
    topics_kept = Counter(d["metadata"]["topic"] for d in docs)
    assert topics_kept["binary search"] == 4 and topics_kept["twin queues"] == 1  # 4 near-copies -> 1
    assert all(d["metadata"]["prompt_id"] and d["metadata"]["template_version"] == TEMPLATE_VERSION
               and d["id"] == "synth-" + d["metadata"]["prompt_id"] for d in docs)
    # failures were retried (1 retry) and recorded, the others asked once
    fails = [p for p in srv.state["hits"] if "Topic: fail" in p]
    assert len(fails) == 4 and all(srv.state["hits"][p] == 2 for p in fails)
    assert all(v == 1 for p, v in srv.state["hits"].items() if "Topic: fail" not in p)
    rej = [json.loads(ln) for f in (tmp_path / "run" / "rejects" / "decontaminate").iterdir()
           for ln in f.read_text().splitlines()]
    assert all("id q1" in r["reason"] and str(tmp_path / "bench.jsonl") in r["reason"] for r in rej)
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Synthetic pages" in html and "Decontamination" in html and "distinct_2" in html


@pytest.mark.slow
def test_killed_generation_resumes_without_regenerating(tmp_path, writer):
    """kill -9 the run once some parts are written; the rerun asks the engine only for the rest, and
    every prompt is written once."""
    import yaml

    srv, url = writer
    srv.state["delay"] = 0.4
    data = _pipeline(tmp_path, url, ["binary search", "hash tables", "git branches"], pages=12)
    data["stages"] = [{"type": "synth_check", "min_chars": 100}]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    cmd = [sys.executable, "-m", "textcurate", "run", str(tmp_path / "p.yaml")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = tmp_path / "run" / "artifacts" / "synth" / "generated"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("*.parquet")) if parts.exists() else []) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    import pyarrow.parquet as pq

    written = {r for f in parts.glob("*.parquet") for r in pq.read_table(f).column("prompt_id").to_pylist()}
    assert 4 <= len(written) < 12
    before = Counter(srv.state["hits"])
    srv.state["delay"] = 0.0
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    again = srv.state["hits"] - before
    asked = {p for p in again}
    prompts = pq.read_table(tmp_path / "run" / "artifacts" / "synth" / "prompts.parquet").to_pylist()
    by_prompt = {p["prompt"]: p["prompt_id"] for p in prompts}
    assert not {by_prompt[p] for p in asked} & written  # nothing already written was asked again
    docs = read_output_docs(tmp_path / "run")
    assert sorted(d["metadata"]["prompt_id"] for d in docs) == sorted(p["prompt_id"] for p in prompts)


def test_decontamination_removes_planted_passages_and_keeps_same_topic_text():

    from textcurate.synth.stage import BenchmarkIndex

    bench = [("mmlu.jsonl", "q1", BENCH[0]["text"]), ("mmlu.jsonl", "q2", BENCH[1]["text"]),
             ("tiny.jsonl", "t1", "Café naïve résumé")]
    idx = BenchmarkIndex(bench, 10)
    text = BENCH[0]["text"]
    planted = {
        "verbatim": "Intro paragraph on commits. " + text + " More text after it.",
        "rewrapped": "Notes:\n" + "\n".join(text[i:i + 30] for i in range(0, len(text), 30)),
        "case_punct": text.upper().replace("?", " ?!").replace(")", "]").replace("'", ""),
        "accents": "Words: CAFE NAIVE RESUME, in a list.",
    }
    for name, page in planted.items():
        share, k = idx.worst(page)
        assert k is not None and share > 0.5, name
    same_topic = ("Git records snapshots of a project. A commit stores the staged changes together with a message, "
                  "an author and a parent; branches are movable pointers to commits, and fetching downloads the "
                  "objects of a remote without touching the working tree.")
    share, _ = idx.worst(same_topic)
    assert share <= 0.5
    half = " ".join(text.split()[:8]) + " and then something else entirely about commits in general terms."
    assert idx.worst(half)[0] <= 0.5  # a shared 10-gram makes a candidate, not a match


def test_engine_failures_are_isolated_per_prompt(writer):
    from textcurate.engines import GenerationParams, make_engine

    srv, url = writer
    eng = make_engine("openai", "writer", base_url=url, concurrency=2, max_retries=0)
    prompts = ["Topic: binary search.", "Topic: fail now.", "Topic: cut pages."]
    try:
        out = eng.generate_detailed(prompts, GenerationParams(max_tokens=10))
    finally:
        eng.close()
    assert out[0].text and out[0].finish_reason == "stop" and out[0].error is None
    assert out[1].error and "500" in out[1].error and out[1].text == ""
    assert out[2].finish_reason == "length"


def test_transformers_engine_reports_truncation():
    from textcurate.engines import GenerationParams, make_engine

    eng = make_engine("transformers", "smollm2")
    out = eng.generate_detailed(["Write a long essay about rivers.", "Say OK."], GenerationParams(max_tokens=6))
    assert [g.finish_reason for g in out][0] == "length" and all(g.error is None for g in out)
    assert all(isinstance(g.text, str) for g in out)


def test_topics_from_seed_clusters_with_a_real_engine(tmp_path):
    """SmolLM2 names each seed cluster and rates it; every cluster is recorded, kept or with its reason."""
    from datatrove.data import Document

    from conftest import STDLIB_MODULES
    from textcurate.engines import make_engine
    from textcurate.synth.topics import topics_from_seeds

    import importlib

    docs = []
    for m in STDLIB_MODULES[:24]:
        doc = (importlib.import_module(m).__doc__ or "").strip()
        if doc:
            docs.append(Document(text=doc[:1500], id=m))
    eng = make_engine("transformers", "smollm2")
    topics = topics_from_seeds(docs, eng, clusters=3, per_cluster=2, log=lambda *_: None)
    assert len(topics) == 3 and sum(t["size"] for t in topics) == len(docs)
    for t in topics:
        assert t["kept"] or t["reason"]
        if t["educational"] is not None:
            assert 0 <= t["educational"] <= 1
        assert len(t["representatives"]) <= 2 and all(s["id"] in {d.id for d in docs} for s in t["seeds"])


def test_curriculum_file_and_bad_topics(tmp_path):
    from textcurate.synth.topics import topics_from_file, topics_from_list

    (tmp_path / "c.yaml").write_text("- topic: Fractions\n  subtopics: [adding fractions, common denominators]\n"
                                     "- Photosynthesis\n")
    t = topics_from_file(str(tmp_path / "c.yaml"))
    assert [x["topic"] for x in t] == ["Fractions", "Photosynthesis"]
    assert t[0]["subtopics"] == ["adding fractions", "common denominators"]
    with pytest.raises(ValueError, match=r"curriculum .*\[1\]"):
        (tmp_path / "bad.yaml").write_text("- topic: A\n- 42\n")
        topics_from_file(str(tmp_path / "bad.yaml"))
    with pytest.raises(ValueError, match="subtopics"):
        topics_from_list([{"topic": "A", "subtopics": "not a list"}])


def test_synth_verb_end_to_end(tmp_path, writer):
    """`textcurate synth` as a user runs it: topics in, pages out, the diversity line printed."""
    from typer.testing import CliRunner

    from textcurate.cli import app

    srv, url = writer
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["synth", "--topics", "binary search,git branches", "--pages", "6",
                                   "--engine", "openai", "--model", "writer", "--base-url", url, "--classifier", "",
                                   "--min-chars", "100", "--out", str(out), "--audiences", "college",
                                   "--styles", "how_to,exercises"])
    assert res.exit_code == 0, res.output
    docs = read_output_docs(out)
    assert len(docs) == 6 and {d["metadata"]["style"] for d in docs} == {"how_to", "exercises"}
    div = json.loads((out / "artifacts" / "synth" / "diversity.json").read_text())
    assert div["pages"] == 6 and 0 < div["distinct_2"] <= 1 and "mean_pairwise_cosine" in div
    bad = CliRunner().invoke(app, ["synth", "--topics", "x", "--audiences", "toddlers", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "unknown audience" in bad.output


def test_bad_seeds_and_benchmarks_fail_clearly(tmp_path, writer):
    from textcurate.config import ConfigError, parse_pipeline
    from textcurate.runner.run import run_pipeline
    from textcurate.synth.stage import read_benchmark_texts

    srv, url = writer
    data = _pipeline(tmp_path, url, ["binary search"], pages=2)
    # a seed corpus of broken lines only: rejected with file and line, then a clear error
    write_jsonl(tmp_path / "seeds" / "s.jsonl", [b"{not json", b'{"id": "x"}'])
    with pytest.raises(ConfigError, match="seed corpus holds no document"):
        run_pipeline(parse_pipeline(data), report=False)
    rej = [json.loads(ln) for f in (tmp_path / "run" / "artifacts" / "synth" / "rejects").rglob("*.jsonl")
           for ln in f.read_text().splitlines()]
    assert {r["line"] for r in rej} == {1, 2} and all(r["file"].endswith("s.jsonl") for r in rej)
    # no source of topics at all
    with pytest.raises(ConfigError, match="give seeds"):
        parse_pipeline({**data, "input": {k: v for k, v in data["input"].items() if k not in ("seeds", "topics")}})
    write_jsonl(tmp_path / "b.jsonl", [{"id": "a", "text": "fine"}, {"id": "b", "question": "no text"}])
    with pytest.raises(ValueError, match=r"b.jsonl:2 field 'text'"):
        read_benchmark_texts([str(tmp_path / "b.jsonl")], "text", "id")
    with pytest.raises(ValueError, match="no such file"):
        read_benchmark_texts([str(tmp_path / "missing.jsonl")], "text", "id")
