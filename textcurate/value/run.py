"""A valuation of units of a pool of documents for a target, with the small-LM kit as the utility.

U(S) = minus the mean target loss (nats/token, over ``seeds``) of a fresh GPT trained for
``budget_tokens`` on the documents of the units in S (the same budget for every S: a smaller S is
repeated for more epochs, as in ``evaluate``); U of no unit is minus the untrained model's loss.
Every training goes through ``train_and_score`` with its cache under OUT/runs, so no subset is
trained twice and a killed valuation resumes where it stopped.

OUT/values.json     settings, the table (unit, value, stderr, rank, documents, tokens), the
                    trainings it took, failures
"""

from __future__ import annotations

import os
import time
from typing import Callable, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from textcurate.lm.experiment import LMSpec
from textcurate.value.games import Game, Values, banzhaf_msr, exact_shapley, leave_one_out, tmc_shapley

PROGRESS_EVERY = 15.0  # seconds between progress lines while trainings run

Method = Literal["loo", "shapley", "banzhaf", "exact", "influence"]
METHODS: tuple[str, ...] = get_args(Method)


class ValueSpec(BaseModel):
    """What ``textcurate value`` and a pipeline's ``value:`` block ask for."""
    model_config = ConfigDict(extra="forbid")
    units: str = Field("source", description="a metadata field whose values are the units (source, language, "
                                             "cluster_id, edu_int, ...)")
    method: Method = Field("loo", description="loo | shapley (truncated Monte Carlo) | banzhaf (maximum sample reuse) "
                                           "| exact (every subset: 2^units trainings) | influence (per annotation, "
                                           "for the classifier head; the input is an annotations Parquet)")
    target_expr: str | None = Field(None, description="the target: pool documents matching it, of which holdout are "
                                                      "held out (every method but influence)")
    lam: float = Field(0.01, gt=0, description="influence: the ridge penalty of the linear head")
    val_frac: float = Field(0.2, gt=0, lt=1, description="influence: annotations held out as the validation loss")
    check_loo: bool = Field(True, description="influence: also retrain the head without each annotation (exact) and "
                                              "report the rank correlation")
    holdout: float = Field(0.3, gt=0, lt=1)
    budget_tokens: int = Field(100_000, ge=1000, description="training tokens of every utility (every subset)")
    seeds: list[int] = Field([0], min_length=1, description="each utility is the mean over these seeds")
    max_doc_tokens: int = Field(256, ge=16, description="longer documents are cut")
    truncation: float = Field(0.01, ge=0, description="shapley: stop a permutation once U(prefix) is this close "
                                                      "(relative) to U(all)")
    convergence: float = Field(0.05, ge=0, description="shapley: stop when the values moved less than this "
                                                       "(mean relative change over the last window permutations)")
    window: int = Field(100, ge=1, description="shapley: the window of that rule")
    stderr: float | None = Field(None, gt=0, description="shapley, banzhaf: also stop once every unit's standard "
                                                         "error is below this fraction of |U(all) - U(none)| "
                                                         "(pyDVL's AbsoluteStandardError, relative)")
    max_permutations: int = Field(200, ge=2)
    samples: int = Field(64, ge=4, description="banzhaf: subsets sampled")
    max_units: int = Field(300, ge=2, description="more units than this is an error (each costs trainings)")
    max_documents: int | None = Field(200_000, ge=2, description=(
        "read at most this many documents of the pool: all when there are no more, else the ones with the smallest "
        "id-hash (a uniform sample), so memory is bounded whatever the corpus's size; null: every document"))
    seed: int = 0
    model: LMSpec = LMSpec(n_layer=2, n_embd=64, n_head=4, block_size=128, vocab_size=1024)
    batch_size: int = 16
    lr: float = 1e-3
    device: str = "auto"



def units_of(docs: list, field: str) -> tuple[list[str], list[list[int]], int]:
    """(unit names, the documents of each, documents without the field)."""
    groups: dict[str, list[int]] = {}
    missing = 0
    for i, d in enumerate(docs):
        v = d.metadata.get(field)
        if v is None:
            missing += 1
            continue
        groups.setdefault(str(v), []).append(i)
    names = sorted(groups)
    return names, [groups[n] for n in names], missing


