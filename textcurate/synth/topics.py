"""Topics to write about: from the seed corpus's clusters, or from a list or a curriculum.

From seeds (Cosmopedia's way, with the pieces textcurate has): embed a sample of the seed
documents, cluster them with the spherical k-means of the ``cluster`` stage, show the engine
the ``per_cluster`` documents nearest each centroid and ask it (1) to name the cluster's topic
(it continues "Topic:", one line) and (2) whether a textbook could teach it, read from the
probabilities of Yes and No where the answer starts (no parsing). Clusters judged not
educational (P(Yes) < 0.5) are dropped, as Cosmopedia dropped 38 of its 145; a name that comes
back empty, or an engine error, drops the cluster with its reason. Everything is recorded in
``topics.json``, kept clusters and dropped ones.

A curriculum file instead: YAML, a list of ``{topic: ..., subtopics: [...]}`` (or plain
strings); no engine call, no extract unless seeds are given too (then the seeds nearest each
topic's name are its extracts).
"""

from __future__ import annotations

import re

import numpy as np

from textcurate.engines.base import Engine, GenerationParams

NAME_PROMPT = ("Here are extracts of {n} documents that belong together:\n\n{extracts}\n\n"
               "What is the subject they share? Name it as a textbook chapter would be titled, in at most eight "
               "words, on one line.")
EDU_PROMPT = ("Here are extracts of {n} documents that belong together:\n\n{extracts}\n\n"
              "Their shared subject: {topic}.\n\nCould a school or university textbook teach this subject, with "
              "explanations and exercises? Answer Yes or No.")
SHOWN_CHARS = 400  # of each representative document, in the naming prompt


def extracts(texts: list[str]) -> str:
    return "\n\n".join(f"{i + 1}. {' '.join(t.split())[:SHOWN_CHARS]}" for i, t in enumerate(texts))


