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
          "len": None, "isnan": np.isnan}  # on columns; on scalars, Python's own (_PYFUNCS)
_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
           ast.FloorDiv: np.floor_divide, ast.Mod: np.mod, ast.Pow: np.power}
_PYOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_PYFUNCS = {"abs": abs, "min": min, "max": max, "log": math.log, "sqrt": math.sqrt, "isnan": math.isnan}
_PYCMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
          ast.Gt: operator.gt, ast.GtE: operator.ge}
_CMPOPS = {ast.Eq: np.equal, ast.NotEq: np.not_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
           ast.Gt: np.greater, ast.GtE: np.greater_equal}


class ExprError(ValueError):
    """An expression that cannot be evaluated; ``field`` is the attribute the failing part reads
    (the first one it names), or None when it reads none."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class MissingField(ExprError):
    def __init__(self, name: str):
        super().__init__(f"no attribute {name!r}", name)
        self.name = name


INT64 = 1 << 63  # integers live in [-2**63, 2**63): what a column of them holds, in both modes


class Expr:
    """An expression over a document's attributes. On one document (scalars) it is Python's
    arithmetic with three differences that make a wrong answer an error instead: an integer
    outside the 64-bit range, a division by zero and a result that is not a real number raise
    ``ExprError`` naming the expression. ``and`` / ``or`` short-circuit, so ``n > 0 and x / n > 1``
    never divides by zero. On columns (numpy arrays) the same rules hold for every row."""

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

    def _fail(self, node: ast.AST, what: str, blame: ast.AST | None = None) -> ExprError:
        """An error naming the part ``node`` of the expression; its field is the first attribute that
        ``blame`` (default: ``node``) reads."""
        names = sorted(self._check(blame if blame is not None else node)) or sorted(self._check(node))
        part = ast.unparse(node)
        return ExprError(f"{what} in {part!r}" + (f" (of {self.source!r})" if part != self.source.strip() else ""),
                         names[0] if names else None)

    def _eval(self, node: ast.AST, env: Mapping[str, Any]):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id not in env:
                raise MissingField(node.id)
            value = env[node.id]
            return value.item() if isinstance(value, np.generic) else value  # numpy scalars act as Python's
        if isinstance(node, ast.BoolOp):
            return self._boolop(node, env)
        if isinstance(node, ast.UnaryOp):
            val = self._eval(node.operand, env)
            if isinstance(node.op, ast.Not):
                return np.logical_not(self._truth(val)) if isinstance(val, np.ndarray) else not self._truth(val)
            if val is None or isinstance(val, str):
                raise self._fail(node, f"cannot negate {type(val).__name__}")
            return self._checked(node, -val if isinstance(node.op, ast.USub) else +val)
        if isinstance(node, ast.BinOp):
            return self._binop(node, self._eval(node.left, env), self._eval(node.right, env))
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, env)
            out = True
            for op, comp in zip(node.ops, node.comparators):
                right = self._eval(comp, env)
                if isinstance(op, (ast.In, ast.NotIn)):
                    res = np.isin(left, list(right)) if isinstance(left, np.ndarray) else left in right
                    res = np.logical_not(res) if isinstance(op, ast.NotIn) else res
                else:
                    try:
                        res = _compare(op, left, right)
                    except ExprError as e:
                        raise self._fail(node, str(e)) from None
                out = np.logical_and(out, res) if isinstance(res, np.ndarray) or isinstance(out, np.ndarray) \
                    else (out and bool(res))
                if out is False:  # Python's chain stops at the first false link
                    return False
                left = right
            return out
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return [self._eval(e, env) for e in node.elts]
        if isinstance(node, ast.Call):
            return self._call(node, [self._eval(a, env) for a in node.args])
        raise ExprError(f"cannot evaluate {ast.dump(node)}")  # unreachable after _check

    def _boolop(self, node: ast.BoolOp, env):
        """``and`` / ``or`` that stop at the first operand that decides, per document: on scalars the
        rest is never evaluated; on columns each operand is evaluated only on the rows still open."""
        is_and = isinstance(node.op, ast.And)
        out = None  # scalars so far: every operand left the answer open
        for v in node.values:
            if out is None:
                val = self._eval(v, env)
                if isinstance(val, np.ndarray):
                    out = self._truth(val)
                elif self._truth(val) != is_and:
                    return not is_and
                continue
            open_rows = np.flatnonzero(out if is_and else ~out)
            if not len(open_rows):
                break
            sub = {k: (x[open_rows] if isinstance(x, np.ndarray) and x.shape[:1] == out.shape else x)
                   for k, x in env.items()}
            out = out.copy()
            out[open_rows] = self._truth(self._eval(v, sub))
        return is_and if out is None else out

    def _binop(self, node: ast.BinOp, a, b):
        op = type(node.op)
        for x in (a, b):
            if x is None or isinstance(x, (str, list)) or (isinstance(x, np.ndarray) and x.dtype.kind in "OUS"):
                raise self._fail(node, f"cannot do arithmetic on {_kind(x)}")
        arrays = isinstance(a, np.ndarray) or isinstance(b, np.ndarray)
        if (op in (ast.Div, ast.FloorDiv, ast.Mod) and np.any(np.asarray(b) == 0)) or \
                (op is ast.Pow and np.any((np.asarray(a) == 0) & (np.asarray(b) < 0))):
            raise self._fail(node, "division by zero", node.right)
        if not arrays:
            if op is ast.Pow and _is_int(a) and _is_int(b) and abs(a) > 1 and b * (abs(a).bit_length() - 1) >= 64:
                raise self._fail(node, "integer overflow (outside the 64-bit range)")  # before Python computes it
            try:
                return self._checked(node, _PYOPS[op](a, b))
            except ZeroDivisionError:
                raise self._fail(node, "division by zero", node.right) from None
            except OverflowError:
                raise self._fail(node, "overflow") from None
        ints = all(_is_int(x) or (isinstance(x, np.ndarray) and x.dtype.kind in "iub") for x in (a, b))
        negative_power = op is ast.Pow and np.any(np.asarray(b) < 0)
        try:
            with np.errstate(all="ignore"):
                if ints and not negative_power and op in (ast.Add, ast.Sub, ast.Mult, ast.Pow, ast.FloorDiv, ast.Mod):
                    wide = self._checked(node, _BINOPS[op](np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
                    return wide.astype(np.int64)  # computed exactly, then checked: never wrapped
                out = _BINOPS[op](np.asarray(a, dtype=np.float64) if negative_power else a, b)
        except OverflowError:
            raise self._fail(node, "integer overflow (outside the 64-bit range)") from None
        return self._checked(node, out)

    def _checked(self, node: ast.AST, value):
        """``value`` when it is a number a column could hold; an integer outside int64, or a complex
        number (``(-8) ** 0.5``), is an error naming ``node``."""
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            if not -INT64 <= value < INT64:
                raise self._fail(node, "integer overflow (outside the 64-bit range)")
            return value
        if isinstance(value, complex):
            raise self._fail(node, "not a real number")
        if isinstance(value, np.ndarray) and value.dtype == object and len(value):
            if any(isinstance(v, complex) or (isinstance(v, int) and not -INT64 <= v < INT64) for v in value.flat):
                raise self._fail(node, "integer overflow (outside the 64-bit range)")
        return value

    def _call(self, node: ast.Call, args: list):
        name = node.func.id
        if any(x is None or (isinstance(x, str) and name != "len") for x in args):
            raise self._fail(node, f"{name} of {', '.join(_kind(x) for x in args)}")
        if not any(isinstance(x, np.ndarray) for x in args):
            try:
                return self._checked(node, len(*args) if name == "len" else _PYFUNCS[name](*args))
            except (TypeError, ValueError) as e:  # math.log(0): "math domain error"
                raise self._fail(node, f"{name}: {e}") from None
        if name == "len":
            if len(args) != 1:
                raise self._fail(node, "len takes one argument")
            return np.char.str_len(args[0].astype(str))
        try:
            with np.errstate(all="ignore"):
                out = _FUNCS[name](*args)
        except (TypeError, ValueError) as e:
            raise self._fail(node, f"{name}: {e}") from None
        if name in ("log", "sqrt"):
            x = np.asarray(args[0], dtype=np.float64)
            if np.any(x < 0) or (name == "log" and np.any(x == 0)):
                raise self._fail(node, f"{name} of a {'non-positive' if name == 'log' else 'negative'} number")
        return out

    @staticmethod
    def _truth(val):
        if isinstance(val, np.ndarray):
            return val.astype(bool) if val.dtype != object else np.array([bool(v) for v in val])
        return bool(val)

    def keep(self, metadata: Mapping[str, Any]) -> bool:
        """Scalar evaluation for one document; None and NaN compare as not kept."""
        return bool(self(metadata))


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _kind(x) -> str:
    if isinstance(x, np.ndarray):
        return f"a column of {x.dtype}"
    return "None" if x is None else type(x).__name__


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
