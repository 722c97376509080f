"""Tokenizers for the small-LM kit: a byte-level BPE trained with Hugging Face ``tokenizers``
on the corpus at hand, or a local model's own tokenizer. Both encode to plain id lists and
append an end-of-text id between documents."""

from __future__ import annotations

import os
from typing import Iterable

EOS = "<|endoftext|>"


class LMTokenizer:
    def __init__(self, tokenizer, eos_id: int, vocab_size: int, kind: str):
        self._tok, self.eos_id, self.vocab_size, self.kind = tokenizer, eos_id, vocab_size, kind

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2) -> "LMTokenizer":
        from tokenizers import ByteLevelBPETokenizer

        tok = ByteLevelBPETokenizer()
        tok.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS],
                                show_progress=False)
        return cls(tok, tok.token_to_id(EOS), tok.get_vocab_size(), "bpe")

    @classmethod
    def from_model(cls, path: str) -> "LMTokenizer":
        """A local model's tokenizer: a folder, a .gguf file, or a packaged model's short name."""
        from transformers import AutoTokenizer

        from textcurate.assets.models import ALIASES, resolve_gguf

        kwargs = {}
        if path == "smollm2":
            from textcurate.assets.smollm import smollm2_tokenizer

            path = smollm2_tokenizer()
        elif path in ALIASES or path.endswith(".gguf"):  # read the tokenizer from the GGUF itself
            path, kwargs["gguf_file"] = os.path.split(os.path.abspath(resolve_gguf(path)))
        tok = AutoTokenizer.from_pretrained(path, **kwargs)
        eos = tok.eos_token_id if tok.eos_token_id is not None else 0
        return cls(tok, eos, len(tok), "hf")

    @classmethod
    def load(cls, path: str) -> "LMTokenizer":
        from tokenizers import Tokenizer

        if os.path.isdir(path) and not os.path.exists(os.path.join(path, "tokenizer.json")):
            return cls.from_model(path)
        tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path)
        tok.no_padding()  # a tokenizer.json may carry a fixed padding/truncation length (MiniLM's: 128)
        tok.no_truncation()
        return cls(tok, tok.token_to_id(EOS), tok.get_vocab_size(), "bpe")

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        if self.kind == "bpe":
            raw = getattr(self._tok, "_tokenizer", self._tok)  # the implementation behind the BPE wrapper
            raw.save(os.path.join(folder, "tokenizer.json"))
        else:
            self._tok.save_pretrained(folder)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if self.kind == "bpe":
            return [e.ids for e in self._tok.encode_batch(texts)]
        # explicit: some tokenizer configs (MiniLM's) pad or truncate to a fixed length by default
        return self._tok(texts, add_special_tokens=False, padding=False, truncation=False,
                         verbose=False)["input_ids"]
