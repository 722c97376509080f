"""Safe expressions over attributes: ``edu_score >= 3 and not is_dup``.

Parsed with Python's ``ast`` and evaluated by a small whitelist interpreter: no ``eval``,
no attribute access, no calls beyond a few pure functions. The same expression runs on one
document's metadata (scalars) or on whole columns (numpy arrays), so the report can show
what a threshold would keep without streaming the corpus.

Written here because nothing small fits both uses: pandas/numexpr evaluate only columns,
and ``eval`` is unsafe on a config file.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Mapping

import numpy as np

_FUNCS = {"abs": np.abs, "min": np.minimum, "max": np.maximum, "log": np.log, "sqrt": np.sqrt,
          "len": None, "isnan": np.isnan}
_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
           ast.FloorDiv: np.floor_divide, ast.Mod: np.mod, ast.Pow: np.power}
_PYCMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
          ast.Gt: operator.gt, ast.GtE: operator.ge}
_CMPOPS = {ast.Eq: np.equal, ast.NotEq: np.not_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
           ast.Gt: np.greater, ast.GtE: np.greater_equal}


class ExprError(ValueError):
    pass


class MissingField(ExprError):
    def __init__(self, name: str):
        super().__init__(f"no attribute {name!r}")
        self.name = name


class Expr:
    def __init__(self, source: str):
        self.source = source
        try:
            self.tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as e:
            raise ExprError(f"cannot parse expression {source!r}: {e.msg} at column {e.offset}") from None
        self.names = sorted(self._check(self.tree.body))

    def _check(self, node: ast.AST) -> set[str]:
        """Reject anything outside the whitelist up front; return the attribute names used."""
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return set()
            return {node.id}
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, str, bool, type(None))):
                raise ExprError(f"constant {node.value!r} not allowed")
            return set()
        if isinstance(node, ast.BoolOp):
            return set().union(*(self._check(v) for v in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
            return self._check(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return self._check(node.left) | self._check(node.right)
        if isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _CMPOPS and not isinstance(op, (ast.In, ast.NotIn)):
                    raise ExprError(f"comparison {type(op).__name__} not allowed in {self.source!r}")
            return set().union(self._check(node.left), *(self._check(c) for c in node.comparators))
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return set().union(*(self._check(e) for e in node.elts)) if node.elts else set()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS \
                and not node.keywords:
            return set().union(*(self._check(a) for a in node.args)) if node.args else set()
        raise ExprError(f"{type(node).__name__} not allowed in expression {self.source!r} "
                        f"(allowed: names, numbers, strings, and/or/not, arithmetic, comparisons, in, "
                        f"{', '.join(sorted(_FUNCS))})")

    def __call__(self, env: Mapping[str, Any]):
        """Evaluate on scalars (one document) or on equal-length numpy arrays (a table)."""
        return self._eval(self.tree.body, env)

    def _eval(self, node: ast.AST, env: Mapping[str, Any]):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id not in env:
                raise MissingField(node.id)
            return env[node.id]
        if isinstance(node, ast.BoolOp):
            vals = [self._truth(self._eval(v, env)) for v in node.values]
            fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = vals[0]
            for v in vals[1:]:
                out = fn(out, v)
            return out
        if isinstance(node, ast.UnaryOp):
            val = self._eval(node.operand, env)
            if isinstance(node.op, ast.Not):
                return np.logical_not(self._truth(val))
            return -val if isinstance(node.op, ast.USub) else +val
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](self._eval(node.left, env), self._eval(node.right, env))
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, env)
            out = True
            for op, comp in zip(node.ops, node.comparators):
                right = self._eval(comp, env)
                if isinstance(op, (ast.In, ast.NotIn)):
                    res = np.isin(left, list(right)) if isinstance(left, np.ndarray) else left in right
                    res = np.logical_not(res) if isinstance(op, ast.NotIn) else res
                else:
                    res = _compare(op, left, right)
                out = np.logical_and(out, res)
                left = right
            return out
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return [self._eval(e, env) for e in node.elts]
        if isinstance(node, ast.Call):
            args = [self._eval(a, env) for a in node.args]
            if node.func.id == "len":
                (arg,) = args
                return np.char.str_len(arg.astype(str)) if isinstance(arg, np.ndarray) else len(arg)
            return _FUNCS[node.func.id](*args)
        raise ExprError(f"cannot evaluate {ast.dump(node)}")  # unreachable after _check

    @staticmethod
    def _truth(val):
        if isinstance(val, np.ndarray):
            return val.astype(bool) if val.dtype != object else np.array([bool(v) for v in val])
        return bool(val)

    def keep(self, metadata: Mapping[str, Any]) -> bool:
        """Scalar evaluation for one document; None and NaN compare as not kept."""
        return bool(self(metadata))


def _compare(op: ast.cmpop, left, right):
    if left is None or right is None:  # a missing value never satisfies an ordering
        return (left is right) if isinstance(op, ast.Eq) else (left is not right) if isinstance(op, ast.NotEq) else False
    if isinstance(left, float) and math.isnan(left) and not isinstance(op, ast.NotEq):
        return False
    if isinstance(left, np.ndarray) and left.dtype == object:
        return np.array([_compare(op, v, right) for v in left], dtype=bool)
    try:
        if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
            return _CMPOPS[type(op)](left, right)
        return _PYCMP[type(op)](left, right)
    except TypeError:
        raise ExprError(f"cannot compare {type(left).__name__} with {type(right).__name__}") from None
