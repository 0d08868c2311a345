"""Grading: is a predicted final answer correct against the reference (gold) answer?

Math answers go through math-verify with the gold answer first (its ``verify`` is not
symmetric: the gold decides how the prediction is read, e.g. an interval vs a pair).
GSM8K-style golds (a plain number) also accept a prediction that states that number with
thousands separators, a currency sign or a trailing unit word ("$1,000", "18 dollars").
"""
from __future__ import annotations

import re
from fractions import Fraction

from ..answers import equivalent

_NUMBER_RE = re.compile(r"^-?\d+(?:\.\d+)?$")
_THOUSANDS_RE = re.compile(r"(?<![\d.])(\d{1,3})((?:,\d{3})+)(?![\d])")
_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_LEAD_NUM_RE = re.compile(r"^(-?\d+(?:\.\d+)?)(?:\s*[a-zA-Z%][a-zA-Z%. ]*)?$")


def is_plain_number(s: str | None) -> bool:
    """Whether ``s`` is a bare decimal number such as ``18``, ``-3`` or ``2.5``."""
    return s is not None and bool(_NUMBER_RE.match(s.strip().replace(",", "")))


def numeric_value(pred: str | None) -> Fraction | None:
    """The one number a GSM8K-style prediction states, or None.

    Accepts ``1,000``, ``$18``, ``\\$18.00``, ``18 dollars``, ``\\text{18 apples}``, ``50\\%``;
    refuses anything with a second number or an expression (``1,2``, ``3+4``, ``x=5``)."""
    if pred is None:
        return None
    s = _TEXT_RE.sub(r"\1", pred.strip())
    s = s.strip().strip("$").strip()
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "%").replace("\\!", "").replace("\\,", "")
    s = s.replace("{,}", ",").strip()
    s = _THOUSANDS_RE.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), s)
    s = s.rstrip(".").strip()
    m = _LEAD_NUM_RE.match(s)
    if not m:
        return None
    try:
        return Fraction(m.group(1))
    except (ValueError, ZeroDivisionError):
        return None


def grade(pred: str | None, gold: str | None) -> bool:
    """Whether ``pred`` is a correct answer for reference ``gold`` (None is never correct)."""
    if pred is None or gold is None or not str(pred).strip() or not str(gold).strip():
        return False
    pred, gold = str(pred), str(gold)
    if equivalent(gold, pred):
        return True
    if is_plain_number(gold):
        value = numeric_value(pred)
        return value is not None and value == Fraction(gold.strip().replace(",", ""))
    return False
