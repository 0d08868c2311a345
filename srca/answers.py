"""Answers: extract them from model text, canonicalize, test equivalence, group equivalents.

Parsing and equivalence use Hugging Face ``math-verify``. Answers it cannot parse into a math
object (free text) fall back to normalized-string equality here, and to embedding clustering in
:mod:`srca.semantic` with ``cluster(..., semantic=True)`` (the extra ``srca[semantic]``).
"""
from __future__ import annotations

import math
import re
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Iterator, Sequence

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def _balanced(text: str, start: int) -> tuple[str, bool]:
    """Content from ``start`` up to the brace closing depth 0; (content, closed)."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            continue
        if c == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif c == "}" and (i == 0 or text[i - 1] != "\\"):
            if depth == 0:
                return text[start:i], True
            depth -= 1
    return text[start:], False


def extract_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` (nested braces kept), else None."""
    found = None
    for m in _BOX_RE.finditer(text or ""):
        content, closed = _balanced(text, m.end())
        if closed and content.strip():
            found = content.strip()
    return found


def parse_probe(generated: str) -> str | None:
    """Answer from a checkpoint probe. ``generated`` continues a cue that ends in
    ``\\boxed{``, so the answer runs to the brace that closes the box. A probe cut short
    before the box closes gives no answer: a half-written expression is not a candidate."""
    if generated is None:
        return None
    content, closed = _balanced(generated, 0)
    if not closed:
        return None
    content = content.strip().rstrip(".").strip()
    return content or None


_PLAIN_RES = [
    re.compile(r"(?:final answer|answer)\s*(?:is|:|=)\s*\$?([^\n$]+?)\$?\s*(?:\.|\n|$)", re.I),
    re.compile(r"####\s*([^\n]+)"),
]
_NUM_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def extract_answer(text: str) -> str | None:
    """Final answer of a completed path: last ``\\boxed{}``; else a plain "the answer is X"
    or ``#### X``; else None (a bare number elsewhere in the text is not trusted)."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    for rx in _PLAIN_RES:
        ms = rx.findall(text or "")
        if ms:
            ans = ms[-1].strip().rstrip(".").strip()
            if ans:
                inner = extract_boxed(ans)
                return inner if inner is not None else ans
    return None


_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")


def normalize_text(ans: str) -> str:
    """A string key for answers math-verify cannot parse."""
    s = ans.strip().strip("$").strip()
    s = _TEXT_WRAP.sub(r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")
    s = s.replace("dfrac", "frac").replace("tfrac", "frac").replace("^\\circ", "").replace("^{\\circ}", "")
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").lower()
    return s


def _timeout() -> int | None:
    # math-verify's timeouts use SIGALRM, which only works on the main thread; elsewhere it
    # would fork a process per call. Off the main thread we run without a timeout.
    return 5 if threading.current_thread() is threading.main_thread() else None


# What math-verify does with bad input: with ``raise_on_error=False`` (its default, used here)
# ``parse`` returns ``[]`` and ``verify`` returns False for input it cannot parse or compare, its
# own timeout included. That timeout, ``math_verify.errors.TimeoutException``, is a
# BaseException, so it is the one thing caught here (were it ever to escape): an answer that
# takes too long is unparsable, or not equivalent. Anything else raised (an ImportError, the
# ValueError math-verify raises when its timeout is used off the main thread, a bug in the
# library) is a fault in grading, not a wrong answer, and surfaces.


@lru_cache(maxsize=65536)
def _parsed(ans: str) -> tuple:
    from math_verify import parse
    from math_verify.errors import TimeoutException

    s = ans.strip()
    if not s.startswith("$"):
        s = f"${s}$"
    try:
        return tuple(parse(s, parsing_timeout=_timeout()))
    except TimeoutException:  # too slow to parse: unparsable
        return ()


def is_math(ans: str) -> bool:
    """Whether math-verify parses ``ans`` into a math object (not just a string)."""
    if _TEXT_ONLY.get():
        return False
    p = _parsed(ans)
    return bool(p) and not isinstance(p[0], str)


# text_only(): answers compared by their normalized text alone (per thread and task context)
_TEXT_ONLY: ContextVar[bool] = ContextVar("srca_answers_text_only", default=False)


@contextmanager
def text_only() -> Iterator[None]:
    """Within it, :func:`equivalent`, :func:`canonical` and :func:`is_math` use the normalized
    text alone (no math-verify, no sympy): what a solve's answer work falls back to when it ran
    past its deadline (:mod:`srca.answer_work`), since then some answer is one sympy cannot
    finish with. Other threads and tasks are not affected."""
    token = _TEXT_ONLY.set(True)
    try:
        yield
    finally:
        _TEXT_ONLY.reset(token)


def is_text_only() -> bool:
    """Whether the caller runs inside :func:`text_only`."""
    return _TEXT_ONLY.get()


def canonical(ans: str | None) -> str | None:
    """A display key: math-verify's normal form when it parses, else the normalized text."""
    if ans is None:
        return None
    if _TEXT_ONLY.get():
        return normalize_text(ans)
    p = _parsed(ans)
    if p and not isinstance(p[0], str):
        return str(p[0])
    return normalize_text(ans)


