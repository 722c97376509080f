"""Influence: projections keep inner products (JL), are batch-invariant and seeded; TRAK and
LESS put the target's domain at the top of a mixed pool."""

from __future__ import annotations

import json
import os
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from textcurate.influence.grads import PerExampleGrads, document_batches, select_parameters
from textcurate.influence.project import Projector
from textcurate.lm.data import tokenize_documents
from textcurate.lm.model import GPT, GPTConfig
from textcurate.lm.tokenizer import LMTokenizer
from test_evaluate import _corpus


@pytest.fixture(scope="module")
def real_grads(tmp_path_factory):
    """Per-example gradients of a small GPT on real text (a few thousand dimensions)."""
    recs = _corpus(tmp_path_factory.mktemp("pool"))
    texts = [r["text"] for r in recs if r["kind"] != "junk"][:48]
    tok = LMTokenizer.train(texts, vocab_size=300)
    docs = tokenize_documents(tok, texts, 48)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=1, n_head=2, n_embd=32))
    pg = PerExampleGrads(model, "all")
    rows = [pg.batch(x, y) for _, x, y in document_batches(docs, tok.eos_id, 48, 16)]
    return torch.cat(rows), pg, tok, docs


def test_per_example_gradients_equal_one_at_a_time_backward(real_grads):
    g, pg, tok, docs = real_grads
    model = pg.model
    _, x, y = next(document_batches(docs[:3], tok.eos_id, 48, 3))
    for r in range(3):
        model.zero_grad()
        n = int((y[r] != -100).sum())
        _, loss = model(x[r:r + 1, :n], y[r:r + 1, :n])
        loss.backward()
        ref = torch.cat([p.grad.reshape(-1) for _, p in model.named_parameters()])
        torch.testing.assert_close(g[r], ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian", "sparse"])
def test_projected_inner_products_stay_within_the_jl_bound(real_grads, kind):
    g, _, _, _ = real_grads
    k = 2048
    p = Projector(g.shape[1], k, kind, seed=1).project(g)
    gn = g / g.norm(dim=1, keepdim=True)
    pn = p / g.norm(dim=1, keepdim=True)
    err = (pn @ pn.T - gn @ gn.T).abs()
    # JL: inner products of unit vectors move by about sqrt(2/k) each; 5 sigma over all pairs
    bound = 5 * math.sqrt(2 / k)
    assert float(err.max()) < bound, (kind, float(err.max()), bound)
    assert float(err.mean()) < math.sqrt(2 / k)


def test_projection_is_batch_invariant_and_seeded(real_grads):
    g, _, _, _ = real_grads
    for kind in ("rademacher", "sparse"):
        a = Projector(g.shape[1], 256, kind, seed=7, block=1000, cache_bytes=0)
        whole = a.project(g)
        parts = torch.cat([a.project(g[i:i + 5]) for i in range(0, len(g), 5)])
        # the same numbers up to float32 summation order, which the matmul's blocking for another
        # batch size changes (AVX2 kernels here: 1.2e-6 on an entry of 0.008); the error is bounded by
        # the scale of the outputs, not by each entry's own size
        torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-5 * float(whole.abs().max()))
        again = Projector(g.shape[1], 256, kind, seed=7, block=1000).project(g)  # cached matrix, same numbers
        torch.testing.assert_close(again, whole, rtol=1e-5, atol=1e-6)
        other = Projector(g.shape[1], 256, kind, seed=8, block=1000).project(g)
        assert not torch.allclose(other, whole)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian", "sparse"])
def test_projection_matrix_is_a_function_of_seed_row_and_column(kind):
    # entries come from a counter-based hash, not a device's generator stream: the block size
    # (and so how the matrix is cut) changes nothing, and the entries have the stated law
    eye = torch.eye(3000)
    whole = Projector(3000, 96, kind, seed=3, block=3000).project(eye)
    cut = Projector(3000, 96, kind, seed=3, block=77, cache_bytes=0).project(eye)
    assert torch.equal(whole, cut)
    r = whole * (96 ** 0.5 if kind != "sparse" else 1)  # rows of R itself
    if kind == "rademacher":
        assert set(r.unique().tolist()) == {-1.0, 1.0}
    if kind == "sparse":
        assert torch.equal((r != 0).sum(1), torch.ones(3000, dtype=torch.long))  # one bucket per coordinate
    assert abs(float(r.mean())) < 0.02 * (1 if kind != "sparse" else 1 / 96 ** 0.5)
    if kind != "sparse":
        assert abs(float(r.pow(2).mean()) - 1) < 0.02
        corr = torch.corrcoef(r.T)  # columns are independent
        assert float((corr - torch.eye(96)).abs().max()) < 0.1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["rademacher", "gaussian", "sparse"])