def clean_name(raw: str) -> str:
    """The first line of the answer, without quotes, markup, a trailing period or a restated label;
    cut where it starts repeating itself; empty when it only echoes the question."""
    line = next((ln for ln in raw.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:topic|subject|title|chapter)\s*[:\-]\s*", "", line.strip(), flags=re.I)
    line = re.split(r"(?<=[.!?])\s+|\s+the topic is\b", line, maxsplit=1, flags=re.I)[0]
    line = re.sub(r"(.{2,12}?)\1{2,}", r"\1", line)  # "Git 3.1.1.1.1" -> "Git 3.1"
    parts, seen = re.split(r"\s*([,:;])\s*", line), set()
    for i in range(0, len(parts), 2):  # "Python, SciPy, NumPy, SciPy, SciPy" -> "Python, SciPy, NumPy"
        key = parts[i].lower().strip()
        if key in seen or any(len(key) >= 2 and k.startswith(key) for k in seen):  # "SciPy: Sci" (cut off)
            line = "".join(p + (" " if p in ",:;" else "") for p in parts[:i - 1])
            break
        seen.add(key)
    words = line.split()
    for i in range(1, len(words)):  # "A B: A B: A B" -> "A B"
        if words[i].lower().strip(":") == words[0].lower().strip(":") and \
                [w.lower() for w in words[i:2 * i]] == [w.lower() for w in words[:i]]:
            words = words[:i]
            break
    line = " ".join(words[:12])
    for _ in range(2):  # "Python Basics". -> Python Basics
        line = line.strip().strip("*#\"'`").strip().rstrip(".:;,")
    if len(line) < 3 or re.search(r"subject they share|name of the document|\?$", line, flags=re.I):
        return ""
    return line


def topics_from_seeds(seeds: list, engine: Engine, clusters: int, per_cluster: int = 3, embedder: str = "minilm",
                      seed: int = 0, keep_threshold: float = 0.5, extracts_per_topic: int = 20,
                      log=print) -> list[dict]:
    """[{topic, subtopics, educational (P(Yes)), kept, reason, cluster, size, representatives, seeds}] for
    every cluster of ``seeds`` (Documents)."""
    from textcurate.cluster.kmeans import SphericalKMeans, normalize
    from textcurate.embed.embedder import Embedder

    if len(seeds) < clusters:
        raise ValueError(f"{len(seeds)} seed documents cannot make {clusters} clusters: lower topics.clusters "
                         "or give more seeds")
    x = normalize(Embedder(embedder).encode([d.text for d in seeds]))
    km = SphericalKMeans(clusters, seed=seed, device="cpu").fit(x)
    labels, sims = km.assign(x)
    rng = np.random.default_rng([seed, 0x70])
    topics = []
    for c in range(clusters):
        members = np.flatnonzero(labels == c)
        if not len(members):
            topics.append({"cluster": c, "size": 0, "kept": False, "reason": "empty cluster", "topic": "",
                           "subtopics": [], "educational": None, "representatives": [], "seeds": []})
            continue
        near = members[np.argsort(-sims[members], kind="stable")][:per_cluster]
        picked = members if len(members) <= extracts_per_topic else rng.choice(members, extracts_per_topic,
                                                                               replace=False)
        topics.append({"cluster": c, "size": int(len(members)), "representatives": [seeds[i].id for i in near],
                       "seeds": [{"id": seeds[i].id, "text": seeds[i].text} for i in sorted(picked)],
                       "_shown": [seeds[i].text for i in near], "subtopics": []})
    live = [t for t in topics if t["size"]]
    name_params = GenerationParams(max_tokens=24, temperature=0.0, assistant_prefix="Topic:", stop=["\n"])
    names = engine.generate_detailed([NAME_PROMPT.format(n=len(t["_shown"]), extracts=extracts(t["_shown"]))
                                      for t in live], name_params)
    for t, g in zip(live, names):
        t["raw_name"] = g.text
        t["topic"] = clean_name(g.text) if not g.error else ""
        if g.error:
            t.update(kept=False, reason=f"engine error: {g.error}", educational=None)
        elif not t["topic"]:
            t.update(kept=False, reason=f"topic name not parsed from {g.text[:80]!r}", educational=None)
    first: dict[str, dict] = {}
    for t in live:  # two clusters named alike are one topic: the second's seeds join the first's
        key = t["topic"].lower()
        if not key:
            continue
        if key in first:
            first[key]["seeds"] += t["seeds"]
            first[key]["size"] += t["size"]
            t.update(kept=False, reason=f"same topic as cluster {first[key]['cluster']}", educational=None,
                     merged=True)
        else:
            first[key] = t
    named = [t for t in live if t["topic"] and not t.get("merged")]
    if named:
        edu_params = GenerationParams(max_tokens=1, temperature=0.0, assistant_prefix="Answer:")
        try:
            dists = engine.answer_distribution([EDU_PROMPT.format(n=len(t["_shown"]), extracts=extracts(t["_shown"]),
                                                                  topic=t["topic"]) for t in named],
                                               ["Yes", "No"], edu_params)
        except NotImplementedError:
            dists = [None] * len(named)
        for t, d in zip(named, dists):
            t["educational"] = None if d is None else round(float(d.probs[0]), 4)
            keep = d is None or d.probs[0] >= keep_threshold
            t.update(kept=bool(keep), reason="" if keep else f"not educational (P(Yes) {d.probs[0]:.2f} < "
                                                             f"{keep_threshold:g})")
    for t in topics:
        t.pop("_shown", None)
        if t["topic"]:
            t["subtopics"] = [t["topic"]]
    log(f"synth: {sum(t['kept'] for t in topics)} of {len(topics)} seed clusters kept as topics: "
        + "; ".join(f"{t['topic'] or '?'} ({t['size']}{'' if t['kept'] else ', dropped'})" for t in topics))
    return topics


def topics_from_file(path: str) -> list[dict]:
    """A curriculum: YAML list of ``{topic, subtopics}`` or of plain topic strings."""
    from textcurate.config import read_yaml

    data = read_yaml(path, "curriculum")
    if isinstance(data, dict) and "topics" in data:
        data = data["topics"]
    if not isinstance(data, list) or not data:
        raise ValueError(f"curriculum {path}: expected a list of topics ({{topic: ..., subtopics: [...]}} or strings)")
    return topics_from_list(data, where=f"curriculum {path}")


def topics_from_list(items: list, where: str = "topics") -> list[dict]:
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            name, subs = item, []
        elif isinstance(item, dict) and isinstance(item.get("topic"), str):
            name, subs = item["topic"], item.get("subtopics") or []
            if not isinstance(subs, list) or not all(isinstance(s, str) for s in subs):
                raise ValueError(f"{where}[{i}].subtopics: expected a list of strings, got {subs!r}")
        else:
            raise ValueError(f"{where}[{i}]: expected a topic string or {{topic: ..., subtopics: [...]}}, "
                             f"got {item!r}")
        if not name.strip():
            raise ValueError(f"{where}[{i}].topic: empty")
        out.append({"topic": name.strip(), "subtopics": [s.strip() for s in subs if s.strip()] or [name.strip()],
                    "kept": True, "reason": "", "educational": None, "cluster": None, "size": 0,
                    "representatives": [], "seeds": []})
    return out


def attach_seeds(topics: list[dict], seeds: list, embedder: str = "minilm", per_topic: int = 20) -> None:
    """Give listed topics extracts: the seed documents nearest each topic's name (embedding cosine)."""
    from textcurate.cluster.kmeans import normalize
    from textcurate.embed.embedder import Embedder

    if not seeds or not topics:
        return
    emb = Embedder(embedder)
    x = normalize(emb.encode([d.text for d in seeds]))
    q = normalize(emb.encode([t["topic"] + ": " + ", ".join(t["subtopics"]) for t in topics]))
    for t, row in zip(topics, q @ x.T):
        near = np.argsort(-row, kind="stable")[:per_topic]
        t["seeds"] = [{"id": seeds[i].id, "text": seeds[i].text} for i in near]