def lm_game(docs: list, spec: ValueSpec, out: str, log: Callable = print) -> tuple[Game, dict]:
    """The game over ``spec.units`` of ``docs`` (the target held out first), and facts about it."""
    from textcurate.lm.data import tokenize_documents
    from textcurate.lm.experiment import Heldout, TrainOptions, bpe_sample, build_model, make_tokenizer, train_and_score
    from textcurate.select.targets import split_target
    from textcurate.lm.train import heldout_loss

    if not spec.target_expr:
        raise ValueError(f"method {spec.method}: give target_expr (--target-expr), the documents the units are "
                         f"valued for")
    pool, target = split_target(docs, spec.target_expr, spec.holdout, log=log)
    names, members, missing = units_of(pool, spec.units)
    if not names:
        raise ValueError(f"no pool document has the field {spec.units!r}: nothing to value")
    if len(names) > spec.max_units:
        raise ValueError(f"{len(names)} units of {spec.units!r} (more than max_units {spec.max_units}); group them "
                         f"coarser, e.g. by cluster")
    if len(names) < 2:
        raise ValueError(f"one unit ({names[0]!r}) of {spec.units!r}: a valuation compares at least two")
    tok = make_tokenizer(spec.model, bpe_sample(pool))
    pool_tok = tokenize_documents(tok, [d.text for d in pool], spec.max_doc_tokens)
    heldout = Heldout({"target": tokenize_documents(tok, [d.text for d in target], spec.max_doc_tokens)})
    options = TrainOptions(batch_size=spec.batch_size, lr=spec.lr, device=spec.device)
    cache = os.path.join(out, "runs")
    trainings = {"trained": 0, "cached": 0, "seconds": 0.0}
    block = spec.model.block_size
    shown = [time.perf_counter()]

    def progress() -> None:  # a line every 15 s, in the unit that moves: trainings
        if time.perf_counter() - shown[0] >= PROGRESS_EVERY:
            shown[0] = time.perf_counter()
            log(f"  value: {trainings['trained']:,} trainings ({trainings['seconds']:.0f} s of training), "
                f"{trainings['cached']:,} from the cache")

    def utility(s: frozenset) -> float:
        losses = []
        for seed in spec.seeds:
            if not s:
                model = build_model(spec.model, tok.vocab_size, seed)
                su, c = heldout_loss(model, heldout.sets["target"], tok.eos_id, block, device=spec.device)
                losses.append(float(su.sum() / max(1, c.sum())))
                continue
            train = [pool_tok[i] for u in sorted(s) for i in members[u]]
            if sum(len(t) + 1 for t in train) < block + 1:
                raise ValueError(f"{sum(len(t) for t in train)} tokens cannot fill one training block of {block}")
            score = train_and_score(train, spec.model, spec.budget_tokens, seed, tokenizer=tok, heldout=heldout,
                                    options=options, cache_dir=cache)
            trainings["cached" if score.cached else "trained"] += 1
            trainings["seconds"] += 0.0 if score.cached else score.train["wall_seconds"]
            progress()
            losses.append(score.loss["target"])
        return -float(np.mean(losses))

    lengths = [sum(len(pool_tok[i]) for i in m) for m in members]
    facts = {"units": names, "documents": [len(m) for m in members], "tokens": lengths, "target": len(target),
             "pool": len(pool), "without_field": missing, "trainings": trainings}
    if missing:
        log(f"warning: {missing:,} pool documents have no {spec.units!r}: they are in no unit")
    return Game(len(names), utility, names), facts


def estimate(game: Game, spec: ValueSpec, log: Callable = print) -> Values:
    if spec.method == "loo":
        return leave_one_out(game)
    if spec.method == "exact":
        return exact_shapley(game)
    max_stderr = spec.stderr * abs(game(game.full) - game(())) if spec.stderr else None
    if spec.method == "shapley":
        return tmc_shapley(game, truncation=spec.truncation, convergence=spec.convergence, window=spec.window,
                           max_stderr=max_stderr, max_permutations=spec.max_permutations, seed=spec.seed, log=log)
    return banzhaf_msr(game, samples=spec.samples, seed=spec.seed, max_stderr=max_stderr, log=log)


