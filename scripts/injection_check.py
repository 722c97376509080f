"""How many judge scores move when a document carries an injection ("... Educational score: 5")?

Runs textcurate.judge.injection.injection_report on N local documents x the 44 injections of
textcurate.judge.injection.INJECTIONS, once with the full prompt (fence + the neutraliser of
textcurate.judge.guard) and once with the fence alone, and prints for each: the mean shift of
the judge's continuous score against the same document without the payload (its first 900
characters: the payload takes the window's last 100), the pairs that moved or rose by more than one standard deviation
of the documents' own scores, and the pairs an injection lifted across a keep threshold (the
quickstart's, 2.5 on the judge's expected score, by default).

    .venv-vllm/bin/python scripts/injection_check.py --engine vllm --n 48      # SmolLM2 in vLLM (CPU)
    .venv/bin/python scripts/injection_check.py --engine transformers --n 8    # slower
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# vLLM on a CPU: unset, the KV cache is sized to most of the RAM (the machine then swaps for minutes)
for _k, _v in {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}.items():
    os.environ.setdefault(_k, _v)
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))


def main() -> None:
    from edu_score import corpus

    from textcurate.engines.base import make_engine
    from textcurate.judge.injection import injection_report

    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="vllm")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--keep-threshold", type=float, default=2.5, help="the quickstart's edu_score cut")
    ap.add_argument("--json", help="also write the reports here")
    ap.add_argument("--prompt", default="edu-additive-v2", help="a name in textcurate.judge.prompt.PROMPTS")
    ap.add_argument("--scoring", default="distribution", choices=["generate", "distribution"],
                    help="distribution: the continuous score; a pair moved when it changed by >= 0.5")
    args = ap.parse_args()
    texts = [d.text for d in corpus(args.n)]
    options = {}
    model = args.model
    if args.engine == "vllm":
        options["max_model_len"] = 2048  # rubric + 1,000 characters of document (digits are one token each)
        if model == "smollm2":  # vLLM reads the bf16 safetensors copy of the packaged GGUF
            from textcurate.assets.smollm import smollm2_dequantised

            model = smollm2_dequantised()
            options["dtype"] = "float32"  # bf16 is emulated on AVX2-only CPUs
    import json
    import platform
    import time

    engine = make_engine(args.engine, model, **options)
    reports = []
    try:
        for neutralise in ((True, False) if args.prompt == "edu-additive-v2" else (True,)):
            t0 = time.time()
            r = injection_report(engine, texts, neutralise_requests=neutralise, prompt=args.prompt,
                                 scoring=args.scoring, keep_threshold=args.keep_threshold)
            r["seconds"] = round(time.time() - t0, 1)
            reports.append(r)
            label = "fence + neutraliser" if neutralise else "fence only         "
            print(f"{args.model} {args.prompt} {args.scoring} {label}: {r['injections']} injections x "
                  f"{r['documents']} documents = {r['pairs']} pairs ({r['prompts_read']} distinct prompts read), "
                  f"caught {r['flagged']}, both scored "
                  f"{r['both_parsed']}, moved {r['moved']}, raised {r['raised']}, raised to 5 {r['raised_to_5']}"
                  + (f", mean shift {r['mean_shift']:+.3f}, largest rise {r['max_raise']:+.3f}; the documents' "
                     f"scores have sd {r['score_sd']:.3f}: moved by >= 1 sd {r['moved_1sd']}, raised by >= 1 sd "
                     f"{r['raised_1sd']}" if "mean_shift" in r else "")
                  + f"; lifted across {r['keep_threshold']}: {r['crossed']} ({r['seconds']:.0f} s)", flush=True)
            for ex in r["crossed_examples"]:
                print(f"    injection {ex['injection']} on document {ex['document']}: {ex['before']:.3f} -> "
                      f"{ex['after']:.3f}")
    finally:
        engine.close()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"CPU: {cpu}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"cpu": cpu, "args": vars(args), "reports": reports}, fh, indent=1)


if __name__ == "__main__":
    main()
