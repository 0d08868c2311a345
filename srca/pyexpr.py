"""What a program printed, from Python's and SymPy's syntax into LaTeX, so that it votes and grades
as the same answer a chain of thought writes.

Programs print ``5*r**5``, ``3*sqrt(3)/4``, ``(3, pi/2)``, ``Interval.Lopen(3/5, 8/3)`` or ``oo``;
answers are compared as LaTeX (:mod:`srca.answers`, math-verify), where ``**`` is no operator,
``pi`` reads as ``p*i`` and ``oo`` as ``o*o``: math-verify parses ``5*r**5`` as 5. On the
twenty-seventh GPU run's pot@16 (MATH-500) this module reads 519 of the 3,220 program answers
anew, and 104 of them turn right (benchmarks/README, "Programs beside chains of thought").

SymPy's own parser (``parse_expr``, ``sympify``) runs ``eval`` on the text, and the text is the
output of model-written code, so :func:`to_latex` parses it with :func:`ast.parse` (no
evaluation) and builds the SymPy object from a short list of node kinds, names and functions;
anything else is left as printed. Exact powers and factorials are bounded, so that no printed
line makes the parent compute a huge number.
"""
from __future__ import annotations

import ast
import re

__all__ = ["to_latex"]

# what only Python's or SymPy's printing writes: a power, a call, a constant's name, a list
_PYTHONIC = re.compile(r"\*\*|[A-Za-z_]\w*\s*\(|\b(?:pi|oo|zoo|E|I|sqrt)\b|^\s*\[|\w\s*\*\s*\w")
_MAX_BITS = 4096  # of an exact power (its base's bits times the exponent)
_MAX_FACTORIAL = 1000  # the largest integer factorial() and binomial() take
_MAX_NODES = 400

_CONSTANTS = {"pi": "pi", "E": "E", "I": "I", "oo": "oo", "nan": None, "zoo": None}
_FUNCTIONS = {  # name printed -> SymPy's name
    **{f: f for f in ("sqrt", "exp", "log", "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan",
                      "acot", "sinh", "cosh", "tanh", "factorial", "binomial", "floor", "ceiling", "Abs", "Rational",
                      "Integer", "Float", "Interval", "Union", "FiniteSet", "Matrix", "Eq", "Mod", "gcd", "lcm",
                      "Max", "Min", "re", "im", "conjugate", "root", "cbrt")},
    "abs": "Abs", "ln": "log", "arcsin": "asin", "arccos": "acos", "arctan": "atan",
}
_INTERVAL_KINDS = ("open", "Lopen", "Ropen")


class _Unsupported(Exception):
    pass


def to_latex(text: str) -> str | None:
    """The LaTeX of a line in Python's or SymPy's syntax, or None where it is not one (a plain
    number, LaTeX, words, or anything outside the node kinds and names this module reads). A
    list (a program's several solutions) becomes its items joined by commas, as MATH writes
    several answers; a tuple stays an ordered tuple."""
    s = text.strip()
    if not s or not _PYTHONIC.search(s):
        return None
    try:
        tree = ast.parse(s, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return None
    if sum(1 for _ in ast.walk(tree)) > _MAX_NODES:
        return None
    body = tree.body
    if isinstance(body, ast.Name) and body.id not in _CONSTANTS:
        return None  # one word (a name the program printed): text, not math
    import sympy

    try:
        if isinstance(body, (ast.List, ast.Set)):
            items = [_build(e, sympy) for e in body.elts]
            return ", ".join(_latex(x, sympy) for x in items) if items else None
        return _latex(_build(body, sympy), sympy)
    except Exception:  # noqa: BLE001 - untrusted text: whatever SymPy makes of it that fails, it stays as printed
        return None


def _latex(obj, sympy) -> str:
    if isinstance(obj, tuple):
        return "(" + ", ".join(_latex(x, sympy) for x in obj) + ")"
    if obj is None or getattr(obj, "has", None) and obj.has(sympy.nan, sympy.zoo):
        raise _Unsupported("undefined")
    return sympy.latex(obj)


def _build(node: ast.AST, sympy):
    """The SymPy object of one node (see :func:`to_latex`); :class:`_Unsupported` otherwise."""
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float, complex)):
            raise _Unsupported("constant")
        if isinstance(v, complex):
            return sympy.Float(v.real) + sympy.Float(v.imag) * sympy.I if v.real else sympy.Float(v.imag) * sympy.I
        return sympy.Integer(v) if isinstance(v, int) else sympy.Float(repr(v))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            name = _CONSTANTS[node.id]
            if name is None:
                raise _Unsupported(node.id)
            return getattr(sympy, name)
        return sympy.Symbol(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        x = _build(node.operand, sympy)
        return -x if isinstance(node.op, ast.USub) else x
    if isinstance(node, ast.BinOp):
        a, b = _build(node.left, sympy), _build(node.right, sympy)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
        if isinstance(node.op, ast.Pow):
            if getattr(a, "is_Rational", False) and getattr(b, "is_Rational", False):
                bits = max(int(a.p).bit_length(), int(a.q).bit_length())
                if bits > 1 and bits * abs(float(b)) > _MAX_BITS:
                    raise _Unsupported("power")
            return a ** b
        raise _Unsupported("operator")
    if isinstance(node, ast.Tuple):
        return tuple(_build(e, sympy) for e in node.elts)
    if isinstance(node, ast.List):  # inside a call (Matrix) or a tuple
        return [_build(e, sympy) for e in node.elts]
    if isinstance(node, ast.Call) and not node.keywords:
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "Interval" \
                and f.attr in _INTERVAL_KINDS:
            fn = getattr(sympy.Interval, f.attr)
        elif isinstance(f, ast.Name) and f.id in _FUNCTIONS:
            fn = getattr(sympy, _FUNCTIONS[f.id])
        else:
            raise _Unsupported("function")
        args = [_build(a, sympy) for a in node.args]
        if fn in (sympy.factorial, sympy.binomial) and any(
                not getattr(x, "is_Integer", False) or abs(int(x)) > _MAX_FACTORIAL for x in args):
            raise _Unsupported("factorial")
        return fn(*args)
    raise _Unsupported(type(node).__name__)
