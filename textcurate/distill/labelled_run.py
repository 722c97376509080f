"""Labelled distillation as a user runs it: split, standardise, distil at each per-class size,
evaluate fresh heads the way the papers report it, write the synthetic sets and the table.

Test rows: those whose ``split`` value is ``test`` when the input has that column (the shipped
annotations hold whole sources out that way), else a seeded stratified ``test_share`` of every
class. They take part in nothing but the final accuracy.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable

import numpy as np

from textcurate.distill.labelled import (CORESETS, HEADS, LABEL_METHODS, DistilledSet, LabelledOptions, Standardiser,
                                         coreset, data_key, distill_labelled, encode_labels, evaluate_set,
                                         load_experts, nearest_real, per_class_sizes, save_experts, train_experts)


def read_labelled(path: str, labels: str, embedder: str = "minilm", split_field: str = "split"
                  ) -> tuple[np.ndarray, list, list[str], list | None]:
    """(vectors, label values, ids, split values or None) from a feature store or run folder (the
    label a column of the store or an attribute of the run), or from a Parquet / JSONL file of
    labelled texts (id, text, LABEL), embedded here with ``embedder``."""
    import pyarrow.parquet as pq

    from textcurate.distill.run import field_values
    from textcurate.distill.store import StoreVectors

    is_texts = False
    if os.path.isfile(path):
        if path.endswith(".parquet"):
            names = pq.read_schema(path).names
            is_texts = "text" in names and "vector" not in names
        else:
            is_texts = path.endswith((".jsonl", ".json", ".jsonl.gz"))
    if is_texts:
        rows = _read_rows(path)
        missing = [k for k in ("text", labels) if not any(k in r for r in rows)] if rows else ["text", labels]
        if missing:
            raise ValueError(f"{path}: no {missing[0]!r} column (labels: {labels!r})")
        from textcurate.embed.embedder import Embedder

        ids = [str(r.get("id", i)) for i, r in enumerate(rows)]
        bad = next((i for i, r in enumerate(rows) if not isinstance(r.get("text"), str)), None)
        if bad is not None:
            raise ValueError(f"{path}: row {bad} (id {ids[bad]!r}) has no text")
        x = Embedder(embedder).encode([r["text"] for r in rows])
        split = [r.get(split_field) for r in rows] if any(split_field in r for r in rows) else None
        return np.asarray(x, dtype=np.float32), [r.get(labels) for r in rows], ids, split
    v = StoreVectors(path)
    values = list(field_values(path, v, labels))
    try:
        split = list(field_values(path, v, split_field))
    except ValueError:
        split = None
    ids = v.ids(v.rows())
    return np.asarray(v.take(v.rows()), dtype=np.float32), values, ids, split


def _read_rows(path: str) -> list[dict]:
    import pyarrow.parquet as pq

    if path.endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{line_no}: not JSON ({e.msg})") from None
    return out


def split_rows(y: np.ndarray, split: list | None, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(train mask, test mask, how)."""
    if split is not None:
        test = np.array([isinstance(s, str) and s.strip().lower() == "test" for s in split])
        if test.any() and (~test).any():
            return ~test, test, "the rows whose split is 'test'"
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = int(round(test_share * len(idx)))
        if len(idx) >= 2:
            test[rng.choice(idx, min(max(k, 1), len(idx) - 1), replace=False)] = True
    return ~test, test, f"a seeded stratified {test_share:.0%} of every class"


def _stats(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "runs": len(values)}


