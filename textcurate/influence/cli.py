"""``textcurate influence --pool P --target T --out DIR``: every pool document's influence on a target
(TRAK or LESS)."""

from __future__ import annotations

import os
from typing import Optional

import typer
from rich.console import Console

from textcurate.cli_options import params_options
from textcurate.influence.run import InfluenceSpec
from textcurate.influence.stage import InfluenceParams
from textcurate.verbs import OVERWRITE, VERBOSE, app, console, fail, writing


@app.command()
@params_options(InfluenceSpec)
def influence(pool: str = typer.Option(..., "--pool", help="documents: a run folder, JSONL or Parquet folder"),
              out: str = typer.Option(..., "--out", help="folder for influence.parquet, features/, card.json"),
              target: Optional[str] = typer.Option(None, "--target", help="the target documents (a folder)"),
              target_expr: Optional[str] = typer.Option(None, "--target-expr",
                                                        help="or: pool documents of the target domain"),
              holdout: float = typer.Option(InfluenceParams.model_fields["holdout"].default,
                                            help="with --target-expr: " +
                                                 InfluenceParams.model_fields["holdout"].description),
              overwrite: bool = OVERWRITE, verbose: bool = VERBOSE, *, params: InfluenceSpec):
    """Score every pool document by its influence on a target (TRAK or LESS)."""
    spec = params
    if (target is None) == (target_expr is None):
        fail("give --target (a folder) or --target-expr (held out from the pool), one of them")
    with writing(out, "influence", overwrite, ("influence.parquet", "features", "card.json", "tokenizer", "_work"),
                 verbose, reads=(pool, target)):
        _influence(pool, out, target, target_expr, holdout, spec)


def _influence(pool, out, target, target_expr, holdout, spec) -> None:
    from pydantic import ValidationError

    from textcurate.influence.pool import Documents
    from textcurate.influence.run import compute_influence
    from textcurate.io.readers import read_documents
    from textcurate.select.targets import TargetRule

    try:
        # the pool is read again on each of the fit's passes, never held; the target is. A bad record
        # is reported on the first read only
        reads = [0 if target else 1]  # with --target-expr, the target's pass reads the pool first

        def again(keep):
            from loguru import logger

            reads[0] += 1
            if reads[0] > 1:
                logger.disable("textcurate.io.rejects")
            try:
                yield from (d for d in read_documents(pool) if keep(d))
            finally:
                logger.enable("textcurate.io.rejects")

        if target:
            tdocs = list(read_documents(target))
            ids = {d.id for d in tdocs}
            pdocs = Documents(lambda: again(lambda d: d.id not in ids))
        else:
            rule = TargetRule(target_expr, holdout)
            tdocs = [d for d in read_documents(pool) if rule(d)]
            rule.finish(console.print)
            pdocs = Documents(lambda: again(lambda d: not rule.is_target(d)))
        card = compute_influence(pdocs, tdocs, spec, out, log=console.print)
    except ValidationError as e:
        fail("; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()))
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    Console().print(f"{card['method']}: {card['pool']:,} pool documents scored against {card['target']:,} target "
                    f"documents; gradients of dimension {card['grad_dim']:,} projected to {spec.proj_dim:,} "
                    f"({card['gradients_per_s']:.0f} gradients/s, {card['projections_per_s']:.0f} projections/s)")
    cmp = card["comparison"]
    Console().print(f"top {cmp['fraction']:.0%} ({cmp['documents']:,} documents), overlap with the embedding-similarity "
                    "baselines: " + "; ".join(f"{k} {v:.0%}" for k, v in cmp["overlap"].items()), highlight=False)
    if "precision" in cmp:
        Console().print(f"share of each selection whose {cmp['field']} is the target's: " +
                        "; ".join(f"{k} {v:.1%}" for k, v in cmp["precision"].items()), highlight=False)
    for title, rows in (("most helpful", card["top"]), ("least helpful", card["bottom"])):
        Console().print(f"[bold]{title}:[/]")
        for r in rows:
            Console().print(f"  {r['influence']:+.4f}  {r['id']}  {r['text'][:90]!r}", highlight=False)
    Console().print(f"written: {os.path.join(out, 'influence.parquet')}")
