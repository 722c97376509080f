"""GPU: the judge's generation path (the transformers engine: chat template, left-padded
batches, greedy decoding, bf16 on a GPU) on judge prompts built from real documents, checked
against the CPU path.

The model is SmolLM2-135M-Instruct's architecture with random weights and its real tokenizer
and chat template (the weights are larger than one device call may carry): what generation
costs does not depend on the weights' values, but the text it writes means nothing.
Throughput: generated tokens/s (the engine's count of new tokens), ``--prompts`` prompts of up to
1,000 characters, ``--max-tokens`` new tokens each, batches of ``--batch``.
Agreement: on the first ``--check`` prompts, as one left-padded batch, the engine's next-token
logits at every real position against the model in fp32 on the CPU: cosine >= 0.99 at every
position, and the share of positions whose most likely token is the same.

    python bench/gpu/generate.py [--prompts 512] [--batch 128] [--max-tokens 64] [--tokenizer .gpu/smollm2-tok]
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, check_device, emit, parser  # noqa: E402


def random_smollm2(folder: str, tokenizer: str, smoke: bool) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer)
    shape = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3)
    if smoke:
        shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=8192, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **shape)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)


def main() -> None:
    import torch

    from textcurate.engines.base import GenerationParams
    from textcurate.engines.hf import TransformersEngine, load_causal_lm
    from textcurate.judge.prompt import ANSWER_PREFIX, build_prompt

    ap = parser(__doc__)
    ap.add_argument("--prompts", type=int, default=512)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--check", type=int, default=8)
    ap.add_argument("--tokenizer", default=".gpu/smollm2-tok", help="SmolLM2's tokenizer (bench/gpu/pack.py)")
    args = ap.parse_args()
    if args.smoke:
        args.prompts, args.batch, args.max_tokens, args.check = 8, 4, 8, 4
    check_device(args.device)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from edu_score import corpus

    docs = corpus(min(args.prompts, 2000))
    prompts = [build_prompt(docs[i % len(docs)].text) for i in range(args.prompts)]
    folder = tempfile.mkdtemp(prefix="smollm2-random-")
    random_smollm2(folder, args.tokenizer, args.smoke)

    engine = TransformersEngine(folder, device=args.device, batch_size=args.batch)
    params = GenerationParams(max_tokens=args.max_tokens, assistant_prefix=ANSWER_PREFIX)
    engine.generate(prompts[:args.batch], GenerationParams(max_tokens=4, assistant_prefix=ANSWER_PREFIX))  # warm-up
    engine.tokens_generated = 0
    with Timer(args.device) as t:
        engine.generate(prompts, params)
    lm, tok = engine._load()
    generated = engine.tokens_generated

    texts = [engine._render(p, ANSWER_PREFIX) for p in prompts[:args.check]]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False, return_token_type_ids=False)
    ref_lm, _ = load_causal_lm(folder, "cpu", torch.float32)
    with torch.inference_mode():
        got = lm(**enc.to(engine._device)).logits.float().cpu()
        ref = ref_lm(**enc.to("cpu")).logits
    real = enc["attention_mask"].bool()
    cos = torch.nn.functional.cosine_similarity(got[real], ref[real], dim=-1)
    top1 = float((got[real].argmax(-1) == ref[real].argmax(-1)).float().mean())
    dtype = str(next(lm.parameters()).dtype).replace("torch.", "")
    emit(args, "generate", f"{args.prompts} judge prompts, {args.max_tokens} new tokens, batch {args.batch}, "
         f"{dtype}, {'a tiny Llama' if args.smoke else 'SmolLM2-135M shape'}", t.seconds, f"{generated / t.seconds:,.0f} generated tokens/s "
         f"({args.prompts / t.seconds:.1f} prompts/s)", f"next-token logits vs CPU fp32 on {args.check} prompts "
         f"({int(real.sum()):,} positions): cosine >= {float(cos.min()):.4f} (>= 0.99), same top token "
         f"{top1:.1%}", float(cos.min()) >= 0.99, tokens_per_s=generated / t.seconds)


if __name__ == "__main__":
    main()
