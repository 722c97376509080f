"""Data-efficiency evaluation: does a selection train a better small LM than random data?

The pool is split once, by id-hash: the target (held-out documents of the domain that
matters, or a separate set), a general held-out sample, and the training pool. A BPE is
trained on the pool and shared by every run. Then, for every budget and seed, a fresh GPT
with the same architecture, initialisation and token budget is trained on each random
fraction of the pool (nested subsets of one seeded permutation) and on each selection;
every run reports its target loss, its general held-out loss and the epochs its budget
took (``lm.experiment.train_and_score``). The random runs of a budget give its curve of
target loss against log fraction; if its slope is not distinguishable from zero given the
spread over seeds, the evaluation cannot tell data sizes apart at that budget: selections
get their loss difference and no multiplier, with a warning naming the budget that would
put the pool in the data-constrained regime. Otherwise ``curves.multiplier`` gives each
selection's data-efficiency multiplier per seed. Finished runs are cached under
``OUT/runs/`` by content, so a killed evaluation continues where it stopped.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from textcurate.evaluate.curves import RandomCurve, multiplier, random_slope, summarize
from textcurate.evaluate.spec import DATA_CONSTRAINED_EPOCHS, EvaluateSpec, default_budget
from textcurate.io.files import write_json_atomic
from textcurate.io.records import stable_hash
from textcurate.lm.experiment import Heldout, TrainOptions, bpe_sample, gpt_config, make_tokenizer, train_and_score
from textcurate.io.sampling import GENERAL_SALT, RANDOM_SUBSET_SALT, in_share
from textcurate.select.targets import field_scores, match, split_target


@dataclass
class Split:
    pool: list            # Documents a run may train on
    target: list
    general: list


def split_documents(docs: list, spec: EvaluateSpec, target_docs: list | None = None, log=None) -> Split:
    if spec.target.expr:
        rest, target = split_target(docs, spec.target.expr, spec.target.holdout, log=log)
    else:
        target = list(target_docs or [])
        if not target:
            raise ValueError("the target is empty: the target set holds no document")
        ids = {d.id for d in target}
        rest = [d for d in docs if d.id not in ids]
    general = [d for d in rest if in_share(d.id, spec.general_holdout, GENERAL_SALT)]
    pool = [d for d in rest if not in_share(d.id, spec.general_holdout, GENERAL_SALT)]
    if len(pool) < 2:
        raise ValueError(f"{len(pool)} documents left to train on")
    return Split(pool, target, general)


def _take_tokens(order: np.ndarray, lengths: np.ndarray, want: float) -> np.ndarray:
    """The shortest prefix of ``order`` holding at least ``want`` tokens."""
    cum = np.cumsum(lengths[order])
    k = int(np.searchsorted(cum, want - 1e-9)) + 1
    return order[: min(k, len(order))]


def selection_points(spec: EvaluateSpec, pool: list, lengths: np.ndarray, log=None) -> list[dict]:
    """[{name, requested, indices}] for every selection (one point per fraction for ranked ones).
    A field no pool document has is an error naming it; a document that does not match is not."""
    total = lengths.sum()
    points = []
    for sel in spec.selections:
        what = f"selection {sel.name!r}"
        eligible = np.arange(len(pool))
        weights = None
        if sel.ids:
            wanted = _read_ids(sel.ids)
            eligible = np.array([i for i in eligible if pool[i].id in wanted], dtype=np.int64)
            if sel.weight and sel.ids.endswith(".parquet"):
                weights = _read_weights(sel.ids, sel.weight)
        if sel.expr:
            eligible = eligible[match(sel.expr, [pool[i] for i in eligible], what, log)]
        if sel.by is None:
            point = {"name": sel.name, "requested": None, "indices": eligible}
            if sel.weight:
                w = np.array([weights.get(pool[i].id, 0.0) for i in eligible]) if weights is not None else \
                    field_scores([pool[i] for i in eligible], sel.weight, what, log)
                keep = np.nan_to_num(w) > 0
                point["indices"], point["weights"] = eligible[keep], np.nan_to_num(w)[keep]
            points.append(point)
            continue
        scores = field_scores([pool[i] for i in eligible], sel.by, what, log) if len(eligible) else np.zeros(0)
        ok = ~np.isnan(scores)
        eligible, scores = eligible[ok], scores[ok]
        hashes = np.array([stable_hash(pool[i].id) for i in eligible], dtype=np.uint64)
        order = eligible[np.lexsort((hashes, scores if sel.ascending else -scores))]
        for f in sel.fractions:
            points.append({"name": sel.name, "requested": f, "indices": _take_tokens(order, lengths, f * total)})
    for p in points:
        if len(p["indices"]) == 0:
            raise ValueError(f"selection {p['name']!r} keeps no document of the pool")
    return points


def _read_weights(path: str, column: str) -> dict[str, float] | None:
    import pyarrow.parquet as pq

    if column not in pq.ParquetFile(path).schema_arrow.names:
        return None  # then it is an attribute of the pool's documents
    t = pq.read_table(path, columns=["id", column])
    return dict(zip(t.column("id").to_pylist(), t.column(column).to_pylist()))


def _read_ids(path: str) -> set[str]:
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        return set(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    with open(path) as fh:
        return {line.strip() for line in fh if line.strip()}


def evaluate(docs: list, spec: EvaluateSpec, out_dir: str, target_docs: list | None = None, log=print,
             reuse: tuple[str, ...] = ()) -> dict:
    from textcurate.lm.data import tokenize_documents
    from textcurate.lm.model import GPT

    started = time.time()
    split = split_documents(docs, spec, target_docs, log=log)
    os.makedirs(out_dir, exist_ok=True)
    runs_dir = os.path.join(out_dir, "runs")

    m = spec.model
    tok = make_tokenizer(m, bpe_sample(split.pool))
    tok.save(os.path.join(out_dir, "tokenizer"))
    pool_tok = tokenize_documents(tok, [d.text for d in split.pool], spec.max_doc_tokens)
    heldout = Heldout({"target": tokenize_documents(tok, [d.text for d in split.target], spec.max_doc_tokens),
                       "general": tokenize_documents(tok, [d.text for d in split.general], spec.max_doc_tokens)})
    if spec.domain_field:
        heldout.domains["target"] = [str(d.metadata.get(spec.domain_field)) for d in split.target]
    lengths = np.array([len(t) + 1 for t in pool_tok], dtype=np.int64)
    total = int(lengths.sum())
    points = selection_points(spec, split.pool, lengths, log=log)
    budgets = spec.budgets(total)
    options = TrainOptions(batch_size=spec.batch_size, lr=spec.lr, device=spec.device)
    n_runs = (len(spec.fractions) + len(points)) * len(spec.seeds)
    log(f"evaluate: pool {len(split.pool):,} documents ({total:,} tokens), target {len(split.target):,}, general "
        f"{len(split.general):,}; {len(spec.fractions)} random fractions + {len(points)} selection points x "
        f"{len(spec.seeds)} seeds = {n_runs} runs per budget")
    warnings = []
    for b in budgets:
        e10 = b / (0.1 * total)
        how = f" (default: epochs_at_10pct {spec.epochs_at_10pct:g})" if spec.budget_tokens is None else ""
        log(f"  budget {b:,} training tokens per run{how}: random 10 % = {e10:.1f} epochs, the whole pool "
            f"{b / total:.1f}; {b * n_runs:,} tokens in all")
        if e10 < DATA_CONSTRAINED_EPOCHS:
            warnings.append(_log_warning(log, f"budget {b:,}: random 10 % of the pool is seen {e10:.1f} times; "
                            f"below ~{DATA_CONSTRAINED_EPOCHS:g} repetitions more unique data gains little (up to "
                            f"~4 cost almost nothing, Muennighoff et al.), so the random curve may be flat; the "
                            f"default, {default_budget(total, spec.epochs_at_10pct):,} tokens, repeats it "
                            f"{spec.epochs_at_10pct:g} times"))
    clock = {"left": sum(budgets) * n_runs, "tokens": 0, "seconds": 0.0}  # for the time-to-go estimate

    def one_run(name: str, requested, indices: np.ndarray, seed: int, budget: int, weights=None) -> dict:
        key = f"{name}@{requested if requested is not None else 'all'}-s{seed}"
        train = indices
        if weights is not None:  # a weighted selection: copies per document follow its weights, for this budget
            from textcurate.mix.materialise import draw_copies

            copies = draw_copies([split.pool[i].id for i in indices], lengths[indices].astype(np.float64), budget,
                                 seed, weights)
            train = np.repeat(indices, copies)
        score = train_and_score([pool_tok[i] for i in train], m, budget, seed, tokenizer=tok, heldout=heldout,
                                options=options, cache_dir=runs_dir, reuse=reuse)
        tr = score.train
        row = {"name": name, "requested": requested, "seed": seed, "budget_tokens": budget,
               "documents": int(len(indices)), "tokens": int(lengths[indices].sum()),
               "fraction": float(lengths[indices].sum() / total), "target_loss": score.loss["target"],
               "epochs": tr["epochs"], "train_seconds": tr["seconds"], "train_tokens_per_s": tr["tokens_per_s"],
               "final_train_loss": tr["final_train_loss"]}
        if weights is not None:  # passes over the selection's own documents, not over the list of copies
            row["epochs"], row["weighted"] = float(budget / lengths[indices].sum()), True
        if "general" in score.loss:
            row["general_loss"] = score.loss["general"]
        if "target" in score.by_domain:
            row["target_loss_by_domain"] = score.by_domain["target"]
        clock["left"] -= budget
        if not score.cached:
            clock["tokens"] += tr["tokens"]
            clock["seconds"] += tr["wall_seconds"]
        took = "cached" if score.cached else f"{tr['wall_seconds']:.0f} s"
        if clock["seconds"] and clock["left"]:
            took += f", ~{clock['left'] / (clock['tokens'] / clock['seconds']) / 60:.0f} min to go"
        log(f"  {key:34s} fraction {row['fraction']:.3f}  epochs {row['epochs']:6.2f}  target loss "
            f"{row['target_loss']:.4f}  ({took})")
        return row

    runs, per_budget = [], []
    for b in budgets:
        brun = []
        for seed in spec.seeds:
            perm = np.random.default_rng([seed, RANDOM_SUBSET_SALT]).permutation(len(split.pool))
            for f in sorted(spec.fractions):
                brun.append(one_run("random", f, _take_tokens(perm, lengths, f * total), seed, b))
            for p in points:
                brun.append(one_run(p["name"], p["requested"], p["indices"], seed, b, p.get("weights")))
        runs += brun
        per_budget.append(_budget_result(brun, spec, b, total, log))
        warnings += per_budget[-1]["warnings"]

    dump = spec.model_dump(mode="json")
    dump["budget_tokens"] = budgets[0] if len(budgets) == 1 else budgets  # as run: the default resolved
    gcfg = gpt_config(m, tok.vocab_size)
    result = {"pool": {"documents": len(split.pool), "tokens": total}, "target": {"documents": len(split.target)},
              "general": {"documents": len(split.general)}, "tokenizer": {"kind": tok.kind, "vocab": tok.vocab_size},
              "model": {**gcfg.to_dict(), "parameters": GPT(gcfg).num_params()}, "spec": dump,
              "budgets": [{k: v for k, v in r.items() if k != "selections"} for r in per_budget],
              "runs": runs, "selections": [s for r in per_budget for s in r["selections"]], "warnings": warnings,
              "seconds": round(time.time() - started, 1)}
    write_json_atomic(os.path.join(out_dir, "evaluate.json"), result, indent=1)
    return result


def _log_warning(log, text: str) -> str:
    log(f"warning: {text}")
    return text


def _budget_result(runs: list[dict], spec: EvaluateSpec, budget: int, pool_tokens: int, log) -> dict:
    """One budget: the random curve's slope over log fraction, and every selection against it."""
    rand = [r for r in runs if r["name"] == "random"]
    slope = random_slope([r["fraction"] for r in rand], [r["target_loss"] for r in rand], [r["seed"] for r in rand])
    e10 = budget / (0.1 * pool_tokens)
    warnings = []
    if not slope["sloped"]:
        need = default_budget(pool_tokens, spec.epochs_at_10pct)
        more = (f"a budget of about {need:,} tokens per run (random 10 % = {spec.epochs_at_10pct:g} epochs)"
                if budget < need else f"a budget of {10 * budget:,} tokens per run or more seeds (random 10 % is "
                                      f"already at {e10:.0f} epochs)")
        warnings.append(_log_warning(log, (
            f"budget {budget:,}: the random curve is "
            f"{'RISING (more random data did worse)' if slope['ci'][0] > 0 else 'flat within its noise'} (slope "
            f"{slope['slope']:+.4f} nats per "
            f"unit log fraction, 95 % interval [{slope['ci'][0]:+.4f}, {slope['ci'][1]:+.4f}]): at this budget "
            f"more random data does not lower the target loss measurably, so no multiplier is given, only each "
            f"selection's loss difference to random; {more} should put the pool in the data-constrained regime")
            if slope["ci"][0] == slope["ci"][0] else
            f"budget {budget:,}: {slope['why']}; no multiplier is given, only loss differences; {more}"))
    return {"budget_tokens": budget, "epochs_at_10pct": round(e10, 2), "random_curve": slope,
            "selections": _multipliers(runs, spec.seeds, budget, slope["sloped"]), "warnings": warnings}


