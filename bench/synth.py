"""Generation throughput of the synth pipeline's engines against a one-prompt-at-a-time loop.

    .venv/bin/python bench/synth.py [--prompts 64] [--max-tokens 128]          # transformers only
    .venv-vllm/bin/python bench/synth.py [--prompts 64] [--max-tokens 128]     # + vLLM in process and served

The peer: a plain transformers loop, ``model.generate`` on one prompt at a time (what a script
without batching does), with the same model (SmolLM2-135M-Instruct, the packaged weights as a
safetensors folder), the same prompts (the synth grid: topic x audience x style with 1,000-
character seed extracts of Python's module docstrings), the same ``max_tokens``, temperature
0.8, top-p 0.95. Each textcurate engine runs through ``synth.generate.generate_pages`` (the
pipeline's own resumable loop, parts written to disk): ``transformers`` (batched, left-padded),
``vllm`` (in process) and ``openai`` (against a ``vllm serve`` on loopback, 32 requests in
flight). Generated tokens are counted with the model's tokenizer on the returned texts, the same
way for all. Prints tokens/s and the ratio to the loop, with the CPU it ran on. The issue's
target: at least 30x the loop through the vLLM engine.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from judge import cpu_flags  # noqa: E402

CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": f"0-{(os.cpu_count() or 1) - 1}",
           "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "HF_HUB_OFFLINE": "1"}


def grid_prompts(n: int) -> list[dict]:
    import importlib

    from textcurate.synth.prompts import as_dicts, prompt_grid

    names = ["json", "csv", "argparse", "logging", "heapq", "bisect", "difflib", "textwrap", "decimal", "fractions",
             "statistics", "random", "pathlib", "sqlite3", "asyncio", "unittest"]
    topics = []
    for m in names:
        doc = (importlib.import_module(m).__doc__ or "").strip()
        if doc:
            topics.append({"topic": f"the Python {m} module", "subtopics": [],
                           "seeds": [{"id": m, "text": doc}]})
    return as_dicts(prompt_grid(topics, n, ["middle_school", "high_school", "college", "professionals"],
                                ["textbook_academic", "blog_post", "how_to", "exercises"], seed=0,
                                extract_chars=1000))


def count_tokens(tok, texts: list[str]) -> int:
    return sum(len(tok.encode(t, add_special_tokens=False)) for t in texts)


def one_at_a_time(model_path: str, prompts: list[str], max_tokens: int) -> tuple[list[str], float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    lm = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch.float32).eval()
    out = []
    t0 = time.perf_counter()
    for p in prompts:
        enc = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        torch.manual_seed(0)
        with torch.inference_mode():
            gen = lm.generate(**enc, max_new_tokens=max_tokens, do_sample=True, temperature=0.8, top_p=0.95,
                              pad_token_id=tok.eos_token_id)
        out.append(tok.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return out, time.perf_counter() - t0


def through_pipeline(engine, rows: list[dict], max_tokens: int, batch: int) -> tuple[list[str], float]:
    from textcurate.engines.base import GenerationParams
    from textcurate.synth.generate import generate_pages

    params = GenerationParams(max_tokens=max_tokens, temperature=0.8, top_p=0.95, seed=0)
    t0 = time.perf_counter()
    got = generate_pages(rows, engine, tempfile.mkdtemp(prefix="synth_bench_"), params, batch)
    secs = time.perf_counter() - t0
    errors = [r["error"] for r in got.values() if r["error"]]
    if errors:
        raise RuntimeError(f"{len(errors)} prompts failed, e.g. {errors[0]}")
    return [got[r["prompt_id"]]["text"] for r in rows], secs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--loop-prompts", type=int, default=8, help="prompts for the one-at-a-time loop (its rate)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16, help="transformers: prompts per batch")
    ap.add_argument("--engines", default="transformers,vllm,openai")
    args = ap.parse_args()
    for k, v in CPU_ENV.items():
        os.environ.setdefault(k, v)
    from transformers import AutoTokenizer

    from textcurate.engines import make_engine
    from textcurate.assets.smollm import smollm2_dequantised

    model = smollm2_dequantised()
    tok = AutoTokenizer.from_pretrained(model)
    rows = grid_prompts(args.prompts)
    print(f"CPU: {cpu_flags()}")
    print(f"{len(rows)} synth prompts (mean {sum(len(r['prompt']) for r in rows) / len(rows):.0f} chars), "
          f"max_tokens {args.max_tokens}, temperature 0.8, top-p 0.95; SmolLM2-135M-Instruct ({model})")
    texts, secs = one_at_a_time(model, [r["prompt"] for r in rows[:args.loop_prompts]], args.max_tokens)
    base = count_tokens(tok, texts) / secs
    print("| engine | prompts | generated tokens | seconds | tokens/s | x the one-prompt loop |")
    print("|---|---|---|---|---|---|")
    print(f"| transformers generate, one prompt at a time (peer) | {len(texts)} | {count_tokens(tok, texts):,} "
          f"| {secs:.1f} | {base:.1f} | 1.0 |", flush=True)
    have_vllm = True
    try:
        import vllm  # noqa: F401
    except Exception:  # noqa: BLE001
        have_vllm = False
    for name in args.engines.split(","):
        if name in ("vllm", "openai") and not have_vllm:
            print(f"| {name} | - | - | - | - | skipped: vllm is not importable here (run with .venv-vllm) |")
            continue
        server = None
        try:
            if name == "transformers":
                eng = make_engine("transformers", model, batch_size=args.batch, dtype="float32")
            elif name == "vllm":
                eng = make_engine("vllm", model, dtype="float32", max_model_len=2048)
            else:
                port = free_port()
                server = subprocess.Popen(
                    [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host",
                     "127.0.0.1", "--port", str(port), "--max-model-len", "2048", "--enforce-eager", "--dtype",
                     "float32"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                    env={**os.environ, **CPU_ENV})
                import requests

                deadline = time.time() + 600
                while time.time() < deadline:
                    try:
                        if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                            break
                    except requests.RequestException:
                        time.sleep(2)
                eng = make_engine("openai", model, base_url=f"http://127.0.0.1:{port}/v1", concurrency=32,
                                  timeout=600, send_seed=False)  # vllm-cpu samples with no per-request seed
            texts, secs = through_pipeline(eng, rows, args.max_tokens, args.batch if name == "transformers"
                                           else len(rows))
            eng.close()
            n = count_tokens(tok, texts)
            print(f"| textcurate {name} (generate_pages) | {len(texts)} | {n:,} | {secs:.1f} | {n / secs:.1f} "
                  f"| {n / secs / base:.1f} |", flush=True)
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=60)


if __name__ == "__main__":
    main()
