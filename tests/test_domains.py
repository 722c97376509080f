"""The domains stage against a judge served on loopback (a real HTTP server that answers as a
model would: a name for a cluster's extracts, a distribution over the format numbers): topics from
named clusters, merged when two get one name, formats learnt by a head on the embeddings, every
decision recorded, and the report's domain x quality table."""

import json
import math
import threading

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import loopback_server

from textcurate.config import parse_pipeline
from textcurate.runner.run import run_pipeline

KINDS = {  # kind -> (the name the judge gives, the format number it answers, texts)
    "river": ("Rivers and their flow", 1, [
        f"How to measure the flow of river number {i}: first stand on the bank, then time a floating stick "
        f"over ten metres of water, and repeat the measure {i % 5 + 2} times to average the current." for i in range(24)]),
    "code": ("Python programming", 3, [
        f"def area_{i}(width, height):\n    return width * height * {i}\n\nfor w in range({i}):\n    print(area_{i}(w, 2))"
        for i in range(24)]),
    "legal": ("Software licences", 7, [
        f"Section {i}. The licensee shall not redistribute the software without the written permission of the "
        f"licensor; any breach of clause {i} terminates this agreement and its warranties." for i in range(24)]),
}


class Judge:
    """Answers the domains stage's two prompts the way a capable model would."""

    def __call__(self, prompt: str) -> tuple[str, dict | None]:
        for name, number, texts in KINDS.values():
            key = {"Rivers and their flow": "river", "Python programming": "def area",
                   "Software licences": "licensee"}[name]
            if key in prompt:
                if "What is the subject they share?" in prompt:
                    return f" {name}\n", None
                if "describes its format" in prompt:
                    return str(number), {str(number): 0.9, "8": 0.05}
        return " ", None


