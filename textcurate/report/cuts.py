"""The cuts a run's ``select`` stages made, read from its record: drawn on the report's histograms and
named beside its example documents."""

from __future__ import annotations

import ast


def select_thresholds(record: dict) -> dict[str, list[tuple[float, str]]]:
    """{field: [(value, label)]} of the cuts the run's ``select`` stages made: each comparison of a
    field with a number in an ``expr``, and each fitted top-k or fraction's boundary score."""
    out: dict[str, list[tuple[float, str]]] = {}
    stages = (record.get("config") or {}).get("stages") or []
    for i, st in enumerate(stages):
        if st.get("type") != "select":
            continue
        name = st.get("name") or "select"
        expr = st.get("expr")
        if isinstance(expr, str):
            try:
                tree = ast.parse(expr, mode="eval")
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
                    continue
                left, right = node.left, node.comparators[0]
                op = {ast.GtE: ">=", ast.Gt: ">", ast.LtE: "<=", ast.Lt: "<", ast.Eq: "=="}.get(type(node.ops[0]))
                if op is None:
                    continue
                if isinstance(right, ast.Name) and isinstance(left, ast.Constant):
                    left, right = right, left
                    op = {">=": "<=", ">": "<", "<=": ">=", "<": ">", "==": "=="}[op]
                if isinstance(left, ast.Name) and isinstance(right, ast.Constant) and \
                        isinstance(right.value, (int, float)) and not isinstance(right.value, bool):
                    out.setdefault(left.id, []).append((float(right.value), f"{name}: {left.id} {op} {right.value}"))
        decision = ((record.get("phases") or {}).get(f"fit-{name}") or {}).get("decision") or {}
        by = decision.get("by")
        for group, cut in (decision.get("groups") or {}).items():
            if by and cut and isinstance(cut.get("score"), (int, float)):
                label = f"{name}: top {cut.get('kept'):,} by {by}" + ("" if group in ("", "__all__") else f" ({group})")
                out.setdefault(by, []).append((float(cut["score"]), label))
    return out