def value_units(docs: list, spec: ValueSpec, out: str, log: Callable = print) -> dict:
    from textcurate.io.files import write_json_atomic

    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    game, facts = lm_game(docs, spec, out, log)
    log(f"value: {game.n} units of {spec.units!r} ({', '.join(game.names)}), method {spec.method}, "
        f"{spec.budget_tokens:,} training tokens per utility x {len(spec.seeds)} seed(s)")
    res = estimate(game, spec, log)
    table = res.table(game.names)
    for row in table:
        i = game.names.index(row["unit"])
        row.update(documents=facts["documents"][i], tokens=facts["tokens"][i])
    result = {"method": res.method, "units_field": spec.units, "table": table,
              "utility_full": game.cache.get(game.full), "utility_empty": game.cache.get(frozenset()),
              "utilities": game.evaluations, "trainings": facts["trainings"], "samples": res.samples,
              "info": res.info, "failures": {",".join(game.names[i] for i in sorted(s)): why
                                             for s, why in game.failures.items()},
              "target_documents": facts["target"], "pool_documents": facts["pool"],
              "without_field": facts["without_field"], "spec": spec.model_dump(mode="json"),
              "seconds": round(time.perf_counter() - t0, 1)}
    write_json_atomic(os.path.join(out, "values.json"), result, indent=1)
    return result


def value_annotations(path: str, spec: ValueSpec, out: str, embedder: str = "minilm", log: Callable = print) -> dict:
    """Influence of every annotation (id, text, score) on the validation loss of a linear head on its
    embeddings, with the exact leave-one-out beside it when ``check_loo``."""
    import pyarrow as pa

    from textcurate.classify.train import load_annotations
    from textcurate.embed.embedder import Embedder
    from textcurate.io.files import write_json_atomic, write_parquet_atomic
    from textcurate.io.records import hash_share
    from textcurate.io.sampling import HEAD_VALIDATION_SALT
    from textcurate.value.ridge_influence import influence_values, loo_exact

    t0 = time.perf_counter()
    ids, texts, y, extra = load_annotations(path)
    # rows whose split column says "test" are held out of everything, as the classifier's training holds them
    test = np.array([s == "test" for s in extra.get("split", [None] * len(ids))])
    if test.all():
        test[:] = False
    x = Embedder(embedder).encode(texts)
    val = np.array([hash_share(i, spec.seed + HEAD_VALIDATION_SALT) < spec.val_frac for i in ids]) & ~test
    tr = ~val & ~test
    if val.sum() < 2 or tr.sum() < 2:
        raise ValueError(f"{path}: {int(tr.sum())} training and {int(val.sum())} validation annotations; need 2 each")
    yf = np.asarray(y, dtype=np.float64)
    inf, info = influence_values(x[tr], yf[tr], x[val], yf[val], lam=spec.lam, solver="explicit")
    rows = {"id": [i for i, t in zip(ids, tr) if t], "score": yf[tr], "value": inf,
            "text": [t[:300] for t, k in zip(texts, tr) if k]}
    result = {"method": "influence", "annotations": path, "train": int(tr.sum()), "validation": int(val.sum()),
              "test_excluded": int(test.sum()), "embedder": embedder, **info}
    if spec.check_loo:
        from scipy.stats import spearmanr

        loo = loo_exact(x[tr], yf[tr], x[val], yf[val], lam=spec.lam)
        rows["loo"] = loo
        result["spearman_to_loo"] = float(spearmanr(inf, loo).statistic)
    os.makedirs(out, exist_ok=True)
    write_parquet_atomic(os.path.join(out, "values.parquet"), pa.table(rows))
    order = np.argsort(inf)
    result["most_harmful"] = [{"id": rows["id"][i], "score": float(yf[tr][i]), "value": float(inf[i]),
                               "text": rows["text"][i][:160]} for i in order[:10]]
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(os.path.join(out, "values.json"), result, indent=1)
    return result
