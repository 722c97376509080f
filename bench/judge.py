"""How fast the LLM judge annotates, per engine, at the same scores.

    .venv/bin/python bench/judge.py [--model qwen-coder-1.5b] [--docs 24] [--batch 8]
    .venv-vllm/bin/python bench/judge.py --engine vllm --model qwen-coder-1.5b   # vLLM on the CPU

Documents: real text of this machine (Python standard library module docstrings and
/usr/share/doc files, the first 1,000 characters each, the judge's own cut). Compared, on the
same documents and the same rubric prompt:

- the peer, ``loop``: what `textcurate annotate` did before, the transformers engine writing its
  answer one document at a time (``generate``, 4 tokens after "Educational score:"), parsed;
- ``dist-1``: the answer's token distribution (``answer_distribution``), one document at a
  time, no prefix reuse;
- ``dist-batch``: the same, batched, the rubric's token prefix computed once and reused;
- ``vllm``: vLLM's ``answer_distribution`` (run from the vLLM venv with ``--engine vllm``).

Printed: documents/s of each, the ratio to the peer, Spearman of the expected scores against
``dist-1`` (the same scores: >= 0.99), and the CPU it ran on. Needs the judge: `make setup-judge`
(or ``--model smollm2``, the packaged 135M model, for a quick run).
"""

from __future__ import annotations

import argparse
import glob
import importlib
import inspect
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from textcurate.judge.prompt import DIGITS as CHOICES  # noqa: E402  (the six 0-5 answers)


def cpu_flags() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    flags = sorted({f for f in out.split() if f.startswith(("amx", "avx512_bf16", "avx2"))})
    return f"{name}; {os.cpu_count()} cores; flags {' '.join(flags) or 'none of amx/avx512_bf16/avx2'}"


def documents(n: int) -> list[str]:
    texts = []
    for m in ("json", "csv", "argparse", "logging", "heapq", "bisect", "difflib", "textwrap", "decimal",
              "fractions", "statistics", "random", "pathlib", "sqlite3", "asyncio", "unittest", "zipfile",
              "tarfile", "shutil", "tempfile", "calendar", "hashlib", "ipaddress", "configparser"):
        try:
            doc = inspect.getdoc(importlib.import_module(m))
        except ImportError:
            continue
        if doc and len(doc) > 200:
            texts.append(doc)
    for path in sorted(glob.glob("/usr/share/doc/*/copyright"))[:12] + sorted(glob.glob("/usr/share/doc/*/README*"))[:12]:
        try:
            with open(path, errors="replace") as fh:
                texts.append(fh.read(4000))
        except OSError:
            continue
    texts = [t for t in texts if t.strip()]
    # interleave the kinds (docstrings, licences, READMEs), so any n mixes them
    return [t for group in zip(texts[::3], texts[1::3], texts[2::3]) for t in group][:n]


def edu_set(path: str, per_kind: int, seed: int = 0) -> tuple[list[str], list[int], list[str], list[str]]:
    """(texts, labels, kinds, sources): ``per_kind`` documents of each kind from the *test* sources of
    the labelled set that classifiers/build_edu_set.py writes (educational kinds 1: tutorials,
    manuals, encyclopedia entries, documented code, package READMEs; boilerplate 0: licences,
    changelogs, logs, generated code, tables), a seeded sample of each kind."""
    import random

    import pyarrow.parquet as pq

    rows = [r for r in pq.read_table(path).to_pylist() if r["split"] == "test"]
    picked = []
    for kind in sorted({r["kind"] for r in rows}):
        group = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["id"])
        picked += random.Random(f"{seed}:{kind}").sample(group, min(per_kind, len(group)))
    return ([r["text"] for r in picked], [r["label"] for r in picked], [r["kind"] for r in picked],
            [r["source"] for r in picked])


def make_engine(engine: str, model: str):
    if engine == "vllm":
        for k, v in {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": f"0-{os.cpu_count() - 1}",
                     "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}.items():
            os.environ.setdefault(k, v)
        from textcurate.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model, max_model_len=2048)
    from textcurate.engines.hf import TransformersEngine

    return TransformersEngine(model, batch_size=8)