def test_projection_is_the_same_on_cpu_and_cuda(kind):
    g = torch.randn(8, 50_000, generator=torch.Generator().manual_seed(0))
    cpu = Projector(50_000, 512, kind, seed=5).project(g)
    gpu = Projector(50_000, 512, kind, seed=5).project(g.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3)


def test_parameter_choice(real_grads):
    _, pg, _, _ = real_grads
    model = GPT(GPTConfig(vocab_size=100, block_size=16, n_layer=3, n_head=2, n_embd=16))
    last = select_parameters(model, "last:1")
    assert last and all(n.startswith("blocks.2.") for n in last)
    with pytest.raises(ValueError, match="last:K"):
        select_parameters(model, "first:2")
    with pytest.raises(ValueError, match="no LoRA"):
        select_parameters(model, "lora")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["less", "trak"])
def test_targeted_selection_puts_the_target_domain_on_top(tmp_path, method):
    from typer.testing import CliRunner

    from textcurate.cli import app

    recs = _corpus(tmp_path / "pool")
    res = CliRunner().invoke(app, [
        "influence", "--pool", str(tmp_path / "pool"), "--target-expr", "kind == 'prose'", "--method", method,
        "--proj-dim", "512", "--proj-kind", "sparse" if method == "less" else "rademacher", "--context", "48",
        "--warmup-tokens", "20000", "--warmup-fraction", "0.2", "--checkpoints", "2", "--model", "gpt",
        "--params", "all", "--candidates", "1", "--out", str(tmp_path / "inf")])
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "inf" / "card.json").read_text())
    import pyarrow.parquet as pq

    t = pq.read_table(str(tmp_path / "inf" / "influence.parquet")).to_pylist()
    kind = {r["id"]: r["kind"] for r in recs}
    base = np.mean([kind[r["id"]] == "prose" for r in t])
    top = sorted(t, key=lambda r: -r["influence"])[: len(t) // 10]
    share = np.mean([kind[r["id"]] == "prose" for r in top])
    assert share >= min(1.0, 2 * base), (method, share, base)
    assert card["method"] == method and card["grad_dim"] > 0 and len(card["checkpoints"]) >= 1
    assert base < 0.5 and len(t) == len(recs) - card["target"]  # the held-out target is not in the pool


@pytest.mark.slow
def test_influence_stage_then_evaluate_in_one_pipeline(tmp_path):
    """The pipeline form: influence as a fitted stage writes the attribute, the evaluate block
    trains on its top fraction against random, and the report shows both."""
    from textcurate.config import parse_pipeline
    from textcurate.runner.run import run_pipeline

    _corpus(tmp_path / "pool")
    target = "kind == 'prose'"
    cfg = parse_pipeline({
        "name": "influence-test", "input": {"type": "jsonl", "path": str(tmp_path / "pool")},
        "stages": [{"type": "influence", "target_expr": target, "method": "less", "proj_dim": 256, "context": 64,
                    "warmup_tokens": 10000, "warmup_fraction": 0.2, "checkpoints": 2, "vocab_size": 512,
                    "model": "gpt", "params": "all", "candidates": 1.0}],
        "output": {"path": str(tmp_path / "run")}, "executor": {"type": "local", "tasks": 2, "workers": 1},
        "evaluate": {"target": {"expr": target}, "selections": [{"name": "influence", "by": "influence",
                                                                 "fractions": [0.2]}],
                     "fractions": [0.2, 1.0], "seeds": [0], "budget_tokens": 8000, "max_doc_tokens": 64,
                     "model": {"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 64, "vocab_size": 512}}})
    rec = run_pipeline(cfg, report=True)
    assert rec["status"] == "complete" and not rec["problems"]
    attrs = pq.read_table(str(tmp_path / "run" / "attributes" / "influence")).to_pylist()
    scored = [r for r in attrs if r["influence"] == r["influence"]]  # not NaN
    card = json.loads((tmp_path / "run" / "artifacts" / "influence" / "card.json").read_text())
    assert len(scored) == card["pool"] and len(attrs) - len(scored) == card["target"] > 0
    result = json.loads((tmp_path / "run" / "evaluate" / "evaluate.json").read_text())
    assert result["target"]["documents"] == card["target"]  # the same held-out target
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Influence" in html and "Data efficiency" in html


@pytest.mark.slow
def test_every_run_carries_its_baselines_and_two_stage_scores_only_candidates(tmp_path):
    """The embedding-similarity baselines are computed and recorded beside influence in every run,
    compared at the same fraction (overlap, precision on a field); with candidates < 1 only the
    candidates (the pool's most target-similar share) get gradients, counted."""
    from datatrove.data import Document

    from textcurate.influence.run import InfluenceSpec, compute_influence, split_target

    recs = _corpus(tmp_path / "pool")
    docs = [Document(text=r["text"], id=r["id"], metadata={"kind": r["kind"]}) for r in recs]
    pool, target = split_target(docs, "kind == 'prose'", 0.3, log=lambda *_: None)
    spec = InfluenceSpec(method="less", proj_dim=64, proj_kind="sparse", context=32, warmup_tokens=2000,
                         warmup_fraction=0.1, checkpoints=2, vocab_size=300, n_layer=1, n_head=2, n_embd=32,
                         candidates=0.25, compare_fraction=0.1, compare_field="kind", model="gpt", params="all")
    lines = []
    card = compute_influence(pool, target, spec, str(tmp_path / "inf"), log=lines.append)
    t = pq.read_table(str(tmp_path / "inf" / "influence.parquet")).to_pylist()
    n_cand = math.ceil(0.25 * len(pool))
    scored = [r for r in t if r["influence"] == r["influence"]]
    assert len(t) == len(pool) and len(scored) == n_cand == card["candidates"]["documents"]
    assert card["gradients"] == 2 * (n_cand + len(target))  # two checkpoints, candidates and target only
    sims = sorted((r["target_sim"] for r in t), reverse=True)
    assert min(r["target_sim"] for r in scored) >= sims[n_cand - 1] - 1e-6  # the candidates are the most similar
    assert all(-1 - 1e-5 <= r[c] <= 1 + 1e-5 for r in t for c in ("target_sim", "target_sim_nearest"))
    cmp = card["comparison"]
    assert cmp["documents"] == round(0.1 * len(pool)) and set(cmp["precision"]) == {
        "influence", "target_sim", "target_sim_nearest", "random"}
    kinds = {d.id: d.metadata["kind"] for d in pool}
    top = sorted(t, key=lambda r: -r["target_sim"])[:cmp["documents"]]
    assert cmp["precision"]["target_sim"] == pytest.approx(np.mean([kinds[r["id"]] == "prose" for r in top]), abs=1e-4)
    assert cmp["precision"]["random"] == pytest.approx(np.mean([k == "prose" for k in kinds.values()]), abs=1e-4)
    assert cmp["precision"]["target_sim"] > cmp["precision"]["random"]  # docstrings find docstrings
    assert any("embedding similarity" in ln for ln in lines)


def test_lora_gradients_have_the_dimension_of_the_adapters(real_grads):
    """params: lora puts adapters on the blocks' linear layers (not the head), freezes the rest, and
    per-example gradients are taken with respect to the adapters only, equal to a plain backward."""
    from textcurate.influence.grads import add_lora

    _, _, tok, docs = real_grads
    torch.manual_seed(0)
    model = add_lora(GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=2, n_head=2, n_embd=32)), r=4)
    names = select_parameters(model, "lora")
    n_linear = sum(isinstance(m, torch.nn.Linear) and ".blocks." in f".{n}." and "lora_" not in n
                   for n, m in model.named_modules())
    assert len(names) == 2 * n_linear and all(".blocks." in f".{n}" for n in names)  # an A and a B per layer
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(names)
    dim = sum(dict(model.named_parameters())[n].numel() for n in names)
    with torch.no_grad():  # B starts at zero: move it, so that A's gradient is not zero either
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    pg = PerExampleGrads(model, "lora")
    _, x, y = next(document_batches(docs[:3], tok.eos_id, 48, 3))
    g = pg.batch(x, y)
    assert g.shape == (3, dim) == (3, pg.dim)
    model.zero_grad()
    out = model(x[1:2])
    logits = out[0] if isinstance(out, tuple) else out
    torch.nn.functional.cross_entropy(logits[0], y[1], ignore_index=-100).backward()
    ref = torch.cat([dict(model.named_parameters())[n].grad.reshape(-1) for n in names])
    assert torch.allclose(g[1], ref, atol=1e-5, rtol=1e-4)


def test_lora_influence_end_to_end(tmp_path):
    """A LESS run with params: lora warms up the adapters only and projects gradients of their size."""
    from datatrove.data import Document

    from textcurate.influence.run import InfluenceSpec, compute_influence, split_target

    recs = _corpus(tmp_path / "pool")[::3]
    docs = [Document(text=r["text"], id=r["id"], metadata={"kind": r["kind"]}) for r in recs]
    pool, target = split_target(docs, "kind == 'prose'", 0.3, log=lambda *_: None)
    spec = InfluenceSpec(method="less", params="lora", lora_r=2, proj_dim=32, proj_kind="sparse", context=32,
                         warmup_tokens=2000, warmup_fraction=0.2, checkpoints=1, vocab_size=300, n_layer=2,
                         n_head=2, n_embd=32, model="gpt", candidates=1.0)
    card = compute_influence(pool, target, spec, str(tmp_path / "inf"), log=lambda *_: None)
    per_layer = 2 * 32 + 2 * 96, 2 * 32 + 2 * 32, 2 * 32 + 2 * 128, 2 * 128 + 2 * 32  # qkv, proj, mlp in, mlp out
    assert card["grad_dim"] == 2 * sum(per_layer)  # two blocks; rank 2: r x in + out x r per layer
    t = pq.read_table(str(tmp_path / "inf" / "influence.parquet")).to_pylist()
    assert len(t) == len(pool) and all(r["influence"] == r["influence"] for r in t)


def test_rescore_reproduces_the_run_and_varies_normalisation_and_checkpoints(tmp_path):
    """rescore() recomputes a finished run's scores from its stored features: the same scores with
    the run's settings (up to the float16 features), others with normalize off or one checkpoint."""
    from datatrove.data import Document

    from textcurate.influence.run import InfluenceSpec, compute_influence, rescore, split_target
    from textcurate.influence.scores import less_scores, trak_scores

    recs = _corpus(tmp_path / "pool")[::3]
    docs = [Document(text=r["text"], id=r["id"], metadata={"kind": r["kind"]}) for r in recs]
    pool, target = split_target(docs, "kind == 'prose'", 0.3, log=lambda *_: None)
    spec = InfluenceSpec(method="less", proj_dim=64, proj_kind="sparse", context=32, warmup_tokens=3000,
                         warmup_fraction=0.2, checkpoints=2, vocab_size=300, n_layer=1, n_head=2, n_embd=32,
                         candidates=0.5, model="gpt", params="all")
    out = str(tmp_path / "inf")
    compute_influence(pool, target, spec, out, log=lambda *_: None)
    stored = pq.read_table(os.path.join(out, "influence.parquet")).column("influence").to_numpy()
    again = rescore(out)
    assert np.isnan(stored).sum() == np.isnan(again).sum() == len(pool) - int(np.ceil(0.5 * len(pool)))
    ok = ~np.isnan(stored)
    np.testing.assert_allclose(again[ok], stored[ok], atol=2e-3)
    raw, last = rescore(out, normalize=False), rescore(out, checkpoints=[1])
    assert np.all(np.isnan(raw) == np.isnan(stored))
    assert not np.allclose(raw[ok], stored[ok], atol=1e-3) and not np.allclose(last[ok], stored[ok], atol=1e-3)
    # the two normalisations by hand: LESS's cosine, and TRAK on unit features
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(20, 8)) * rng.uniform(0.1, 10, (20, 1)), rng.normal(size=(5, 8))
    u = p / np.linalg.norm(p, axis=1, keepdims=True)
    np.testing.assert_allclose(less_scores(p, t), u @ (t / np.linalg.norm(t, axis=1, keepdims=True)).mean(0),
                               rtol=1e-5)
    np.testing.assert_allclose(less_scores(p, t, normalize=False), p @ t.mean(0), rtol=1e-5)
    np.testing.assert_allclose(trak_scores(p, t, normalize=True), trak_scores(u, t / np.linalg.norm(
        t, axis=1, keepdims=True)), rtol=1e-4)


def test_hook_gradients_equal_vmap_for_linear_parameters(real_grads):
    """Where every chosen parameter is a linear layer's, per-example gradients come from one batched
    backward with hooks; they equal vmap's (and bf16 autocast stays close to them)."""
    from textcurate.influence.grads import add_lora

    _, _, tok, docs = real_grads
    torch.manual_seed(0)
    model = add_lora(GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=2, n_head=2, n_embd=32)), r=4)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    _, x, y = next(document_batches(docs[:5], tok.eos_id, 48, 5))
    hooks = PerExampleGrads(model, "lora")
    assert hooks.method == "hooks"
    via_vmap = hooks._batch_vmap(x, y)
    g = hooks.batch(x, y)
    assert torch.allclose(g, via_vmap, atol=1e-5, rtol=1e-4)
    bf = PerExampleGrads(model, "lora", dtype=torch.bfloat16).batch(x, y)
    cos = torch.nn.functional.cosine_similarity(bf, g, dim=1)
    assert cos.min() > 0.95
    assert PerExampleGrads(model, "all").method == "vmap"  # embeddings and norms: not linear layers