def _fast_compare(g: object, p: object) -> bool | None:
    """Decide cheaply when we can: two plain numbers compare numerically (what math-verify's
    sympy path would conclude, without ``simplify``), and expressions over different free
    symbols cannot be equal (checked first, before anything is evaluated: an infinite sum
    against ``p - q`` is decided here, not by sympy summing it, 0.1 to 1 s a pair). Beyond
    that only disproofs: sets and intervals (:func:`_sets_differ`), linear equations
    (:func:`_lines_differ`) and expressions at fixed points (:func:`_differs_numerically`)
    shown different are different. None: ask math-verify."""
    from sympy import Eq, Expr, FiniteSet, Interval, Union

    if isinstance(g, Expr) and isinstance(p, Expr):
        try:  # structural, evaluates nothing; a sum's or an integral's bound variables are not free
            if g.free_symbols != p.free_symbols:
                return False
        except (TypeError, ValueError, AttributeError):
            return None
    if not (_evaluable(g) and _evaluable(p)):  # math-verify decides, under its own timeout
        return None
    sets = (FiniteSet, Interval, Union)
    if isinstance(g, sets) or isinstance(p, sets):
        return False if _sets_differ(g, p) else None
    if isinstance(g, Eq) and isinstance(p, Eq):
        return False if _lines_differ(g, p) else None
    if not (isinstance(g, Expr) and isinstance(p, Expr)):  # other relations, tuples, matrices: math-verify
        return None
    try:
        if g.is_number and p.is_number:
            a, b = complex(g.evalf()), complex(p.evalf())  # type: ignore[attr-defined]
            return abs(a - b) <= 1e-6 * max(1.0, abs(a))
        if g.free_symbols != p.free_symbols:
            return False
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    if _differs_numerically(g, p):
        return False
    return None


# A numeric exponent larger than this (in absolute value) may make sympy build an exact integer
# of that many digits or more (``9^{9^{9^9}}``): such answers are not evaluated here.
_MAX_EXPONENT = 1e4


