"""Plan (and optionally materialise) a mixture: count the sources, plan, write the artifacts.

OUT/plan.json     the plan (rows, warnings, predicted losses), the counts and the spec
OUT/card.json     kind: mixture_plan (so a run's report finds it)
OUT/mixture/      the materialised mixture and its ledger (mixture.json), when asked
"""

from __future__ import annotations

import os

import numpy as np

from textcurate.io.files import write_json_atomic
from textcurate.mix.planner import plan_mixture, resolve_budget
from textcurate.mix.sources import count, documents_of, planner_sources
from textcurate.mix.spec import MixSpec


RUN = "@run"  # in a pipeline's mix block: the documents that run kept


def bind_run(spec: MixSpec, run_dir: str) -> MixSpec:
    """The spec with ``@run`` (and a group_by without a path) pointing at the run's documents."""
    sources = [s.model_copy(update={"path": run_dir}) if s.path == RUN else s for s in spec.sources]
    group = spec.group_by
    if group is not None and group.path in (None, RUN):
        group = group.model_copy(update={"path": run_dir})
    return spec.model_copy(update={"sources": sources, "group_by": group})


def fit_weights(spec: MixSpec, out: str, sources=None, log=print) -> dict:
    """RegMix or DoReMi weights per source, from proxy LMs trained on the sources' documents."""
    from textcurate.io.sampling import MIX_TARGET_SALT, in_share
    from textcurate.mix.proxy import ProxyLab
    from textcurate.mix.spec import ProxyConfig
    from textcurate.select.expr import Expr

    f = spec.fit
    target_expr = Expr(f.target_expr)
    domains: dict[str, list] = {}
    target = []
    for name, doc in documents_of(spec):
        if target_expr.keep(doc.metadata) and in_share(doc.id, f.target_share, MIX_TARGET_SALT):
            target.append(doc)
        else:
            domains.setdefault(name, []).append(doc)
    cfg = ProxyConfig(**{k: getattr(f, k) for k in ProxyConfig.model_fields})
    lab = ProxyLab(domains, target, cfg, cache_dir=os.path.join(out, "runs"), log=log)
    log(f"fit ({f.method}): {len(domains)} domains, target {len(target)} documents ({f.target_expr!r}, "
        f"{f.target_share:.0%} held out), {f.budget_tokens:,} tokens per proxy")
    upper = None
    if sources is not None and (spec.budget_tokens or spec.model_params):
        # a source's epoch cap bounds its weight: w_i <= cap_i U_i / budget
        budget = resolve_budget(spec.budget_tokens or None, spec.model_params, spec.tokens_per_param)[0]
        caps = {s.name: s.max_epochs * s.tokens / budget if s.max_epochs is not None else 1.0 for s in sources}
        upper = np.array([min(1.0, caps.get(n, 1.0)) for n in lab.names])
    if f.method == "regmix":
        res = lab.regmix(runs=f.runs, seed=f.seed, max_ratio=f.max_ratio, upper=upper)
    else:
        res = lab.doremi(eta=f.eta, smoothing=f.smoothing, seed=f.seed, upper=upper)
    if upper is not None:
        res["upper_bounds"] = dict(zip(lab.names, upper.tolist()))
    res["weights"] = dict(zip(res["domains"], res["weights"]))
    res["target_documents"] = len(target)
    write_json_atomic(os.path.join(out, "fit.json"), res)
    return res


def run_plan(spec: MixSpec, out: str, default_path: str | None = None, materialise: bool | None = None,
             progress=None, log=print) -> dict:
    from textcurate.mix.accounting import make_tokenize

    if default_path is not None:
        spec = bind_run(spec, default_path)

    os.makedirs(out, exist_ok=True)
    tokenize = make_tokenize(spec.tokenizer) if (spec.group_by is not None or any(s.path for s in spec.sources)) \
        else None
    from textcurate.io.rejects import summarise_rejects

    rejects_dir = os.path.join(out, "rejects")
    do_mix = spec.materialise if materialise is None else materialise
    token_log = None  # exact per-document counts in the order read, handed to materialising
    if do_mix and spec.sample == 0:
        from textcurate.mix.materialise import TokenLog

        token_log = TokenLog(os.path.join(out, "_count_tokens.parquet"))
    counts = count(spec, tokenize, rejects_dir, token_log, log=log)
    if token_log is not None:
        token_log.close()
    rejected = summarise_rejects(rejects_dir, first=5)
    sources = planner_sources(spec, counts)
    fitted = None
    if spec.fit is not None:
        fitted = fit_weights(spec, os.path.join(out, "fit"), sources=sources, log=log)
        missing = [s.name for s in sources if s.name not in fitted["weights"]]
        if missing:
            raise ValueError(f"fit: sources without documents cannot be fitted: {missing}")
        for s in sources:
            s.weight = fitted["weights"][s.name]
    plan = plan_mixture(sources, spec.budget_tokens, spec.model_params, tokens_per_param=spec.tokens_per_param)
    result = {"plan": plan.to_dict(), "counts": {k: v.to_dict() for k, v in counts.items()},
              "spec": spec.model_dump(mode="json"), "tokenizer": spec.tokenizer,
              "rejected": {"count": rejected["count"], "folder": rejects_dir, "first": rejected["first"]}}
    if fitted is not None:
        result["fit"] = fitted
    write_json_atomic(os.path.join(out, "plan.json"), result)
    write_json_atomic(os.path.join(out, "card.json"), {"kind": "mixture_plan", "method": plan.method,
                                                 "budget_tokens": plan.budget_tokens,
                                                 "sources": [r.name for r in plan.rows]})
    if do_mix:
        if tokenize is None:
            raise ValueError("materialise needs sources read from files (a path or group_by), not only token counts")
        from textcurate.mix.materialise import materialise as write_mixture

        result["mixture"] = write_mixture(plan, lambda: documents_of(spec), os.path.join(out, "mixture"),
                                          tokenize, seed=spec.seed, shard_bytes=spec.shard_bytes, progress=progress,
                                          token_log=token_log and token_log.path, weight_field=spec.weight_field)
    if token_log is not None:
        os.remove(token_log.path)
    return result


def fit_summary(fit: dict) -> str:
    w = ", ".join(f"{n} {x:.1%}" for n, x in fit["weights"].items())
    nat = ", ".join(f"{n} {x:.1%}" for n, x in zip(fit["domains"], fit["natural"]))
    line = f"{fit['method']} weights: {w} (natural: {nat})"
    if fit["method"] == "regmix":
        r = fit["regression"]
        line += (f"; {len(fit['runs'])} proxies, {r['kind']} regression, leave-one-out Spearman "
                 f"{r['loo_spearman']:.2f}; target loss predicted {fit['predicted_loss']:.4f}, measured "
                 f"{fit['measured_loss']:.4f} (a proxy trained on it) vs natural mix {fit['natural_loss']:.4f}, "
                 f"best sampled {fit['best_sampled_loss']:.4f}")
    else:
        ref = ", ".join(f"{x:.2f}" for x in fit["reference_weights"])
        line += (f"; {fit['steps']} proxy steps against a reference trained on ({ref}); target loss of a proxy "
                 f"trained on it {fit['measured_loss']:.4f} vs natural mix {fit['natural_loss']:.4f}")
    return line