@pytest.mark.slow
def test_the_default_is_smollm2_lora_two_stage(tmp_path):
    """The measured default (README): SmolLM2-135M with rank-8 LoRA adapters warmed up on the pool,
    gradients (hooks) for the 30 % most target-similar documents only, two checkpoints, a count
    sketch; LESS scores."""
    from datatrove.data import Document

    from textcurate.influence.run import InfluenceSpec, compute_influence, split_target

    recs = _corpus(tmp_path / "pool")[::12]
    docs = [Document(text=r["text"], id=r["id"], metadata={"kind": r["kind"]}) for r in recs]
    pool, target = split_target(docs, "kind == 'prose'", 0.3, log=lambda *_: None)
    spec = InfluenceSpec(context=32, proj_dim=64, warmup_tokens=1000, compare_field="kind")
    assert (spec.model, spec.params, spec.candidates, spec.checkpoints, spec.method, spec.proj_kind) == (
        "smollm2", "lora", 0.3, 2, "less", "sparse")
    card = compute_influence(pool, target, spec, str(tmp_path / "inf"), log=lambda *_: None)
    n_cand = math.ceil(0.3 * len(pool))
    assert card["gradient_method"] == "hooks" and card["gradients"] == 2 * (n_cand + len(target))
    assert card["grad_dim"] == 30 * 8 * (1152 + 2 * 768 + 1152 + 3 * 2112)  # q, k, v, o, gate, up, down: r x (in + out)
    scores = pq.read_table(str(tmp_path / "inf" / "influence.parquet")).column("influence").to_numpy()
    assert int(np.isfinite(scores).sum()) == n_cand