def _evaluable(x) -> bool:
    """Whether the cheap checks below may evaluate ``x`` numerically: no unevaluated sum,
    product, integral, limit or derivative (``evalf`` of a product to a symbolic bound,
    ``\\prod_{k=0}^{n-1} (16k^4 + 1)`` at n = 0.37, never returns), and no power whose numeric
    exponent may exceed :data:`_MAX_EXPONENT` (``9^{9^{9^9}}``: exact integer arithmetic that
    does not return either, and no signal interrupts it). The first is a model's answer on
    MATH-500 ``test/intermediate_algebra/1467`` (3 of 12 stored runs' pools), and by all the
    evidence what held the twelfth GPU run's unfinished solve. Whatever this refuses goes to
    math-verify, whose own timeout bounds it."""
    from sympy import Basic, Derivative, Integral, Limit, Pow, Product, Sum, preorder_traversal

    if not isinstance(x, Basic):
        return False
    if x.has(Sum, Product, Integral, Limit, Derivative):
        return False
    for node in preorder_traversal(x):
        if isinstance(node, Pow) and node.exp.is_number and not _magnitude(node.exp) <= _MAX_EXPONENT:
            return False
    return True


def _magnitude(x) -> float:
    """An upper bound of ``|x|`` for a numeric sympy expression, in floats (inf when it may
    overflow or is not known), computed without building ``x``'s exact value."""
    from sympy import Add, Function, Mul, Number, NumberSymbol, Pow

    try:
        if isinstance(x, Number):
            return abs(float(x))
        if isinstance(x, NumberSymbol) or x.is_imaginary and x.args == ():  # pi, E; I
            return 4.0
        if isinstance(x, Add):
            return math.fsum(_magnitude(a) for a in x.args)
        if isinstance(x, Mul):
            return math.prod(_magnitude(a) for a in x.args)
        if isinstance(x, Pow):
            e = _magnitude(x.exp)
            if not e <= _MAX_EXPONENT:
                return math.inf
            b = _magnitude(x.base)
            return max(b, 1.0) ** e if x.exp.is_nonnegative else math.inf  # a negative power may be of a small base
        if isinstance(x, Function) and all(_magnitude(a) <= _MAX_EXPONENT for a in x.args):
            return abs(complex(x.evalf(15)))
    except (TypeError, ValueError, AttributeError, OverflowError, ZeroDivisionError):
        return math.inf
    return math.inf


# Points at which two expressions in the same free symbols are evaluated before math-verify's
# ``simplify`` is asked (below). Irrational-ish values away from the usual poles (0, 1, pi/2).
_PROBES = ((0.3718, 1.2247, 0.5783, 2.1436), (1.4142, 0.6931, 1.7321, 0.4472), (2.7183, 0.8660, 0.3162, 1.1892))


def _differs_numerically(g, p) -> bool:
    """Whether two sympy expressions over the same free symbols (at most 4) are shown to differ
    by evaluating both at fixed points: one point where both are finite and differ by more
    than 1e-6 (relative) decides. A disproof only: when they agree (or cannot be evaluated)
    math-verify decides, as before.

    Why: math-verify proves two expressions equal with sympy's ``simplify(a - b)``, and for two
    *different* expressions simplify runs every strategy before giving up; with trigonometric
    answers that is 0.1 to 0.5 s a pair (a MATH-500 precalculus problem's 10 distinct answers
    took 3.3 s to cluster). Different answers are what clustering mostly compares, and what a
    grade of a wrong answer compares."""
    syms = sorted(g.free_symbols, key=str)
    if not syms or len(syms) > len(_PROBES[0]):
        return False
    for point in _PROBES:
        subs = dict(zip(syms, point))
        try:
            a = complex(g.evalf(15, subs=subs))
            b = complex(p.evalf(15, subs=subs))
        except (TypeError, ValueError, AttributeError, OverflowError, ZeroDivisionError):
            continue
        if not all(map(math.isfinite, (a.real, a.imag, b.real, b.imag))):
            continue
        if not _close(a, b, 1e-6):
            return True
    return False


def _number(x) -> complex | None:
    """``x``'s finite complex value when it is a plain number, else None."""
    from sympy import Expr

    if not isinstance(x, Expr) or not x.is_number:
        return None
    try:
        v = complex(x.evalf(15))
    except (TypeError, ValueError, AttributeError, OverflowError, ZeroDivisionError):
        return None
    return v if all(map(math.isfinite, (v.real, v.imag))) else None


