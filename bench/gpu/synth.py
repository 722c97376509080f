"""GPU: the synth pipeline's generation (``synth.generate.generate_pages`` through the
transformers engine: the prompt grid with seed extracts, sampled at temperature 0.8, parts
written as batches finish), tokens/s on the device, and its bookkeeping checked there: one row
per prompt, no engine error, every finish reason known, and a second call over the same parts
asks the engine for nothing.

The model is SmolLM2-135M-Instruct's architecture with random weights and its real tokenizer
(``generate.py`` explains why): what generation costs does not depend on the weights' values.

    python bench/gpu/synth.py [--prompts 256] [--batch 128] [--max-tokens 256] [--tokenizer .gpu/smollm2-tok]
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, check_device, emit, parser  # noqa: E402
from generate import random_smollm2  # noqa: E402


class Counting:
    """An engine wrapper that counts the prompts it is asked for."""

    def __init__(self, engine):
        self.engine, self.asked = engine, 0
        self.name, self.model = engine.name, engine.model

    def generate_detailed(self, prompts, params=None):
        self.asked += len(prompts)
        return self.engine.generate_detailed(prompts, params)


def main() -> None:
    from transformers import AutoTokenizer

    from textcurate.engines.base import GenerationParams
    from textcurate.engines.hf import TransformersEngine
    from textcurate.synth.generate import generate_pages
    from textcurate.synth.prompts import AUDIENCES, STYLES, as_dicts, prompt_grid

    ap = parser(__doc__)
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--tokenizer", default=".gpu/smollm2-tok", help="SmolLM2's tokenizer (bench/gpu/pack.py)")
    args = ap.parse_args()
    if args.smoke:
        args.prompts, args.batch, args.max_tokens = 8, 4, 8
    check_device(args.device)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from edu_score import corpus

    docs = corpus(64)
    topics = [{"topic": f"topic {i}", "subtopics": [], "seeds": [{"id": d.id, "text": d.text}]}
              for i, d in enumerate(docs[:16])]
    rows = as_dicts(prompt_grid(topics, args.prompts, list(AUDIENCES), list(STYLES), seed=0, extract_chars=1000))
    folder = tempfile.mkdtemp(prefix="smollm2-random-")
    random_smollm2(folder, args.tokenizer, args.smoke)
    tok = AutoTokenizer.from_pretrained(folder)
    engine = Counting(TransformersEngine(folder, device=args.device, batch_size=args.batch))
    params = GenerationParams(max_tokens=args.max_tokens, temperature=0.8, top_p=0.95, seed=0)
    engine.engine.generate(["warm-up"] * 2, GenerationParams(max_tokens=4))
    parts = tempfile.mkdtemp(prefix="synth-parts-")
    with Timer(args.device) as t:
        got = generate_pages(rows, engine, parts, params, args.batch)
    generated = sum(len(tok.encode(r["text"], add_special_tokens=False)) for r in got.values())
    first = engine.asked
    again = generate_pages(rows, engine, parts, params, args.batch)
    errors = sum(1 for r in got.values() if r["error"])
    reasons = {r["finish_reason"] for r in got.values()}
    ok = (len(got) == len(rows) and errors == 0 and reasons <= {"stop", "length"} and engine.asked == first
          and {k: r["text"] for k, r in again.items()} == {k: r["text"] for k, r in got.items()})
    emit(args, "synth", f"{len(rows)} synth prompts (grid with 1,000-char extracts), {args.max_tokens} new tokens, "
         f"batch {args.batch}, temperature 0.8, {'a tiny Llama' if args.smoke else 'SmolLM2-135M shape'}",
         t.seconds, f"{generated / t.seconds:,.0f} generated tokens/s ({len(rows) / t.seconds:.1f} pages/s)",
         f"{len(got)} rows for {len(rows)} prompts, {errors} engine errors, finish reasons {sorted(reasons)}; "
         f"the rerun asked the engine for {engine.asked - first} prompts (0)", ok,
         tokens_per_s=generated / t.seconds)


if __name__ == "__main__":
    main()