def test_the_streamed_comparison_equals_a_stable_sort():
    """The card's comparison comes from exact thresholds over a stream (ties by position) and one
    counting pass: the same selections as a stable sort of each score in memory, NaN never taken."""
    from datatrove.data import Document

    from textcurate.influence.run import compare_selections

    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(5, 400))
        pool = [Document(text="x", id=str(i), metadata={"src": str(rng.integers(0, 4))}) for i in range(n)]
        target = [Document(text="y", id="t", metadata={"src": "1"})]
        scores = {name: np.round(rng.normal(size=n), 1) for name in ("a", "b", "c")}  # many ties
        scores["a"][rng.random(n) < 0.3] = np.nan
        frac = float(rng.uniform(0.01, 0.9))
        got = compare_selections(pool, target, scores, frac, "src")
        k = max(1, int(round(frac * n)))
        top = {}
        for name, s in scores.items():
            ok = np.flatnonzero(~np.isnan(s))
            top[name] = set(ok[np.argsort(-s[ok], kind="stable")[:k]].tolist())
        hit = np.array([d.metadata["src"] == "1" for d in pool])
        assert got["selected"] == {m: len(t) for m, t in top.items()}
        assert got["overlap"] == {f"{a}~{b}": round(len(top[a] & top[b]) / max(1, len(top[a])), 4)
                                  for a, b in (("a", "b"), ("a", "c"), ("b", "c"))}
        for m, t in top.items():
            assert got["precision"][m] == round(float(hit[sorted(t)].mean()) if t else 0.0, 4)
        assert got["precision"]["random"] == round(float(hit.mean()), 4)


