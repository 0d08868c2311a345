"""Report over evaluation result lines (``srca eval`` output): pure functions, then text.

Per method x n: accuracy (with a 95% normal-approximation half-width), the oracle rate (some
candidate correct), mean generated / prefilled tokens (prefilled = prompt tokens not served
from a prefix cache), mean scorer calls and the CCA rescue rate: among correct answers of an
SRCA method, the share that came from a checkpoint while no finished path had a correct answer;
the seconds a problem took (mean and 90th percentile, under the run's concurrency) and its
engine calls, one after another or side by side: a search's price in latency (srca's waves).
Also accuracy per level and per subject, a plot of accuracy against generated tokens, and the
accuracy other decision rules would have had over the same candidate pools (:func:`redecide`).
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable, Iterable, Sequence

from .variants import base_method

RowKey = tuple[str, str, int]  # (run, method, n)


def ci95(acc: float, n: int) -> float:
    """Half-width of the 95% normal interval of an accuracy ``acc`` over ``n`` problems."""
    return 1.96 * math.sqrt(acc * (1 - acc) / n) if n else 0.0


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def rescue_rate(records: Sequence[dict]) -> float | None:
    """rescued / correct over ``records`` (None when none is correct)."""
    correct = sum(1 for r in records if r["correct"])
    return sum(1 for r in records if r.get("rescued")) / correct if correct else None


def summarize_group(records: Sequence[dict]) -> dict[str, Any]:
    """Aggregate figures of one group of result lines."""
    k = len(records)
    acc = sum(1 for r in records if r["correct"]) / k if k else 0.0
    usage = lambda f: _mean([float(r["usage"].get(f, 0)) for r in records])
    prefilled = _mean([float(r["usage"].get("prefilled_tokens",
                                            r["usage"].get("prompt_tokens", 0) - r["usage"].get("cached_tokens", 0)))
                       for r in records])
    srca_like = bool(records) and all(base_method(r["method"]) == "srca" for r in records)
    return {
        "count": k,
        "correct": sum(1 for r in records if r["correct"]),
        "accuracy": acc,
        "ci95": ci95(acc, k),
        "oracle": _mean([1.0 if r.get("any_correct") else 0.0 for r in records]),
        "generated_tokens": usage("generated_tokens"),
        "prefilled_tokens": prefilled,
        "probe_tokens": usage("probe_tokens"),
        "unused_tokens": usage("unused_tokens"),  # srca's waves started early and not needed
        "scorer_calls": usage("scorer_calls"),
        "from_checkpoint": _mean([1.0 if r.get("from_checkpoint") else 0.0 for r in records]),
        "rescue_rate": rescue_rate(records) if srca_like else None,
        "rescued": sum(1 for r in records if r.get("rescued")),
        "wall_s": _mean([float(r.get("timings", {}).get("total_s", 0.0)) for r in records]),
        "wall_p90_s": _quantile([float(r.get("timings", {}).get("total_s", 0.0)) for r in records], 0.9),
        "engine_calls": usage("engine_calls"),
    }


def _quantile(xs: Sequence[float], q: float) -> float:
    """The ``q`` quantile by the nearest rank (0.0 for none): the value at rank ceil(q * k)."""
    if not xs:
        return 0.0
    ys = sorted(xs)
    return ys[max(0, math.ceil(q * len(ys)) - 1)]


def _row_order(records: Sequence[dict]) -> list[RowKey]:
    """Runs and methods in first-seen order, n ascending."""
    runs: dict[str, None] = {}
    methods: dict[str, None] = {}
    for r in records:
        runs.setdefault(r.get("_run", ""), None)
        methods.setdefault(r["method"], None)
    keys = {(r.get("_run", ""), r["method"], int(r["n"])) for r in records}
    rix, mix = {k: i for i, k in enumerate(runs)}, {k: i for i, k in enumerate(methods)}
    return sorted(keys, key=lambda k: (rix[k[0]], mix[k[1]], k[2]))


def group_by(records: Iterable[dict], key: Callable[[dict], Any]) -> dict[Any, list[dict]]:
    out: dict[Any, list[dict]] = defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return out


def summarize(records: Sequence[dict]) -> list[dict[str, Any]]:
    """One row per (run, method, n): its key fields plus :func:`summarize_group`."""
    groups = group_by(records, lambda r: (r.get("_run", ""), r["method"], int(r["n"])))
    return [{"run": k[0], "method": k[1], "n": k[2], **summarize_group(groups[k])} for k in _row_order(records)]


def breakdown(records: Sequence[dict], field: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """Accuracy per value of ``field`` (``level``, ``subject``) for each (run, method, n).
    Returns (values, rows); each row has ``run, method, n`` and ``cells``:
    value -> (correct, count)."""
    num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    values = sorted({r.get(field) for r in records}, key=lambda v: (v is None, not num(v), v if num(v) else str(v)))
    rows = []
    for k in _row_order(records):
        mine = [r for r in records if (r.get("_run", ""), r["method"], int(r["n"])) == k]
        cells = {v: (sum(1 for r in mine if r.get(field) == v and r["correct"]),
                     sum(1 for r in mine if r.get(field) == v)) for v in values}
        rows.append({"run": k[0], "method": k[1], "n": k[2], "cells": cells})
    return values, rows


def _vote(groups: Sequence[dict], count: Callable[[dict], int]) -> dict | None:
    """The group with the most votes by ``count``; ties to the higher best score, then the
    earlier group (the order the result line lists them in)."""
    live = [g for g in groups if count(g) > 0]
    if not live:
        return None
    return max(enumerate(live), key=lambda ig: (count(ig[1]), float(ig[1].get("best_score", 0.0)), -ig[0]))[1]


def redecide(records: Sequence[dict]) -> list[dict[str, Any]]:
    """Accuracy per (run, method, n) if the final decision had been a vote over the stored
    answer groups of each line (``answers``: paths and checkpoints per group), the search
    itself unchanged: over the whole pool (paths and checkpoint candidates, the ``majority``
    rule of :func:`srca.methods.select.decide`) and over finished paths only. Ties go to the
    higher best score (``decide`` uses the summed score, which lines do not store); a group's
    correctness is that of its first spelling. Lines without ``answers`` count as wrong."""
    groups = group_by(records, lambda r: (r.get("_run", ""), r["method"], int(r["n"])))
    out = []
    for k in _row_order(records):
        rs = groups[k]
        pool = [_vote(r.get("answers") or [], lambda g: int(g.get("paths", 0)) + int(g.get("checkpoints", 0)))
                for r in rs]
        paths = [_vote(r.get("answers") or [], lambda g: int(g.get("paths", 0))) for r in rs]
        ok = lambda picks: _mean([1.0 if (g is not None and g.get("correct")) else 0.0 for g in picks])
        out.append({"run": k[0], "method": k[1], "n": k[2], "count": len(rs),
                    "as_run": _mean([1.0 if r["correct"] else 0.0 for r in rs]),
                    "vote_pool": ok(pool), "vote_paths": ok(paths),
                    "oracle": _mean([1.0 if r.get("any_correct") else 0.0 for r in rs])})
    return out


# -- text ----------------------------------------------------------------------------------

def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in
                                  enumerate(zip(cells, widths))).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def _name(row: dict, with_run: bool) -> str:
    return (f"{row['run']}: " if with_run else "") + f"{row['method']}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _gen_cell(row: dict) -> str:
    """Generated tokens, and how many of them the decision did not read (srca's early waves)."""
    unused = row.get("unused_tokens") or 0.0
    return f"{row['generated_tokens']:.0f}" + (f" ({unused:.0f} unused)" if unused >= 0.5 else "")


def format_summary(rows: Sequence[dict]) -> str:
    with_run = len({r["run"] for r in rows}) > 1
    header = ["method", "n", "problems", "accuracy", "±95%", "oracle", "gen tok", "prefill tok", "probe tok",
              "scorer calls", "from ckpt", "CCA rescue", "s / problem (p90)", "engine calls"]
    body = [[_name(r, with_run), str(r["n"]), str(r["count"]), _pct(r["accuracy"]), f"{100 * r['ci95']:.1f}",
             _pct(r["oracle"]), _gen_cell(r), f"{r['prefilled_tokens']:.0f}",
             f"{r['probe_tokens']:.0f}", f"{r['scorer_calls']:.1f}", _pct(r["from_checkpoint"]),
             "-" if r["rescue_rate"] is None else f"{_pct(r['rescue_rate'])} ({r['rescued']}/{r['correct']})",
             f"{r['wall_s']:.1f} ({r['wall_p90_s']:.1f})", f"{r['engine_calls']:.1f}"]
            for r in rows]
    return _table(header, body)


def format_breakdown(field: str, values: Sequence[Any], rows: Sequence[dict]) -> str:
    with_run = len({r["run"] for r in rows}) > 1
    header = ["method", "n", *(f"{field} {v}" for v in values)]
    body = []
    for r in rows:
        cells = []
        for v in values:
            c, t = r["cells"][v]
            cells.append(f"{100 * c / t:.0f}% ({c}/{t})" if t else "-")
        body.append([_name(r, with_run), str(r["n"]), *cells])
    return _table(header, body)


def format_redecide(rows: Sequence[dict]) -> str:
    with_run = len({r["run"] for r in rows}) > 1
    header = ["method", "n", "problems", "as run", "vote: pool", "vote: paths", "oracle"]
    body = [[_name(r, with_run), str(r["n"]), str(r["count"]), _pct(r["as_run"]), _pct(r["vote_pool"]),
             _pct(r["vote_paths"]), _pct(r["oracle"])] for r in rows]
    return _table(header, body)


def render(records: Sequence[dict]) -> str:
    """The whole text report: summary, per level, per subject, other decision rules."""
    if not records:
        return "no result lines"
    parts = ["Accuracy per method x n (tokens are means per problem; prefill = prompt tokens not from cache)",
             format_summary(summarize(records))]
    for field in ("level", "subject"):
        values, rows = breakdown(records, field)
        if any(v is not None for v in values):
            parts += ["", f"Accuracy per {field}", format_breakdown(field, values, rows)]
    if any(r.get("answers") for r in records):
        parts += ["", "Other decision rules over the same candidate pools (the search unchanged; recomputed from each "
                  "line's answer groups, ties to the higher best score)", format_redecide(redecide(records))]
    return "\n".join(parts)


def save_figure(fig: Any, out: str, dpi: int = 120, colors: int = 64) -> None:
    """``fig`` (matplotlib) to ``out``; a ``.png`` as a palette image of ``colors`` colours (line
    plots use a few: a third of the bytes of a full-colour one, and plots are committed beside
    the results they draw), any other suffix as matplotlib writes it."""
    if not out.lower().endswith(".png"):
        fig.savefig(out, dpi=dpi)
        return
    import io

    from PIL import Image  # matplotlib's own dependency

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(colors=colors).save(out, optimize=True)


def plot(records: Sequence[dict], out: str) -> None:
    """Accuracy against mean generated tokens, one line per (run,) method over its n values."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # a dependency of srca: only a broken install lacks it
        raise RuntimeError(f"--plot: matplotlib does not import ({e}); it is a dependency of srca, "
                           "reinstall it (pip install -e .)") from None
    rows = summarize(records)
    with_run = len({r["run"] for r in rows}) > 1
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, pts in group_by(rows, lambda r: _name(r, with_run)).items():
        pts = sorted(pts, key=lambda r: r["generated_tokens"])
        xs, ys = [max(p["generated_tokens"], 1.0) for p in pts], [100 * p["accuracy"] for p in pts]
        ax.plot(xs, ys, marker="o", label=name)
        for x, y, p in zip(xs, ys, pts):
            ax.annotate(f"n={p['n']}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("mean generated tokens per problem (log)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
