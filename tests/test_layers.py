"""The import graph of the package has layers and no circle: a module imports only from its own layer
or the layers below it (every import counts, those inside functions too), and no chain of imports
comes back to where it started. The layers are the ones docs/adding-a-stage.md describes."""

import ast
import importlib
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "textcurate")

# bottom to top; a package (or top-level module) of textcurate belongs to exactly one layer
LAYERS = [
    {"textcurate", "io", "registry"},                        # the ground floor: files, readers, the stage contract
    {"assets", "config", "steps", "report", "cli_options"},  # shipped data and models, the YAML, step bases, the page
    {"runner"},                                              # phases, the ledger, resume, locks
    {"verbs"},                                               # what every verb shares
    {"select", "lm", "engines", "embed"},                    # wings that other wings build on
    {"judge", "classify", "cluster", "evaluate", "influence", "mix", "synth", "distill", "value", "domains"},  # the wings
    {"cli", "__main__"},                                     # the command line
]


def _modules() -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(ROOT):
        if os.sep + "assets" + os.sep in folder + os.sep and os.path.basename(folder) != "assets":
            continue  # data folders under assets/
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                out[rel[:-9] if rel.endswith(".__init__") else rel] = os.path.join(folder, f)
    return out


def _unit(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] == "__init__"):
        return "textcurate"
    return parts[1]


def _edges(mods: dict[str, str]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if not name.startswith("textcurate"):
                    continue
                while name not in mods and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in mods and name != m:
                    edges[m].add(name)
    return edges


def test_every_package_has_a_layer():
    layer_of = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    assert {_unit(m) for m in _modules()} <= set(layer_of), sorted({_unit(m) for m in _modules()} - set(layer_of))


ROOMS = {"stage", "cli", "report", "block", "run", "store", "spec", "train", "metrics", "base"}


def test_modules_follow_the_naming_rule():
    """docs/adding-a-stage.md: a module that registers a stage is ``stage.py`` or ``*_stage.py``; a
    name outside the rooms every wing shares is used once in the package."""
    seen: dict[str, list[str]] = {}
    for module, path in _modules().items():
        leaf = module.rsplit(".", 1)[-1]
        if leaf == "textcurate" or path.endswith("__init__.py"):
            continue
        seen.setdefault(leaf, []).append(module)
        declares = any(line.startswith("@stage(") for line in open(path, encoding="utf-8"))
        floor = _unit(module) == "steps"  # the stages of no wing: text statistics, external scorers
        assert not declares or floor or leaf == "stage" or leaf.endswith("_stage"), \
            f"{module} registers a stage: name it stage.py or <name>_stage.py"
    twins = {leaf: mods for leaf, mods in seen.items() if len(mods) > 1 and leaf not in ROOMS}
    assert not twins, f"one name, two modules (rename one, or add a room to the rule): {twins}"


def test_no_import_goes_up_a_layer():
    layer_of = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    mods = _modules()
    bad = [f"{a} -> {b}" for a, bs in _edges(mods).items() for b in sorted(bs)
           if layer_of[_unit(b)] > layer_of[_unit(a)]]
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def test_no_circle_of_imports():
    mods = _modules()
    edges = _edges(mods)
    units = {u: set() for u in map(_unit, mods)}
    for a, bs in edges.items():
        units[_unit(a)].update(_unit(b) for b in bs if _unit(b) != _unit(a))
    for graph in (edges, units):
        index, low, stack, on, circles = {}, {}, [], set(), []

        def visit(v):
            index[v] = low[v] = len(index)
            stack.append(v)
            on.add(v)
            for w in graph[v]:
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    circles.append(sorted(comp))

        for v in list(graph):
            if v not in index:
                visit(v)
        assert not circles, f"circles of imports: {circles}"


OPTIONAL = {"vllm", "ray"}  # third-party packages a module may need that `make test`'s venv may lack


@pytest.mark.parametrize("module", sorted(_modules()))
def test_every_module_imports(module):
    if module in ("textcurate.__main__",):
        pytest.skip("runs the command line on import")
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"needs {e.name}")
        raise
