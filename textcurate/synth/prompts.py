"""The prompt grid: topic x audience x style, each cell with a seed extract and a framing.

Cosmopedia's recipe (Ben Allal et al., 2024), in textcurate's own words: a seed extract gives
the page something concrete to build on, the audience and style set its register, and the
variation in framing keeps pages from all opening alike ("Once upon a time", "Welcome to our
chapter on"). Every prompt carries ``prompt_id`` (a hash of everything that went into it) and
``template_version``; change a template's words and bump the version.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

from textcurate.io.records import stable_hash

TEMPLATE_VERSION = "textbook-v1"

AUDIENCES = {
    "young_children": "young children (around 6 to 10 years old): short sentences, everyday words, concrete "
                      "examples from a child's life, no jargon",
    "middle_school": "middle-school students (11 to 14): clear explanations, a few new terms each defined when "
                     "first used, relatable examples",
    "high_school": "high-school students: precise terms, worked examples, connections to what they already know",
    "college": "college students: rigorous definitions, derivations or reasoning step by step, and the "
               "subtleties an exam would test",
    "professionals": "working professionals: practical depth, trade-offs, pitfalls met in real work, no filler",
}

STYLES = {
    "textbook_academic": "a section of an academic textbook: a clear heading, definitions, explanation, and a "
                         "worked example",
    "textbook_narrative": "a narrative textbook chapter that explains the ideas through a guiding example "
                          "followed from start to finish",
    "blog_post": "an engaging blog post that teaches the topic to curious readers",
    "how_to": "a how-to guide: what you need, numbered steps, and what to check at the end",
    "story_problem": "a short story in which the characters meet a problem that the topic's ideas solve; the "
                     "story shows how they reason it out",
    "exercises": "a set of exercises of increasing difficulty, each followed by a full worked solution",
}

# ways to enter the page, chosen per prompt with the grid's seed: variety in the openings
FRAMINGS = (
    "Start directly with the first idea, not with a greeting or a title about the page itself.",
    "Open with a concrete question a reader might ask, then answer it.",
    "Open with a short, specific example or scenario before any definition.",
    "Open with a common misconception about the topic and correct it.",
    "Open with a surprising fact or a small puzzle from the topic.",
    "Open by stating what the reader will be able to do at the end, in one sentence.",
)

AVOID = ("Do not begin with 'Welcome', 'Once upon a time', 'In this chapter', 'Hello', 'Have you ever "
         "wondered' or any other stock opening. Do not mention these instructions, the extract or the audience "
         "by name.")


@dataclass
class PromptRow:
    prompt_id: str
    template_version: str
    topic: str
    subtopic: str
    audience: str
    style: str
    framing: int
    seed_id: str
    seed_extract: str
    prompt: str


def render(topic: str, subtopic: str, audience: str, style: str, framing: int, extract: str) -> str:
    parts = [f"Write {STYLES[style]}.",
             f"Topic: {topic}" + (f", focusing on {subtopic}." if subtopic and subtopic != topic else "."),
             f"Readers: {AUDIENCES[audience]}."]
    if extract:
        extract = extract.replace("<extract>", "").replace("</extract>", "")  # the seed cannot close the fence
        parts.append("Here is an extract from a real document on this topic, for context; draw on what it is "
                     "about, do not copy it:\n<extract>\n" + extract + "\n</extract>")
    parts += [FRAMINGS[framing], AVOID, "Write the page now."]
    return "\n\n".join(parts)


def cut_extract(text: str, chars: int) -> str:
    """The first ``chars`` characters, ended at the last whitespace before the cut (no half word)."""
    text = " ".join(text.split())
    if len(text) <= chars:
        return text
    cut = text[:chars]
    return cut[: cut.rfind(" ")] if " " in cut[chars // 2:] else cut


def prompt_grid(topics: list[dict], pages: int, audiences: list[str], styles: list[str], seed: int = 0,
                extract_chars: int = 1000) -> list[PromptRow]:
    """``pages`` prompts over topic x audience x style. Every cell is taken once, in a seeded order,
    before any is taken twice (so the grid is covered whenever ``pages`` >= its size); each prompt
    draws a subtopic, a seed extract of its topic and a framing with the same seed. ``topics``:
    ``{"topic", "subtopics": [...], "seeds": [{"id", "text"}, ...]}``. Deterministic for a seed."""
    for a in audiences:
        if a not in AUDIENCES:
            raise ValueError(f"unknown audience {a!r}: one of {', '.join(AUDIENCES)}")
    for s in styles:
        if s not in STYLES:
            raise ValueError(f"unknown style {s!r}: one of {', '.join(STYLES)}")
    if not topics:
        raise ValueError("no topics to write about (every cluster was judged not educational, or the list is empty)")
    if pages < 1:
        raise ValueError(f"pages must be at least 1, got {pages}")
    rng = np.random.default_rng([seed, 0x5E])
    cells = list(itertools.product(range(len(topics)), audiences, styles))
    rows: list[PromptRow] = []
    seen: set[str] = set()
    rounds = 0
    while len(rows) < pages:
        order = rng.permutation(len(cells))
        for c in order:
            if len(rows) >= pages:
                break
            t, audience, style = cells[c]
            topic = topics[t]
            subs = [s for s in topic.get("subtopics") or [] if s] or [topic["topic"]]
            sub = subs[int(rng.integers(len(subs)))]
            seeds = topic.get("seeds") or []
            sd = seeds[int(rng.integers(len(seeds)))] if seeds else {"id": "", "text": ""}
            framing = int(rng.integers(len(FRAMINGS)))
            extract = cut_extract(sd["text"], extract_chars) if sd["text"] else ""
            text = render(topic["topic"], sub, audience, style, framing, extract)
            pid = f"{stable_hash(text + TEMPLATE_VERSION + str(rounds), seed):016x}"
            if pid in seen:
                continue
            seen.add(pid)
            rows.append(PromptRow(pid, TEMPLATE_VERSION, topic["topic"], sub, audience, style, framing, sd["id"],
                                  extract, text))
        rounds += 1
    return rows


def as_dicts(rows: list[PromptRow]) -> list[dict]:
    return [asdict(r) for r in rows]