def _sets_differ(g, p) -> bool:
    """Whether two finite sets of plain numbers (a lone number counts as a one-element set, as
    math-verify treats it) are shown to differ: some element of one has no element of the other
    within 1e-6 (relative). A disproof only; sets with anything but numbers go to math-verify,
    whose set comparison (``symmetric_difference`` and friends) takes 0.1 s a pair. A finite set,
    or a lone expression, never equals an interval (or a union of them) of positive length; two unions of intervals with
    numeric ends differ when their merged pieces do (:func:`_merged_intervals`)."""
    from sympy import Expr, FiniteSet, Interval, Union

    if isinstance(g, (Interval, Union)) and isinstance(p, (Interval, Union)):
        a, b = _merged_intervals(g), _merged_intervals(p)
        return a is not None and b is not None and not _same_intervals(a, b)
    if isinstance(g, (Interval, Union)) or isinstance(p, (Interval, Union)):
        finite, other = (p, g) if isinstance(g, (Interval, Union)) else (g, p)
        pieces = _merged_intervals(other) if isinstance(finite, (FiniteSet, Expr)) else None  # lone expression: a point
        return pieces is not None and any(b > a for a, b, _, _ in pieces)  # of positive length
    vals = []
    for x in (g, p):
        elems = list(x.args) if isinstance(x, FiniteSet) else [x]
        nums = [_number(e) for e in elems]
        if not nums or any(v is None for v in nums):
            return False
        vals.append(nums)

    def covered(xs: list[complex], ys: list[complex]) -> bool:
        return all(any(_close(x, y, 1e-6) for y in ys) for x in xs)

    return not (covered(vals[0], vals[1]) and covered(vals[1], vals[0]))


def _close(x: complex, y: complex, rel: float = 1e-9) -> bool:
    """``x`` and ``y`` (real or complex; an infinite end equals only itself) within ``rel`` of
    the larger (at least 1)."""
    if math.isinf(abs(x)) or math.isinf(abs(y)):
        return x == y
    return abs(x - y) <= rel * max(1.0, abs(x), abs(y))


def _merged_intervals(x) -> list[tuple[float, float, bool, bool]] | None:
    """An interval or a union of intervals with real numeric ends as disjoint, sorted
    ``(start, end, start_closed, end_closed)``, overlapping or touching pieces merged (math-verify
    keeps a union as written: ``(0, 2) \\cup (1, 3)`` is not rewritten as ``(0, 3)``); None for
    anything else (a point in the union, a symbolic end)."""
    from sympy import Interval, Union

    parts = x.args if isinstance(x, Union) else (x,)
    rows = []
    for i in parts:
        if not isinstance(i, Interval):
            return None
        ends = []
        for e in (i.start, i.end):
            if e.is_infinite:
                ends.append(-math.inf if e.is_extended_negative else math.inf)
                continue
            v = _number(e)
            if v is None or v.imag != 0:
                return None
            ends.append(v.real)
        rows.append((ends[0], ends[1], not i.left_open, not i.right_open))
    rows.sort(key=lambda r: (r[0], not r[2]))
    merged: list[list] = []
    for a, b, ac, bc in rows:
        if merged:
            m = merged[-1]
            touching = _close(a, m[1]) and (ac or m[3])
            if a < m[1] and not _close(a, m[1]) or touching:
                if b > m[1] and not _close(b, m[1]):
                    m[1], m[3] = b, bc
                elif _close(b, m[1]):
                    m[3] = m[3] or bc
                continue
        merged.append([a, b, ac, bc])
    return [tuple(m) for m in merged]