def _multipliers(runs: list[dict], seeds: list[int], budget: int, sloped: bool = True) -> list[dict]:
    """Per selection point: target loss, delta and (on a sloped random curve) multiplier per seed,
    summarised over seeds."""
    curves = {}
    for s in seeds:
        rr = [r for r in runs if r["name"] == "random" and r["seed"] == s]
        curves[s] = RandomCurve([r["fraction"] for r in rr], [r["target_loss"] for r in rr])
    out: dict[tuple, dict] = {}
    for r in runs:
        if r["name"] == "random":
            continue
        key = (r["name"], r["requested"])
        item = out.setdefault(key, {"name": r["name"], "requested": r["requested"], "budget_tokens": budget,
                                    "fraction": r["fraction"], "per_seed": []})
        curve = curves[r["seed"]]
        mult, bound = multiplier(curve, r["fraction"], r["target_loss"]) if sloped else (None, None)
        item["per_seed"].append({"seed": r["seed"], "target_loss": r["target_loss"], "multiplier": mult,
                                 "bound": bound, "delta": curve.delta(r["fraction"], r["target_loss"]),
                                 "epochs": r["epochs"], "general_loss": r.get("general_loss")})
    for item in out.values():
        item["multiplier"] = summarize([p["multiplier"] for p in item["per_seed"] if p["multiplier"] is not None])
        item["target_loss"] = summarize([p["target_loss"] for p in item["per_seed"]])
        item["delta"] = summarize([p["delta"] for p in item["per_seed"]])
        bounds = {p["bound"] for p in item["per_seed"]}
        item["bound"] = bounds.pop() if len(bounds) == 1 else ("mixed" if bounds - {None} else None)
        if not sloped:
            item["multiplier_withheld"] = "the random curve is flat at this budget"
    return list(out.values())
