"""The small-LM kit: tokenizer, GPT, training loop, held-out loss, checkpoints."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from conftest import STDLIB_MODULES

from textcurate.lm.data import eval_windows, tokenize_documents, training_batches
from textcurate.lm.model import GPT, GPTConfig
from textcurate.lm.tokenizer import LMTokenizer
from textcurate.lm.train import TrainConfig, heldout_loss, train_lm

MODULES = STDLIB_MODULES[:28]  # enough prose for a 512-token BPE, small enough to train fast


@pytest.fixture(scope="module")
def corpus():
    texts = [(importlib.import_module(m).__doc__ or m).strip() for m in MODULES]
    tok = LMTokenizer.train(texts, vocab_size=512)
    return tok, tokenize_documents(tok, texts)


def tiny(tok, block=64):
    return GPTConfig(vocab_size=tok.vocab_size, block_size=block, n_layer=2, n_head=2, n_embd=64)


def test_tokenizer_round_trip_and_save(tmp_path, corpus):
    tok, docs = corpus
    assert tok.vocab_size <= 512 and tok.eos_id is not None and all(len(d) for d in docs)
    tok.save(str(tmp_path / "tok"))
    back = LMTokenizer.load(str(tmp_path / "tok"))
    assert back.encode_batch(["JSON encoder and decoder"]) == tok.encode_batch(["JSON encoder and decoder"])


def test_training_lowers_loss_and_same_seed_gives_identical_curves(corpus):
    tok, docs = corpus
    cfg = TrainConfig(budget_tokens=40_000, batch_size=8, lr=3e-3, seed=1, device="cpu")
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = GPT(tiny(tok))
        before = heldout_loss(model, docs[:4], tok.eos_id, 64)
        res = train_lm(model, docs, tok.eos_id, 64, cfg)
        after = heldout_loss(model, docs[:4], tok.eos_id, 64)
        runs.append((res, before, after))
    res, before, after = runs[0]
    assert res.tokens >= 40_000 and res.steps == len(res.losses) and res.epochs > 1
    assert np.mean(res.losses[-5:]) < np.mean(res.losses[:5]) - 0.5
    assert after[0].sum() / after[1].sum() < before[0].sum() / before[1].sum() - 0.5
    assert runs[1][0].losses == res.losses  # same seed: the same curve, bit for bit
    np.testing.assert_array_equal(runs[1][2][0], after[0])


def test_budget_is_the_same_whatever_the_set_size(corpus):
    tok, docs = corpus
    small = list(training_batches(docs[:3], tok.eos_id, 32, 4, 10_000, seed=0))
    large = list(training_batches(docs, tok.eos_id, 32, 4, 10_000, seed=0))
    assert len(small) == len(large) == 10_000 // (4 * 32) + (10_000 % 128 > 0)
    assert small[-1][2] > large[-1][2]  # the small set went round more epochs
    assert all(torch.equal(a[1][:, :-1], a[0][:, 1:]) for a in small)  # targets are inputs shifted by one


def test_eval_windows_cover_every_token_once(corpus):
    tok, docs = corpus
    seen = np.zeros(len(docs), dtype=int)
    for i, x, y in eval_windows(docs, tok.eos_id, 16):
        assert len(x) == len(y) <= 16
        seen[i] += len(y)
    assert seen.tolist() == [len(d) for d in docs]


def test_checkpoint_resume_continues_the_same_run(tmp_path, corpus):
    tok, docs = corpus
    full_cfg = TrainConfig(budget_tokens=20_000, batch_size=8, seed=3, device="cpu")
    torch.manual_seed(0)
    full = train_lm(GPT(tiny(tok)), docs, tok.eos_id, 64, full_cfg)
    # stop half way (a budget of half the steps, same schedule length is not the same run): emulate a kill
    # by training with checkpoints, deleting nothing, then re-entering with the same folder
    cfg = TrainConfig(budget_tokens=20_000, batch_size=8, seed=3, device="cpu",
                      checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=10)
    torch.manual_seed(0)
    model = GPT(tiny(tok))
    steps = full.steps
    import textcurate.lm.train as tr

    original = tr.training_batches

    def killed(*a, **k):  # the first attempt dies after 25 optimizer steps
        for n, b in enumerate(original(*a, **k)):
            if n == 25:
                raise KeyboardInterrupt
            yield b
    tr.training_batches = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            train_lm(model, docs, tok.eos_id, 64, cfg)
    finally:
        tr.training_batches = original
    torch.manual_seed(123)  # a fresh process: other init, all of it replaced by the checkpoint
    resumed = train_lm(GPT(tiny(tok)), docs, tok.eos_id, 64, cfg)
    assert resumed.resumed_from == 20 and resumed.steps == steps
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-5, atol=1e-6)


def test_the_loop_trains_any_local_causal_lm(tmp_path, corpus):
    """A transformers Llama saved to a folder and loaded by path, as a user's own model would be."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from textcurate.lm.model import load_causal_lm

    tok, docs = corpus
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 max_position_embeddings=128)).save_pretrained(tmp_path / "llama")
    model = load_causal_lm(str(tmp_path / "llama"))
    before = heldout_loss(model, docs[:4], tok.eos_id, 64, device="cpu")
    res = train_lm(model, docs, tok.eos_id, 64, TrainConfig(budget_tokens=20_000, batch_size=8, device="cpu"))
    after = heldout_loss(model, docs[:4], tok.eos_id, 64, device="cpu")
    assert res.steps > 0 and after[0].sum() / after[1].sum() < before[0].sum() / before[1].sum() - 0.3
