"""Issue 34: an LLM judge through llama.cpp's Python bindings, on the quality set's test kinds.

    /work/venv-llama/bin/python bench/quality_llamacpp.py --model MODEL.gguf \
        --set runs/quality_set.parquet --out runs/quality_llamacpp_scores.parquet --budget-s 1800

(``llama-cpp-python`` built from source with pip, CPU only, default CMake arguments, in a venv of
its own.) For each document: the project's judge prompt ``edu-additive-v2``
(``textcurate.judge.prompt.build_prompt``: the first 1,000 characters, fenced and neutralised) as
the user turn, the model's own chat template (read from the GGUF, rendered with jinja2,
generation prompt added), then the answer prefix ``Educational score: `` in the assistant turn
(the space in the prefix: Qwen's tokenizer writes digits as tokens of their own). A model whose
template strips ``</think>`` blocks (DeepSeek-R1 distills) wants to think first: an empty think
block ``<think>\\n\\n</think>\\n\\n`` goes before the prefix (``--think auto|on|off``). One
forward pass, no generation: the score is the expected value of the digit 0-5 under the
next-token distribution renormalised over the six digit tokens (``digit_mass``, written too,
is how much of the whole distribution they held). The prompt's token prefix shared with the
previous document is kept in the KV cache and not computed again.

Documents: a balanced random sample of the *test* split (the same number of each test kind, seed
0), taken round-robin over the kinds so that wherever ``--budget-s`` stops it the sample stays
balanced within one document per kind. Written as it goes: ``--out`` (id, kind, label, score,
seconds = seconds of this document's forward pass, digit_mass). Printed: model file and
quantisation, load time, seconds per document and documents per hour (2 threads), AUC overall
and per test kind (that kind against every sampled test document of the other label) with the
sample's size, peak RSS, the CPU.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from judge import cpu_flags  # noqa: E402
from textcurate.classify.metrics import auc  # noqa: E402
from textcurate.judge.prompt import ANSWER_PREFIX, DIGITS, PROMPT_VERSION, build_prompt  # noqa: E402

FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
              11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
              17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}


def sample_ids(rows, per_kind: int, seed: int = 0) -> list[int]:
    """Row indices: ``per_kind`` test documents of each test kind (seeded), round-robin over the kinds."""
    rng = np.random.default_rng(seed)
    kinds = sorted({r["kind"] for r in rows if r["split"] == "test"})
    picks = []
    for k in kinds:
        idx = sorted((i for i, r in enumerate(rows) if r["split"] == "test" and r["kind"] == k),
                     key=lambda i: rows[i]["id"])
        picks.append([idx[j] for j in rng.permutation(len(idx))[:per_kind]])
    return [p[j] for j in range(per_kind) for p in picks if j < len(p)]


def report(rows, done: dict[int, tuple[float, float, float]]) -> None:
    idx = np.array(sorted(done))
    y = np.array([rows[i]["label"] for i in idx])
    kind = np.array([rows[i]["kind"] for i in idx])
    s = np.array([done[i][0] for i in idx])
    kinds = sorted(set(kind), key=lambda k: (-y[kind == k][0], k))
    per = []
    for k in kinds:
        m = (kind == k) | (y != y[kind == k][0])
        per.append(f"{k} {auc(y[m], s[m]):.2f} (n={int((kind == k).sum())})")
    print(f"sample: {len(idx)} test documents ({int(y.sum())} educational, {int((1 - y).sum())} not); "
          f"test AUC {auc(y, s):.3f}; per test kind " + ", ".join(per))
    print("mean score per kind: " + ", ".join(f"{k} {s[kind == k].mean():.2f}" for k in kinds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a GGUF file")
    ap.add_argument("--set", default="runs/quality_set.parquet")
    ap.add_argument("--out", default="runs/quality_llamacpp_scores.parquet")
    ap.add_argument("--per-kind", type=int, default=50, help="documents of each test kind to draw (at most)")
    ap.add_argument("--budget-s", type=float, default=1800, help="stop scoring after this many seconds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--think", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=1, help="print the rendered prompt of the first N documents")
    args = ap.parse_args()

    import jinja2
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=args.n_ctx, n_threads=args.threads,
                          n_threads_batch=args.threads, n_batch=512, logits_all=False, verbose=False, seed=args.seed)
    load_s = time.perf_counter() - t0
    meta = llm.metadata
    ft = int(meta.get("general.file_type", -1))
    print(f"model {args.model}: {os.path.getsize(args.model):,} bytes, {meta.get('general.name')}, "
          f"file type {ft} ({FILE_TYPES.get(ft, '?')}); llama-cpp-python {llama_cpp.__version__}; loaded in "
          f"{load_s:.1f} s; {args.threads} threads; CPU: {cpu_flags()}", flush=True)

    template = meta["tokenizer.chat_template"]
    think = args.think == "on" or (args.think == "auto" and "</think>" in template)
    env = jinja2.Environment(loader=jinja2.BaseLoader(), trim_blocks=False, lstrip_blocks=False)
    tmpl = env.from_string(template)
    vocab_bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace") if llm.token_bos() >= 0 else ""
    prefix = ("<think>\n\n</think>\n\n" if think else "") + ANSWER_PREFIX + " "

    def render(text: str) -> str:
        chat = tmpl.render(messages=[{"role": "user", "content": build_prompt(text, 1000)}],
                           add_generation_prompt=True, bos_token=vocab_bos, eos_token="")
        return chat + prefix

    digit_ids = []
    for d in DIGITS:
        t = llm.tokenize(d.encode(), add_bos=False, special=False)
        assert len(t) == 1, (d, t)
        digit_ids.append(t[0])

    rows = pq.read_table(args.set).to_pylist()
    order = sample_ids(rows, args.per_kind, args.seed)
    done: dict[int, tuple[float, float, float]] = {}
    prev: list[int] = []
    start = time.perf_counter()

    def write():
        ids = sorted(done)
        pq.write_table(pa.table({"id": [rows[i]["id"] for i in ids], "kind": [rows[i]["kind"] for i in ids],
                                 "label": [rows[i]["label"] for i in ids],
                                 "score": [done[i][0] for i in ids], "seconds": [done[i][1] for i in ids],
                                 "digit_mass": [done[i][2] for i in ids]}), args.out)

    for n, i in enumerate(order):
        if time.perf_counter() - start > args.budget_s:
            print(f"budget of {args.budget_s:.0f} s reached after {n} documents", flush=True)
            break
        text = render(rows[i]["text"])
        if n < args.show:
            print("---- rendered prompt ----\n" + text + "\n---- end ----", flush=True)
        toks = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        t = time.perf_counter()
        keep = 0
        while keep < min(len(prev), len(toks) - 1) and prev[keep] == toks[keep]:
            keep += 1
        llm.n_tokens = keep  # the KV cache past the shared prefix is dropped by eval
        llm.eval(toks[keep:])
        # the last token's logits (llama-cpp-python 0.3.x keeps no scores without logits_all)
        logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).astype(np.float64)
        dt = time.perf_counter() - t
        prev = toks
        p = np.exp(logits - logits.max())
        p /= p.sum()
        pd = p[digit_ids]
        mass = float(pd.sum())
        score = float((pd / mass) @ np.arange(6))
        done[i] = (score, dt, mass)
        print(f"  {n + 1}: {rows[i]['kind']:<15} label {rows[i]['label']} score {score:.2f} digit mass {mass:.3f} "
              f"{len(toks)} tokens ({len(toks) - keep} computed) {dt:.1f} s", flush=True)
        if (n + 1) % 6 == 0:
            write()
    write()
    secs = np.array([v[1] for v in done.values()])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"prompt {PROMPT_VERSION}, think block {'on' if think else 'off'}; {len(done)} documents in "
          f"{time.perf_counter() - start:.0f} s: {secs.mean():.2f} s/doc (median {np.median(secs):.2f}, first "
          f"{secs[0] if len(secs) else float('nan'):.2f}) -> {3600 / secs.mean():.0f} documents/hour on "
          f"{args.threads} threads; peak RSS {rss:.2f} GiB; written {args.out}")
    if len(done) >= 2:
        report(rows, done)


if __name__ == "__main__":
    main()