def _handler():
    from http.server import BaseHTTPRequestHandler

    judge = Judge()

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = body["messages"][0]["content"]
            with self.server.state["lock"]:
                self.server.state["prompts"].append(prompt)
            text, dist = judge(prompt)
            choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
            if body.get("logprobs") and dist:
                top = [{"token": k, "logprob": math.log(v)} for k, v in dist.items()]
                choice["logprobs"] = {"content": [{"token": text, "logprob": math.log(0.9), "top_logprobs": top}]}
            data = json.dumps({"id": "x", "model": body["model"], "choices": [choice],
                               "usage": {"completion_tokens": 3}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
    return H


@pytest.fixture
def judge_url():
    for srv, url in loopback_server(_handler(), {"lock": threading.Lock(), "prompts": []}):
        yield srv, url


def _corpus(tmp_path):
    path = tmp_path / "docs.jsonl"
    with open(path, "w") as fh:
        for kind, (_, _, texts) in KINDS.items():
            for i, t in enumerate(texts):
                fh.write(json.dumps({"id": f"{kind}-{i}", "text": t, "kind": kind,
                                     "edu_score": 4.0 if kind == "river" else 1.0 + i / 24}) + "\n")
    return path


@pytest.mark.slow
def test_topics_and_formats_from_a_judge_with_every_decision_recorded(tmp_path, judge_url):
    srv, url = judge_url
    cfg = parse_pipeline({
        "name": "domains", "input": {"type": "jsonl", "path": str(_corpus(tmp_path))},
        "stages": [{"type": "embed"}, {"type": "cluster", "k": 4, "seed": 1},
                   {"type": "domains", "format_sample": 72, "per_cluster": 3,
                    "engine": {"kind": "openai", "model": "judge", "base_url": url, "concurrency": 2}}],
        "output": {"path": str(tmp_path / "run")}, "executor": {"type": "local", "tasks": 2}})
    record = run_pipeline(cfg, report=True)
    assert record["status"] == "complete"
    t = ds.dataset(str(tmp_path / "run" / "attributes" / "domains")).to_table().to_pylist()
    by_id = {r["id"]: r for r in t}
    assert len(by_id) == 72
    names = {k: v[0] for k, v in KINDS.items()}
    formats = {"river": "tutorial", "code": "code", "legal": "legal"}
    for doc_id, r in by_id.items():
        kind = doc_id.split("-")[0]
        assert r["topic"] == names[kind], (doc_id, r)
        assert r["format"] == formats[kind] and 0 < r["format_p"] <= 1, (doc_id, r)
    card = json.loads((tmp_path / "run" / "artifacts" / "domains" / "domains.json").read_text())
    assert sorted(card["topics"]) == sorted(names.values())  # four clusters, three topics: two were merged
    reasons = [c["reason"] for c in card["clusters"].values()]
    assert sum(r.startswith("named like cluster") for r in reasons) == 1 and reasons.count("named by the judge") == 3
    assert all(len(c["documents"]) == 3 for c in card["clusters"].values())
    assert card["judged"] == 72 and card["label_counts"]["tutorial"] == 24 and card["head_agreement"] == 1.0
    assert abs(card["majority_share"] - 1 / 3) < 1e-3
    assert sum("describes its format" in p for p in srv.state["prompts"]) >= 72  # every sampled document asked
    labels = pq.read_table(tmp_path / "run" / "artifacts" / "domains" / "format_labels.parquet").to_pylist()
    assert {r["id"]: r["format"] for r in labels} == {i: formats[i.split("-")[0]] for i in by_id}
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>Domains</h2>" in page and "Rivers and their flow" in page and "edu_score" in page


def test_a_cluster_the_judge_cannot_name_keeps_its_number_and_says_why(tmp_path, judge_url):
    from textcurate.domains.domains_stage import name_topics
    from textcurate.engines.factory import make_engine

    _, url = judge_url
    eng = make_engine("openai", "judge", base_url=url)
    near = {0: [{"id": "a", "text": KINDS["river"][2][0]}], 5: [{"id": "b", "text": "nothing the judge knows"}]}
    topics = name_topics(near, eng)
    assert topics[0]["topic"] == "Rivers and their flow" and topics[0]["reason"] == "named by the judge"
    assert topics[5]["topic"] == "cluster 5" and topics[5]["reason"].startswith("no name parsed")


def test_upsample_repeats_each_domains_best_documents_in_the_mixture(tmp_path):
    """Quality within each domain: the top 25 % of each topic by edu_score get weight 4, the rest 1;
    the mix block plans over the topics and draws copies by the weight, so inside every topic a top
    document is repeated about four times as often as another; nothing is dropped."""
    from textcurate.mix.materialise import read_mixture

    rng = __import__("numpy").random.default_rng(0)
    path = tmp_path / "docs.jsonl"
    with open(path, "w") as fh:
        for topic in ("rivers", "code", "law"):
            for i in range(80):
                fh.write(json.dumps({"id": f"{topic}-{i}", "text": f"{topic} document {i}. " + "word " * 40,
                                     "metadata": {"topic": topic, "edu_score": float(rng.random() * 5)}}) + "\n")
    cfg = parse_pipeline({
        "name": "upsample", "input": {"type": "jsonl", "path": str(path)},
        "stages": [{"type": "upsample", "by": "edu_score", "group_by": "topic", "top": 0.25, "epochs": 4}],
        "output": {"path": str(tmp_path / "run")}, "executor": {"type": "local", "tasks": 2},
        "mix": {"tokenizer": "minilm", "sample": 0, "budget_tokens": 60000, "group_by": {"field": "topic"},
                "weight_field": "upsample_weight", "shard_bytes": 1 << 20}})
    record = run_pipeline(cfg, report=False)
    assert record["status"] == "complete" and record["ledger"]["totals"]["kept"] == 240
    docs = {}
    for line in (json.loads(x) for f in sorted((tmp_path / "run" / "documents").glob("*")) for x in
                 __import__("gzip").open(f, "rt")):
        docs[line["id"]] = line["metadata"]
    for topic in ("rivers", "code", "law"):
        mine = sorted((m["edu_score"], i) for i, m in docs.items() if m["topic"] == topic)
        top = {i for _, i in mine[-20:]}  # 25 % of 80
        assert {i for i, m in docs.items() if m["topic"] == topic and m["upsample_weight"] == 4.0} == top
    copies: dict = {}
    for r in read_mixture(str(tmp_path / "run" / "artifacts" / "mix" / "mixture")).select(["doc_id"]).to_pylist():
        copies[r["doc_id"]] = copies.get(r["doc_id"], 0) + 1
    for topic in ("rivers", "code", "law"):
        tops = [copies.get(i, 0) for i, m in docs.items() if m["topic"] == topic and m["upsample_weight"] == 4.0]
        rest = [copies.get(i, 0) for i, m in docs.items() if m["topic"] == topic and m["upsample_weight"] == 1.0]
        ratio = (sum(tops) / len(tops)) / (sum(rest) / len(rest))
        assert 3.0 < ratio < 5.0, (topic, ratio)
    # the plan sees the repetition inside each topic: a quarter of its text at weight 4 is seen
    # 4 / (0.25 x 4 + 0.75) = 2.29 times as often as the topic as a whole
    plan = json.loads((tmp_path / "run" / "artifacts" / "mix" / "plan.json").read_text())["plan"]
    for row in plan["rows"]:
        shares = dict((w, s) for w, s in row["classes"])
        assert set(shares) == {1.0, 4.0} and abs(shares[4.0] - 0.25) < 0.02, row
        assert abs(row["top_epochs"] / row["epochs"] - 4 / (4 * shares[4.0] + shares[1.0])) < 1e-6


def test_upsample_with_a_field_of_its_own_feeds_a_later_stage(tmp_path):
    """``field`` names the weight's column, and the stages after it may read that column: an upsample
    with ``rest: 0`` is quality within each domain as a selection (the top of each topic, the rest
    dropped by a later select)."""
    path = tmp_path / "docs.jsonl"
    with open(path, "w") as fh:
        for topic in ("rivers", "law"):
            for i in range(20):
                fh.write(json.dumps({"id": f"{topic}-{i}", "text": f"{topic} document {i}. " + "word " * 20,
                                     "metadata": {"topic": topic, "edu_score": float(i)}}) + "\n")
    cfg = parse_pipeline({
        "name": "topic-top", "input": {"type": "jsonl", "path": str(path)},
        "stages": [{"type": "upsample", "by": "edu_score", "group_by": "topic", "top": 0.25, "epochs": 1, "rest": 0,
                    "field": "topic_top"},
                   {"type": "select", "expr": "topic_top > 0"}],
        "output": {"path": str(tmp_path / "run")}, "executor": {"type": "local", "tasks": 1}})
    record = run_pipeline(cfg, report=False)
    assert record["status"] == "complete"
    t = record["ledger"]["totals"]
    assert (t["kept"], t["dropped"]) == (10, 30)
    kept = {json.loads(x)["id"] for f in (tmp_path / "run" / "documents").glob("*")
            for x in __import__("gzip").open(f, "rt")}
    assert kept == {f"{topic}-{i}" for topic in ("rivers", "law") for i in range(15, 20)}


@pytest.mark.parametrize("raw, name", [
    (" Python, SciPy, NumPy, SciPy, SciPy, SciPy, SciPy, SciPy, SciPy", "Python, SciPy, NumPy"),
    (" Python: Python 3: Python 3: Python 3: Python 3: Python 3: Python ", "Python: Python 3"),
    ("Git 3.1.1.1.1.1.1.1.1.1.1", "Git 3.1"),
    (" Python: SciPy: SciPy: SciPy: SciPy: SciPy: SciPy: SciPy: Sci", "Python: SciPy"),
    (" Python: Modules, PEP 30, Python 3.0, Modules, PEP 3", "Python: Modules, PEP 30, Python 3.0"),
    ('Topic: "Photosynthesis: How Plants Make Food".', "Photosynthesis: How Plants Make Food"),
    ("Rivers, Lakes and Seas", "Rivers, Lakes and Seas"),
    ("What is the subject they share?", ""),
])
def test_a_small_judges_looping_name_is_cut_where_it_repeats(raw, name):
    """Names SmolLM2-135M gave clusters of the quality set: a list that loops, a title restated, a
    version number that runs on."""
    from textcurate.synth.topics import clean_name

    assert clean_name(raw) == name


def test_formats_from_the_embeddings_alone_ask_the_judge_nothing_about_them(tmp_path, judge_url):
    """format_by: embedding: each document gets the format whose description is nearest its vector
    (MiniLM), so the judge only names the clusters; the card says how the formats were set."""
    srv, url = judge_url
    cfg = parse_pipeline({
        "name": "domains", "input": {"type": "jsonl", "path": str(_corpus(tmp_path))},
        "stages": [{"type": "embed"}, {"type": "cluster", "k": 3, "seed": 1},
                   {"type": "domains", "format_sample": 10, "per_cluster": 2, "format_by": "embedding",
                    "engine": {"kind": "openai", "model": "judge", "base_url": url}}],
        "output": {"path": str(tmp_path / "run")}, "executor": {"type": "local", "tasks": 1}})
    assert run_pipeline(cfg, report=True)["status"] == "complete"
    page = (tmp_path / "run" / "report.html").read_text()
    assert "nearest description to each document&#x27;s embedding (minilm; no judge)" in page or \
        "nearest description to each document's embedding (minilm; no judge)" in page
    t = ds.dataset(str(tmp_path / "run" / "attributes" / "domains")).to_table().to_pylist()
    formats = {"river": "tutorial", "code": "code", "legal": "legal"}
    got = {r["id"]: r["format"] for r in t}
    assert len(got) == 72 and all(got[i] == formats[i.split("-")[0]] for i in got), got
    assert not any("describes its format" in p for p in srv.state["prompts"])
    card = json.loads((tmp_path / "run" / "artifacts" / "domains" / "domains.json").read_text())
    assert card["format_by"] == "embedding" and card["judged"] == 0 and card["embedder"] == "minilm"

    with pytest.raises(Exception, match="not among the formats"):
        parse_pipeline({"name": "x", "input": {"type": "jsonl", "path": "x.jsonl"},
                        "stages": [{"type": "embed"}, {"type": "cluster", "k": 3},
                                   {"type": "domains", "format_by": "embedding", "descriptions": {"poem": "a poem"}}],
                        "output": {"path": str(tmp_path / "run2")}})


def test_the_fit_calls_the_judge_as_many_prompts_at_once_as_it_runs():
    """The fit's progress chunks never slow an engine: a served judge gets four rounds of its requests in
    flight a call, not judge_batch."""
    from textcurate.domains.domains_stage import prompts_at_once
    from textcurate.engines.factory import make_engine

    served = make_engine("openai", "judge", base_url="http://127.0.0.1:9/v1", concurrency=32)
    assert prompts_at_once(served, 8) == 128
    assert prompts_at_once(make_engine("openai", "judge", base_url="http://127.0.0.1:9/v1", concurrency=1), 8) == 8