@pytest.mark.slow
def test_the_stage_fit_streams_its_rows_and_equals_the_in_memory_call(tmp_path):
    """The influence stage's fit reads the pool from its fit files on every pass (never a list):
    the scores, baselines and comparison equal compute_influence on the same documents in memory,
    and a pool that changes between passes is an error, not a misaligned result."""
    import orjson
    import pyarrow as pa
    from datatrove.data import Document

    from textcurate.influence.pool import Documents, aligned, embed_pool
    from textcurate.influence.run import InfluenceSpec, compute_influence, split_target
    from textcurate.influence.stage import Influence

    recs = _corpus(tmp_path / "pool")[::2]
    docs = [Document(text=r["text"], id=r["id"], metadata={"kind": r["kind"]}) for r in recs]
    spec = InfluenceSpec(method="trak", proj_dim=32, proj_kind="sparse", context=32, warmup_tokens=2000,
                         warmup_fraction=0.2, checkpoints=2, vocab_size=300, n_layer=1, n_head=2, n_embd=32,
                         candidates=0.4, compare_field="kind", model="gpt", params="all", compare_fraction=0.2)
    fit = tmp_path / "fit"
    fit.mkdir()
    for t in range(3):  # three tasks' files
        part = docs[t::3]
        pq.write_table(pa.table({"id": [d.id for d in part], "text": [d.text for d in part],
                                 "metadata": [orjson.dumps(d.metadata).decode() for d in part]}),
                       str(fit / f"{t:05d}.parquet"))
    ordered = [d for t in range(3) for d in docs[t::3]]  # the files' order
    step = Influence(spec=spec, target_expr="kind == 'prose'", holdout=0.3, step_name="influence")
    decision = step.fit_folder(str(fit), str(tmp_path / "streamed"))
    pool, target = split_target(ordered, "kind == 'prose'", 0.3, log=lambda *_: None)
    card = compute_influence(pool, target, spec, str(tmp_path / "listed"), log=lambda *_: None)
    a = pq.read_table(str(tmp_path / "streamed" / "influence.parquet"))
    b = pq.read_table(str(tmp_path / "listed" / "influence.parquet"))
    assert a.column("id").equals(b.column("id")) and a.num_rows == len(pool) == decision["pool"]
    for c in ("influence", "target_sim", "target_sim_nearest"):  # NaN outside the candidates
        np.testing.assert_array_equal(a.column(c).to_numpy(zero_copy_only=False), b.column(c).to_numpy(
            zero_copy_only=False))
    assert decision["comparison"] == card["comparison"] and decision["candidates"] == card["candidates"]
    assert not os.path.exists(tmp_path / "streamed" / "_work")  # the spill files are gone
    # a pool that changes between passes
    path = str(tmp_path / "sims.parquet")
    embed_pool(Documents(pool), target, "minilm", path)
    with pytest.raises(ValueError, match="changed between"):
        list(aligned(Documents(pool[1:] + pool[:1]), path, []))
    with pytest.raises(ValueError, match="fewer documents"):
        list(aligned(Documents(pool[:-1]), path, []))