def distill_labels(x: np.ndarray, label_values: list, ids: list[str], split: list | None, methods: list[str],
                   per_class: list[int], compare: list[str] = list(CORESETS), seed: int = 0,
                   opts: LabelledOptions | None = None, heads: tuple = HEADS, inits: int = 5,
                   coreset_draws: int = 5, test_share: float = 0.3, experts_path: str | None = None,
                   label: str = "labels", log: Callable = print) -> dict:
    """Every method in ``methods`` and every coreset in ``compare`` at every size in ``per_class``,
    each evaluated by ``inits`` fresh heads of each kind; the full set beside them. Returns the
    card (JSON-able) and the distilled sets (``result["sets"][method][ipc]``)."""
    bad = [m for m in methods if m not in LABEL_METHODS]
    if bad:
        raise ValueError(f"method: one of {', '.join(LABEL_METHODS)}, got {bad[0]!r}")
    bad = [m for m in compare if m not in CORESETS]
    if bad:
        raise ValueError(f"compare: with labels, each one of {', '.join(CORESETS)}, got {bad[0]!r}")
    if not per_class or min(per_class) < 1:
        raise ValueError(f"per_class: sizes of 1 or more, got {per_class}")
    opts = opts or LabelledOptions()
    n_in = len(label_values)
    y_all, classes, keep = encode_labels(label_values, ids, label)
    dropped = n_in - len(keep)
    if dropped:
        log(f"distill: {dropped:,} of {n_in:,} rows have no {label!r} and are left out")
    x = np.asarray(x, dtype=np.float32)[keep]
    ids = [ids[i] for i in keep]
    split = [split[i] for i in keep] if split is not None else None
    tr, te, how = split_rows(y_all, split, test_share, seed)
    y, yt = y_all[tr], y_all[te]
    C = len(classes)
    missing = [classes[c] for c in range(C) if not (y == c).any()]
    if missing:
        raise ValueError(f"{label}: class {missing[0]!r} has no training row (only test rows); "
                         f"{len(missing)} such class(es)")
    if len(yt) == 0:
        raise ValueError(f"{label}: no test row to evaluate on")
    st = Standardiser(x[tr])
    z, zt = st(x[tr]), st(x[te])
    tr_ids = [i for i, k in zip(ids, tr) if k]
    capped = {classes[c]: n for c, n in per_class_sizes(y, C, max(per_class))[1].items()}
    if capped:
        log("distill: per-class sizes above a class's training rows are capped there: "
            + ", ".join(f"{k} ({v})" for k, v in capped.items()))
    log(f"distill: {len(y):,} training rows in {C} classes, {len(yt):,} test rows ({how}); heads "
        f"{', '.join(heads)} x {inits} initialisations")
    t0 = time.perf_counter()
    full = evaluate_set(z, y, zt, yt, C, heads, inits, seed=seed)
    rows = [{"method": "full", "ipc": None, "size": int(len(y)), "seconds": 0.0,
             **{h: {"acc": _stats(full[h]["acc"]), "f1": _stats(full[h]["f1"])} for h in heads}}]
    log("  full set: " + ", ".join(f"{h} {100 * np.mean(full[h]['acc']):.1f} %" for h in heads))
    experts, experts_seconds = None, 0.0
    if "tm" in methods:
        key = data_key(z, y, opts, seed)
        if experts_path and os.path.exists(experts_path):
            experts = load_experts(experts_path)
            if experts.get("key") != key:  # another run's (other data, head or settings): train anew
                log(f"  tm: {experts_path} holds experts of another run; training new ones")
                experts = None
        if experts is None:
            te0 = time.perf_counter()
            experts = train_experts(z, y, C, opts, seed)
            experts_seconds = time.perf_counter() - te0
            if experts_path:
                save_experts(experts, experts_path, key)
            log(f"  tm: {len(experts['params'])} expert trajectories in {experts_seconds:.1f} s")
    sets: dict[str, dict[int, DistilledSet]] = {}
    for ipc in per_class:
        for kind in compare:
            res = {h: {"acc": [], "f1": []} for h in heads}
            sec = 0.0
            for draw in range(coreset_draws if kind == "random" else 1):  # random's spread covers its draws
                s = coreset(kind, z, y, C, ipc, seed + draw)
                sec += s.seconds
                sets.setdefault(kind, {}).setdefault(ipc, s)
                r = evaluate_set(s.z, s.hard(), zt, yt, C, heads, inits, seed=seed)
                for h in heads:
                    res[h]["acc"] += r[h]["acc"]
                    res[h]["f1"] += r[h]["f1"]
            rows.append(_row(kind, ipc, len(sets[kind][ipc].z), sec, res, heads))
        for m in methods:
            s = distill_labelled(m, z, y, C, ipc, seed, opts, experts=experts, log=log)
            sets.setdefault(m, {})[ipc] = s
            r = evaluate_set(s.z, s.y if opts.soft_labels else s.hard(), zt, yt, C, heads, inits, seed=seed)
            rows.append(_row(m, ipc, len(s.z), s.seconds, r, heads))
            log(f"  {m} ipc {ipc}: {s.seconds:.1f} s; " + ", ".join(
                f"{h} {100 * np.mean(r[h]['acc']):.1f} %" for h in heads))
    nearest = {m: {ipc: nearest_real(s.z, s.label, z, y) for ipc, s in by.items()}
               for m, by in sets.items() if m in LABEL_METHODS}
    card = {"labels": label, "classes": classes, "train": int(len(y)), "test": int(len(yt)), "test_how": how,
            "dropped_without_label": int(dropped), "capped": capped, "per_class": list(per_class),
            "methods": list(methods), "compare": list(compare), "heads": list(heads), "inits": inits,
            "coreset_draws": coreset_draws, "options": {k: getattr(opts, k) for k in opts.__dataclass_fields__},
            "table": rows, "experts_seconds": round(experts_seconds, 2), "seconds": round(time.perf_counter() - t0, 1)}
    return {"card": card, "sets": sets, "nearest": nearest, "standardiser": st, "train_ids": tr_ids,
            "experts": experts}