def _same_intervals(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for (s1, e1, sc1, ec1), (s2, e2, sc2, ec2) in zip(a, b):
        if not (_close(s1, s2) and _close(e1, e2)):
            return False
        if (not math.isinf(s1) and sc1 != sc2) or (not math.isinf(e1) and ec1 != ec2):
            return False
    return True


def _lines_differ(g, p) -> bool:
    """Whether two linear equations over the same free symbols (``y = 2x + 1``, a plane
    ``3x - 2y + z = 4``) are shown to differ: their coefficients (constant included, everything
    moved to one side) are not proportional. Such equations have the same solutions exactly
    when they are proportional, which is what math-verify's ``solve`` then concludes, slowly. A
    disproof only: anything not linear, or over other symbols, goes to math-verify."""
    from sympy import Poly, PolynomialError

    syms = sorted(g.free_symbols, key=str)
    if not syms or set(syms) != p.free_symbols:
        return False
    try:
        polys = [Poly(e.lhs - e.rhs, *syms) for e in (g, p)]
        if any(q.total_degree() != 1 for q in polys):
            return False
        monos = [tuple(int(i == k) for i in range(len(syms))) for k in range(len(syms))]
        monos.append((0,) * len(syms))
        vecs = [[complex(q.coeff_monomial(m).evalf(15)) for m in monos] for q in polys]
    except (PolynomialError, TypeError, ValueError, AttributeError, OverflowError):
        return False
    u, v = vecs
    if not all(math.isfinite(abs(x)) for x in u + v):
        return False
    # proportional <=> every 2x2 minor u_i v_j - u_j v_i vanishes (relative to the sizes)
    scale = max(abs(x) for x in u) * max(abs(x) for x in v)
    return any(abs(u[i] * v[j] - u[j] * v[i]) > 1e-9 * scale for i in range(len(u)) for j in range(i))


def equivalent(gold: str, pred: str) -> bool:
    """Whether ``pred`` is equivalent to ``gold`` (gold first, as math-verify expects); under
    :func:`text_only`, whether their normalized texts are equal."""
    if gold is None or pred is None:
        return False
    if _TEXT_ONLY.get():
        return normalize_text(gold) == normalize_text(pred)
    return _equivalent(gold, pred)


def clear_caches() -> None:
    """Forget every parse and comparison (benchmarks timing a cold start; tests)."""
    _parsed.cache_clear()
    _equivalent.cache_clear()


@lru_cache(maxsize=65536)
def _equivalent(gold: str, pred: str) -> bool:
    if normalize_text(gold) == normalize_text(pred):
        return True
    g, p = _parsed(gold), _parsed(pred)
    if not g or not p:
        return False
    if not isinstance(g[0], str) and not isinstance(p[0], str):
        fast = _fast_compare(g[0], p[0])
        if fast is not None:
            return fast
    from math_verify import verify
    from math_verify.errors import TimeoutException

    try:
        return bool(verify(list(g), list(p), timeout_seconds=_timeout()))
    except TimeoutException:  # too slow to compare: not shown equivalent
        return False


def cluster(answers: Sequence[str | None], semantic: bool = False, threshold: float = 0.25) -> list[int]:
    """Group labels for ``answers`` (equivalent answers share a label, in first-seen order).
    ``None`` answers get label -1. With ``semantic=True`` answers math-verify cannot parse are
    grouped by sentence embeddings (see :mod:`srca.semantic`) instead of exact text."""
    labels = [-1] * len(answers)
    reps: list[str] = []
    text_idx: list[int] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        if semantic and not is_math(a):
            text_idx.append(i)
            continue
        for g, r in enumerate(reps):
            if equivalent(r, a):
                labels[i] = g
                break
        else:
            reps.append(a)
            labels[i] = len(reps) - 1
    if text_idx:
        from .semantic import cluster_texts

        sub = cluster_texts([answers[i] for i in text_idx], threshold=threshold)
        base = len(reps)
        remap: dict[int, int] = {}
        for i, s in zip(text_idx, sub):
            remap.setdefault(s, base + len(remap))
            labels[i] = remap[s]
    return labels
