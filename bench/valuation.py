"""Data Shapley over units: textcurate's truncated Monte Carlo against pyDVL's (the reference
library), on the same utility, measured in the same run, with the exact Shapley values as the truth.

Data: the shipped edu classifier's annotations (classifiers/edu-smollm2-minilm/labels.parquet:
judge scores of real local documents), embedded with MiniLM; the units are their source families
(the part of ``source`` before the first "/": foldoc, jargon-file, log, python-doc, ...); the
rows of split "train" are valued, the rows of split "test" are the validation set. The utility
of a set of units: minus the validation MSE of a ridge head (scikit-learn ``Ridge``) fitted on
their rows; of no unit: minus the MSE of predicting the training mean. Both estimators stop by
the same rule (the values' mean relative change over the last 100 permutations below 5 %,
Ghorbani and Zou's) with relative truncation at 1 % (textcurate's relative to U(all) - U(none),
pyDVL's to U(all)). pyDVL runs in its own venv
(``.venv-pydvl``: it is LGPL and pins numpy < 2), built by ``scripts/setup_pydvl_venv.sh``.

Target (issue 19): the same ranking (Spearman >= 0.9 between the two, and to the exact values)
in no more utility evaluations.

    .venv/bin/python bench/valuation.py [--alpha 1.0] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from judge import cpu_flags  # noqa: E402

PYDVL_SIDE = r'''
import json, sys, time, warnings
import numpy as np
warnings.filterwarnings("ignore")
from sklearn.linear_model import Ridge
from pydvl.valuation import (GroupedDataset, Dataset, ModelUtility, SupervisedScorer, TMCShapleyValuation,
                             RelativeTruncation, HistoryDeviation, AbsoluteStandardError, MaxUpdates)
d = np.load(sys.argv[1])
alpha, seed, default = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rule, threshold = sys.argv[5], float(sys.argv[6])
calls = {"fit": 0}
class Counted(Ridge):
    def fit(self, X, y, sample_weight=None):
        calls["fit"] += 1
        return super().fit(X, y)
train = GroupedDataset(d["x"], d["y"], data_groups=d["g"])
test = Dataset(d["xv"], d["yv"])
scorer = SupervisedScorer("neg_mean_squared_error", test, default=default, range=(-np.inf, 0))
utility = ModelUtility(Counted(alpha=alpha), scorer, catch_errors=False, show_warnings=False)
val = TMCShapleyValuation(utility, truncation=RelativeTruncation(rtol=0.01, burn_in_fraction=0.0),
                          is_done=(HistoryDeviation(n_steps=100, rtol=0.05) if rule == "ghorbani"
                                   else AbsoluteStandardError(threshold, burn_in=10)) | MaxUpdates(5000), seed=seed, progress=False)
t0 = time.perf_counter()
val.fit(train)
res = val.result
names = list(res.names)
order = np.argsort([int(n) for n in names])
print(json.dumps({"values": [float(v) for v in np.asarray(res.values)[order]], "fits": calls["fit"],
                  "seconds": time.perf_counter() - t0}))
'''


def load(alpha: float):
    import pyarrow.parquet as pq

    from textcurate.embed.embedder import Embedder

    rows = pq.read_table(os.path.join(ROOT, "classifiers", "edu-smollm2-minilm", "labels.parquet")).to_pylist()
    rows = [r for r in rows if r["score_expected"] is not None]
    x = Embedder("minilm").encode([r["text"] for r in rows])
    y = np.array([r["score_expected"] for r in rows], dtype=np.float64)
    fam = np.array([r["source"].split("/")[0] for r in rows])
    tr = np.array([r["split"] == "train" for r in rows])
    names = sorted(set(fam[tr]))
    g = np.array([names.index(f) for f in fam[tr]])
    return x[tr].astype(np.float64), y[tr], g, names, x[~tr].astype(np.float64), y[~tr]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rules", default="stderr,ghorbani", help="stopping rules to compare: stderr, ghorbani")
    ap.add_argument("--stderr", type=float, default=0.02,
                    help="the standard-error rule's threshold, relative to |U(all) - U(none)|")
    ap.add_argument("--pydvl-python", default=os.path.join(ROOT, ".venv-pydvl", "bin", "python"))
    args = ap.parse_args()
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge

    from textcurate.value.games import Game, exact_shapley, tmc_shapley

    print(f"CPU: {cpu_flags()}")
    x, y, g, names, xv, yv = load(args.alpha)
    default = -float(np.mean((yv - y.mean()) ** 2))
    print(f"units: {len(names)} source families ({', '.join(names)}); {len(y)} training, {len(yv)} validation rows")

    def utility(s: frozenset) -> float:
        if not s:
            return default
        m = np.isin(g, sorted(s))
        pred = Ridge(alpha=args.alpha).fit(x[m], y[m]).predict(xv)
        return -float(np.mean((pred - yv) ** 2))

    exact_game = Game(len(names), utility, names)
    exact = exact_shapley(exact_game)
    game_full = exact_game(exact_game.full)
    print(f"exact Shapley: {exact.evaluations} utilities, {exact.seconds:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "d.npz")
        np.savez(data, x=x, y=y, g=g, xv=xv, yv=yv)
        script = os.path.join(tmp, "side.py")
        with open(script, "w") as fh:
            fh.write(PYDVL_SIDE)
        rows = []
        threshold = args.stderr * abs(game_full - default)
        for rule in args.rules.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                game = Game(len(names), utility, names)
                kw = (dict(convergence=0.05, window=100) if rule == "ghorbani"
                      else dict(convergence=0.0, max_stderr=threshold))
                t0 = time.perf_counter()
                ours = tmc_shapley(game, truncation=0.01, burn_in=0, max_permutations=5000, seed=seed, **kw)
                ours_s = time.perf_counter() - t0
                out = subprocess.run([args.pydvl_python, script, data, str(args.alpha), str(seed), str(default), rule,
                                      str(threshold)], capture_output=True, text=True, check=True)
                peer = json.loads(out.stdout.strip().splitlines()[-1])
                pv = np.array(peer["values"])
                rows.append({"rule": rule, "seed": seed, "ours_evals": ours.evaluations, "ours_perms": ours.samples,
                             "ours_s": ours_s, "peer_evals": peer["fits"], "peer_s": peer["seconds"],
                             "rho_ours_exact": spearmanr(ours.values, exact.values).statistic,
                             "rho_peer_exact": spearmanr(pv, exact.values).statistic,
                             "rho_ours_peer": spearmanr(ours.values, pv).statistic, "stop": ours.info["stopped_by"]})
                r = rows[-1]
                print(f"{rule} seed {seed}: textcurate {r['ours_evals']} utilities ({r['ours_perms']} permutations, "
                      f"{r['ours_s']:.1f} s, {r['stop']}); pyDVL {r['peer_evals']} fits ({r['peer_s']:.1f} s); Spearman "
                      f"to exact {r['rho_ours_exact']:.3f} vs {r['rho_peer_exact']:.3f}; to each other "
                      f"{r['rho_ours_peer']:.3f}")
    print(f"\nstandard-error rule: every unit's standard error below {args.stderr:g} x |U(all) - U(none)| = {threshold:.2e}"
          " (pyDVL's AbsoluteStandardError, burn-in 10); Ghorbani: textcurate's sum-normalised change over 100 "
          "permutations < 5 %, pyDVL's HistoryDeviation(100, 0.05) (a mean of per-unit changes over the signed value)")
    print("\n| rule | seed | textcurate utilities | pyDVL utilities | ratio | textcurate s | pyDVL s | Spearman to exact "
          "(textcurate, pyDVL) | Spearman between |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rule']} | {r['seed']} | {r['ours_evals']} | {r['peer_evals']} | {r['ours_evals'] / r['peer_evals']:.2f}x | "
              f"{r['ours_s']:.1f} | {r['peer_s']:.1f} | {r['rho_ours_exact']:.3f}, {r['rho_peer_exact']:.3f} | "
              f"{r['rho_ours_peer']:.3f} |")
    for rule in args.rules.split(","):
        rr = [r for r in rows if r["rule"] == rule]
        ok = all(r["rho_ours_peer"] >= 0.9 and r["ours_evals"] <= r["peer_evals"] for r in rr)
        print(f"target ({rule} rule): Spearman >= 0.9 to pyDVL in no more utility evaluations, every seed: "
              f"{'met' if ok else 'NOT met'} ({sum(r['ours_evals'] <= r['peer_evals'] for r in rr)}/{len(rr)} seeds)")
    print(f"exact Shapley's top 3: {', '.join(names[i] for i in np.argsort(-exact.values)[:3])}")


if __name__ == "__main__":
    main()