def auc_table(model: str, engine: str, path: str, per_kind: int, max_chars: int, prompts: list[str],
              out: str | None) -> None:
    """AUC against provenance on held-out sources, per prompt variant, of the score read from the
    answer's distribution, and of the parsed written answer for the additive rubric; the AUC of
    each kind against all the boilerplate (educational kinds) or all the educational text
    (boilerplate kinds); Spearman between the prompts. ``out``: the scores, one row per document."""
    from textcurate.classify.metrics import auc as roc_auc_score  # ties counted half, as sklearn's
    from textcurate.engines.base import GenerationParams
    from textcurate.judge.prompt import ANSWER_PREFIX, PROMPTS, build_prompt, parse_score

    texts, labels, kinds, sources = edu_set(path, per_kind)
    eng = make_engine(engine, model)
    print(f"{model} ({engine}): {len(texts)} documents from {len(set(sources))} held-out sources "
          f"({sum(labels)} educational, {len(labels) - sum(labels)} boilerplate)")
    scores, speed = {}, {}
    for name in prompts:
        jp = PROMPTS[name]
        t = time.perf_counter()
        dists = eng.answer_distribution([jp.build(x, max_chars) for x in texts], jp.choices,
                                        GenerationParams(assistant_prefix=jp.answer_prefix))
        speed[name] = len(texts) / (time.perf_counter() - t)
        scores[name] = [jp.score(d) for d in dists]
    params = GenerationParams(max_tokens=4, temperature=0.0, assistant_prefix=ANSWER_PREFIX)
    t = time.perf_counter()
    parsed = [parse_score(ANSWER_PREFIX + o)[0] for o in eng.generate([build_prompt(x, max_chars) for x in texts],
                                                                      params)]
    speed["parsed"] = len(texts) / (time.perf_counter() - t)
    n_parsed = sum(s is not None for s in parsed)
    scores["parsed"] = [-1.0 if s is None else float(s) for s in parsed]  # unparsed ranks lowest
    kinds_order = sorted(set(kinds), key=lambda k: (-labels[kinds.index(k)], k))

    def auc(name, kind=None):
        idx = range(len(texts)) if kind is None else [
            i for i in range(len(texts)) if kinds[i] == kind or labels[i] != labels[kinds.index(kind)]]
        y = [labels[i] for i in idx]
        return roc_auc_score(y, [scores[name][i] for i in idx])

    print("| prompt | read as | AUC | " + " | ".join(kinds_order) + " | documents/s |")
    print("|---|---|---|" + "---|" * len(kinds_order) + "---|")
    for name in scores:
        read_as = f"generated, parsed ({n_parsed} of {len(texts)}; unparsed lowest)" if name == "parsed" \
            else "distribution"
        label = "edu-additive-v2" if name == "parsed" else name
        print(f"| {label} | {read_as} | {auc(name):.3f} | " + " | ".join(f"{auc(name, k):.2f}" for k in kinds_order)
              + f" | {speed[name]:.2f} |")
    names = [n for n in scores if n != "parsed"]
    print("Spearman between prompts: " + "; ".join(f"{a} ~ {b} {spearman(scores[a], scores[b]):.3f}"
                                                     for i, a in enumerate(names) for b in names[i + 1:]))
    if out:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": texts, "label": labels, "kind": kinds, "source": sources,
                                 **{f"score_{n}": scores[n] for n in scores}}), out)


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).correlation)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen-coder-1.5b")
    ap.add_argument("--docs", type=int, default=24)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--engine", default="transformers", choices=["transformers", "vllm"])
    ap.add_argument("--max-chars", type=int, default=1000)
    ap.add_argument("--auc", type=int, default=0,
                    help="instead: AUC against provenance on N documents per kind of held-out sources")
    ap.add_argument("--set", default="classifiers/edu-smollm2-minilm/labels.parquet",
                    help="with --auc: a labelled set (id, text, label, kind, source, split): the shipped one, or "
                         "classifiers/build_edu_set.py's output for this machine's files")
    ap.add_argument("--scores-out", default=None, help="with --auc: write every prompt's scores here (.parquet)")
    ap.add_argument("--prompts", default="edu-additive-v2,edu-additive-v2-fewshot,ask-llm-v1,edu-anchored-v1",
                    help="with --auc: the prompt variants (textcurate.judge.prompt.PROMPTS)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.auc:
        print(f"CPU: {cpu_flags()}")
        return auc_table(args.model, args.engine, args.set, args.auc, args.max_chars, args.prompts.split(","),
                         args.scores_out)

    from textcurate.engines.base import GenerationParams
    from textcurate.judge.prompt import ANSWER_PREFIX, build_prompt, parse_score

    texts = documents(args.docs)
    prompts = [build_prompt(t, args.max_chars) for t in texts]
    params = GenerationParams(max_tokens=4, temperature=0.0, assistant_prefix=ANSWER_PREFIX)
    print(f"judge bench: {len(prompts)} documents (stdlib docstrings, licences, READMEs; {args.max_chars} chars), "
          f"model {args.model}; CPU: {cpu_flags()}")
    rows = []
    if args.engine == "vllm":
        for k, v in {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": f"0-{os.cpu_count() - 1}",
                     "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}.items():
            os.environ.setdefault(k, v)
        from textcurate.engines.vllm_engine import VLLMEngine

        eng = VLLMEngine(args.model, max_model_len=1024)
        eng.answer_distribution(prompts[:1], CHOICES, params)  # start-up and first compile outside the timing
        t = time.perf_counter()
        d = eng.answer_distribution(prompts, CHOICES, params)
        rows.append(("vllm", time.perf_counter() - t, [x.expected for x in d]))
        eng.close()
    else:
        from textcurate.engines.hf import TransformersEngine

        eng = TransformersEngine(args.model, batch_size=1, reuse_prefix=False)
        t = time.perf_counter()
        eng._load()
        print(f"loaded in {time.perf_counter() - t:.0f} s, {next(eng._lm.parameters()).dtype}")
        eng.generate(prompts[:1], params)  # warm-up
        t = time.perf_counter()
        parsed = [parse_score(ANSWER_PREFIX + o)[0] for o in eng.generate(prompts, params)]
        rows.append(("loop", time.perf_counter() - t, [float("nan") if s is None else s for s in parsed]))
        t = time.perf_counter()
        one = [eng.answer_distribution([p], CHOICES, params)[0].expected for p in prompts]
        rows.append(("dist-1", time.perf_counter() - t, one))
        eng.batch_size, eng.reuse_prefix = args.batch, True
        t = time.perf_counter()
        batched = [x.expected for x in eng.answer_distribution(prompts, CHOICES, params)]
        rows.append(("dist-batch", time.perf_counter() - t, batched))
        print(f"  the rubric's shared prefix: {len(eng._prefix_ids)} tokens, computed once")
    base = rows[0][1]
    ref = next((r[2] for r in rows if r[0] == "dist-1"), None)
    print(f"| engine | docs/s | vs {rows[0][0]} | Spearman to dist-1 |")
    print("|---|---|---|---|")
    for name, seconds, scores in rows:
        rho = spearman(ref, scores) if ref is not None and name not in ("loop", "dist-1") else float("nan")
        print(f"| {name} | {len(prompts) / seconds:.2f} | {base / seconds:.2f}x | {rho:.4f} |")
    if ref is not None:
        loop = [s for s in rows[0][2]]
        ok = [(a, b) for a, b in zip(loop, ref) if a == a]
        print(f"parsed answers: {len(ok)} of {len(loop)}; Spearman of the parsed integers to the expected scores: "
              f"{spearman(*zip(*ok)) if len(ok) > 2 else float('nan'):.3f}")


if __name__ == "__main__":
    main()