def _row(method: str, ipc: int, size: int, seconds: float, res: dict, heads) -> dict:
    return {"method": method, "ipc": ipc, "size": int(size), "seconds": round(seconds, 2),
            **{h: {"acc": _stats(res[h]["acc"]), "f1": _stats(res[h]["f1"])} for h in heads}}


def distill_labels_to(out: str, x: np.ndarray, label_values: list, ids: list[str], split: list | None, p,
                      log: Callable = print) -> dict:
    """The labelled distillation the command and the stage run: ``p`` carries the distill parameters
    (``DistillLabelsParams`` or the step: labels, method, per_class, compare, steps, arch, soft_labels,
    inits, test_share, seed, device); tm's experts are kept in ``out``; the outputs are written there.
    Returns the result, its ``card`` as written."""
    from textcurate.io.device import pick_device

    opts = LabelledOptions(iterations=p.steps, arch=p.arch, soft_labels=p.soft_labels, device=pick_device(p.device))
    os.makedirs(out, exist_ok=True)
    result = distill_labels(x, label_values, ids, split, [p.method], p.per_class, p.compare, p.seed, opts,
                            inits=p.inits, test_share=p.test_share,
                            experts_path=os.path.join(out, "experts.safetensors") if p.method == "tm" else None,
                            label=p.labels, log=log)
    result["card"] = write_labelled(result, out)
    return result


def write_labelled(result: dict, out: str) -> dict:
    """OUT/distill_labels.json (the card), OUT/synthetic_labels.safetensors (for each method and
    size: the points in the embedding space, their label distributions), OUT/synthetic_labels.parquet
    (one row per synthetic point: method, ipc, class, the nearest real training document)."""
    import pyarrow as pa
    from safetensors.numpy import save_file

    from textcurate.io.files import commit, temp_path, write_json_atomic, write_parquet_atomic

    os.makedirs(out, exist_ok=True)
    card, st = result["card"], result["standardiser"]
    tensors, rows = {}, {"method": [], "ipc": [], "row": [], "class": [], "nearest_id": [], "source_id": []}
    for m, by in result["nearest"].items():
        for ipc, near in by.items():
            s = result["sets"][m][ipc]
            tensors[f"{m}.ipc{ipc}.x"] = st.inverse(s.z)
            tensors[f"{m}.ipc{ipc}.y"] = s.y
            for k in range(len(s.z)):
                rows["method"].append(m)
                rows["ipc"].append(int(ipc))
                rows["row"].append(k)
                rows["class"].append(card["classes"][int(s.label[k])])
                rows["nearest_id"].append(result["train_ids"][int(near[k])])
                rows["source_id"].append(result["train_ids"][int(s.source[k])] if s.source[k] >= 0 else None)
    path = os.path.join(out, "synthetic_labels.safetensors")
    tmp = temp_path(path)
    save_file(tensors, tmp, metadata={"classes": json.dumps(card["classes"]), "labels": card["labels"]})
    commit(tmp, path)
    write_parquet_atomic(os.path.join(out, "synthetic_labels.parquet"), pa.table(rows))
    write_json_atomic(os.path.join(out, "distill_labels.json"), card, indent=1)
    return card


def table_lines(card: dict, metric: str = "acc") -> tuple[list[str], list[list[str]]]:
    """The trajectory-matching paper's table: a row per method, a column per (head, per-class size),
    cells mean +- std in percent; the full set in its own row."""
    heads, sizes = card["heads"], card["per_class"]
    header = ["method"] + [f"{h} {ipc}/class" for h in heads for ipc in sizes] + ["seconds"]
    out = []
    order = [m for m in card["compare"]] + [m for m in card["methods"]]
    for m in order:
        cells = [m]
        secs = []
        for h in heads:
            for ipc in sizes:
                r = next((r for r in card["table"] if r["method"] == m and r["ipc"] == ipc), None)
                cells.append("" if r is None else f"{100 * r[h][metric]['mean']:.1f} ± {100 * r[h][metric]['std']:.1f}")
                if r is not None and h == heads[0]:
                    secs.append(r["seconds"])
        cells.append(" / ".join(f"{s:.1f}" for s in secs))
        out.append(cells)
    full = next(r for r in card["table"] if r["method"] == "full")
    out.append(["full set"] + [f"{100 * full[h][metric]['mean']:.1f} ± {100 * full[h][metric]['std']:.1f}"
                               for h in heads for _ in sizes] + [""])
    return header, out
