"""Offline study of early-exit policies for SRCA's lineage search over the sample bank (CPU only).

    python benchmarks/early_exit_study.py benchmarks/results/srca_study_h200/bank --split-salt ":b" \\
        --out benchmarks/results/srca_study_h200/early_exit.json.gz

Question (an open issue): can an early exit reach majority@16's accuracy with <= 60% of its
generated tokens, on the same samples (paired), tuned on the ``tune`` half only and reported on
the ``test`` half?

Every policy here is a *staged lockstep* search over the bank's 16 i.i.d. samples of a problem,
drawn in index order:

* ``stages``: lineages are launched in waves, e.g. ``(16,)`` (all at once, as
  :mod:`srca.methods.lineage` does today), ``(4, 4, 8)`` or ``(4,) * 4`` (ESC-like waves); a wave
  starts only once the previous one has ended without a stop;
* ``sync``: inside a wave the lineages advance one step at a time (``step``: the online search's
  step-synchronous rounds, a stop is decided after a round) or token by token (``token``: one
  batched generation whose stop is decided the moment a lineage finishes);
* stop (ESC / DeepConf's consensus): once at least ``m`` lineages have finished with an answer
  and the leading answer holds at least ``tau`` of them (by count, or confidence-weighted);
* kill (DeepConf-online): a lineage whose lowest sliding-window mean log-probability
  (``kill_window`` tokens) falls below a threshold is stopped and casts no vote; the threshold
  is absolute (``kill="abs"``, ``theta``) or DeepConf's: the ``pct`` percentile of the lowest
  window confidences of the first wave (``kill="warm"``, the warm-up, which runs unkilled);
  ``kill_at`` says whether the kill lands at the token (needs a confidence stop in the engine)
  or after the step (what the online search can do without engine changes);
* decision: :func:`srca.methods.consensus.vote` over the lineages that ended (a lineage cut at
  ``max_new_tokens`` votes its checkpoint probe at ``checkpoint_weight``, paying the probe's
  tokens, as :func:`srca.eval.bank.replay_lineages` does with ``probe_at="cut"``).

Token accounting, as ``replay_lineages``: a lineage pays the tokens of the steps it generated
(up to its first finished step; a killed one up to the kill), plus probe tokens; lineages still
running at a stop pay what they generated so far and cast no vote. Majority@16 pays each whole
sample's ``tokens`` (its ballot: the sample's ``answer``); the bank's kept steps hold 99.9% of them.
(Without an exit the online default generates each lineage whole and so pays majority's tokens
plus its probes, as ``replay_lineages`` counts it; here every policy pays its kept steps, so the
no-exit row reads 0.999 where the study table reads 1.001.)
Latency proxy: ``waves`` (sequential launches) and ``seq_tokens`` (the longest lineage's tokens
summed over the waves: the decode steps one waits for).

The bank has only the sampled tokens' log-probabilities (no top-k), so confidences are those.
The search runs on ``tune``; the chosen rule is the cheapest whose tune accuracy is at least
majority@16's, pooled over 4 sample orders (the index order and 3 random ones: one order's luck
moves a half by a point or two); it is then reported on ``test`` and on all problems in the index
order, and as mean +- sd over 8 other random orders, with the tune Pareto front.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import random
import sys
from dataclasses import dataclass
from typing import Sequence
from functools import lru_cache

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from srca.answers import equivalent  # noqa: E402
from srca.config import SearchConfig  # noqa: E402
from srca.eval.bank import bank_files, half, read_bank, replay_majority, unpack  # noqa: E402
from srca.eval.grading import grade  # noqa: E402
from srca.eval.report import ci95  # noqa: E402
from srca.methods.consensus import Ballot, group_labels, trace_confidence, vote  # noqa: E402

N = 16


@lru_cache(maxsize=None)
def _grade(ans: str | None, gold: str) -> bool:
    return grade(ans, gold)


@lru_cache(maxsize=None)
def _eq(a: str, b: str) -> bool:
    return equivalent(a, b)


@dataclass(frozen=True)
class Exit:
    """An early-exit policy (see the module docstring)."""

    stages: tuple = (16,)
    sync: str = "step"  # step | token
    m: int = 0  # finished lineages needed before a stop (0: no stop)
    tau: float = 1.0  # leading answer's share of the finished lineages for a stop
    weighted_stop: bool = False
    kill: str = "none"  # none | abs | warm
    kill_window: int = 64
    theta: float = 0.0  # kill="abs": mean log-probability threshold
    pct: float = 10.0  # kill="warm": percentile of the warm-up's lowest-window confidences
    kill_at: str = "step"  # step | token
    confidence: str = "tail"  # the vote's path confidence (srca.methods.consensus.trace_confidence)
    confidence_window: int = 64
    keep_top: float = 0.5
    checkpoint_weight: float = 0.25
    weighted: bool = True

    def name(self) -> str:
        s = f"waves{'+'.join(map(str, self.stages))}/{self.sync}"
        if self.m:
            s += f" stop m>={self.m} tau>={self.tau}{'w' if self.weighted_stop else ''}"
        if self.kill == "abs":
            s += f" kill lowest{self.kill_window}<{self.theta}@{self.kill_at}"
        elif self.kill == "warm":
            s += f" kill lowest{self.kill_window}<p{self.pct:g}(wave1)@{self.kill_at}"
        vote_name = "majority" if self.confidence == "none" and self.keep_top == 1 else \
            f"{self.confidence}{self.confidence_window} keep{self.keep_top}"
        return s + f" | vote {vote_name}"


# -- per-sample arrays ---------------------------------------------------------------------------
def prepare(line: dict, max_steps: int = SearchConfig().max_steps) -> list[dict]:
    """Per sample: cumulative step ends, the ballot it casts when it ends by itself, the
    probe tokens that ballot costs, and its sampled-token log-probabilities. A lineage still
    open after ``max_steps`` steps ends there and votes its last probe (as replay_lineages)."""
    out = []
    for s in line["samples"]:
        steps = s["steps"][:max_steps]
        ntok, end, ans, ptok = steps[-1]
        cum = np.cumsum([st[0] for st in steps])
        kind = "path" if end == "path" else "checkpoint"
        out.append({"cum": cum, "kind": kind, "answer": ans, "probe": 0 if end == "path" else ptok,
                    "lp": np.asarray(unpack(s["lp"])[:int(cum[-1])]), "_low": {}})
    return out


def lowest_prefix(smp: dict, w: int) -> np.ndarray:
    """``low[t]``: the lowest mean log-probability over windows of ``w`` tokens inside the first
    ``t + 1`` tokens (+inf before the first full window)."""
    if w not in smp["_low"]:
        x = smp["lp"]
        low = np.full(len(x), np.inf)
        if len(x) >= w:
            c = np.concatenate([[0.0], np.cumsum(x)])
            low[w - 1:] = np.minimum.accumulate((c[w:] - c[:-w]) / w)
        smp["_low"][w] = low
    return smp["_low"][w]


def whole_lowest(smp: dict, w: int) -> float:
    """The path's lowest-window mean log-probability (its mean when shorter than a window)."""
    x = smp["lp"]
    if not len(x):
        return 0.0
    return float(lowest_prefix(smp, w)[-1]) if len(x) >= w else float(x.mean())


# -- one problem ---------------------------------------------------------------------------------
@dataclass
class Lane:
    """One lineage of a wave: when it ends (rounds or tokens, by ``sync``), what it has paid
    then, and its ballot (None: killed or no answer)."""

    idx: int
    smp: dict
    end: float
    paid: int
    ballot: Ballot | None

    def paid_at(self, t: float, sync: str) -> int:
        """Tokens generated by time ``t`` (< ``end``: still running)."""
        if t >= self.end:
            return self.paid
        return int(self.smp["cum"][int(t) - 1]) if sync == "step" else int(t)


def lane(idx: int, smp: dict, p: Exit, theta: float | None) -> Lane:
    """Run one lineage to its end: its first finished step, its cut, or its kill."""
    cum, n = smp["cum"], len(smp["cum"])
    k = None  # the token at which the lineage is killed
    if theta is not None:
        low = lowest_prefix(smp, p.kill_window)
        hits = np.flatnonzero(low < theta)
        if len(hits):
            k = int(hits[0]) + 1
        elif len(smp["lp"]) < p.kill_window and whole_lowest(smp, p.kill_window) < theta:
            k = int(cum[-1])  # too short for a window: judged on its whole, once it ends
    if k is None:
        paid = int(cum[-1]) + smp["probe"]
        conf = trace_confidence(smp["lp"].tolist(), p.confidence, p.confidence_window)
        b = Ballot(smp["answer"], smp["kind"], conf) if smp["answer"] is not None else None
        return Lane(idx, smp, n if p.sync == "step" else int(cum[-1]), paid, b)
    s = int(np.searchsorted(cum, k))  # the step holding token k
    paid = k if p.kill_at == "token" else int(cum[s])
    return Lane(idx, smp, s + 1 if p.sync == "step" else paid, paid, None)


def stop_now(ballots: dict[int, Ballot], p: Exit) -> bool:
    """ESC / DeepConf consensus over the finished lineages' answers."""
    full = [b for b in ballots.values() if b.kind == "path"]
    if not p.m or len(full) < p.m:
        return False
    labels = group_labels([b.answer for b in full], _eq)
    w = [b.confidence if p.weighted_stop else 1.0 for b in full]
    tot: dict[int, float] = {}
    for g, x in zip(labels, w):
        tot[g] = tot.get(g, 0.0) + x
    return max(tot.values()) >= p.tau * sum(w) - 1e-12


def run_wave(lanes: list[Lane], ballots: dict[int, Ballot], p: Exit) -> tuple[bool, int, int]:
    """Advance one wave; ``ballots`` (lineage -> ballot) gains the lineages that end before a stop.
    Returns (stopped, tokens paid, the wave's sequential tokens)."""
    for t in sorted({ln.end for ln in lanes}):
        ballots.update((ln.idx, ln.ballot) for ln in lanes if ln.end == t and ln.ballot is not None)
        if stop_now(ballots, p):
            paid = [ln.paid_at(t, p.sync) for ln in lanes]
            return True, sum(paid), max(paid)
    return False, sum(ln.paid for ln in lanes), max(ln.paid for ln in lanes)


def simulate(S: list[dict], p: Exit, order: list[int]) -> tuple[str | None, int, int, int]:
    """One problem: (answer, tokens, waves, sequential tokens)."""
    ballots: dict[int, Ballot] = {}
    tokens = seq = waves = 0
    theta = p.theta if p.kill == "abs" else None
    start = 0
    for size in p.stages:
        lanes = [lane(i, S[i], p, theta) for i in order[start:start + size]]
        start += size
        waves += 1
        stopped, paid, wseq = run_wave(lanes, ballots, p)
        tokens, seq = tokens + paid, seq + wseq
        if stopped:
            break
        if p.kill == "warm" and waves == 1:  # DeepConf: the warm-up sets the bar, and meets it
            theta = float(np.percentile([whole_lowest(ln.smp, p.kill_window) for ln in lanes], p.pct))
            ballots = {ln.idx: ballots[ln.idx] for ln in lanes
                       if ln.idx in ballots and whole_lowest(ln.smp, p.kill_window) >= theta}
    ordered = [ballots[i] for i in sorted(ballots)]  # lineage order, as replay_lineages votes
    t = vote(ordered, _eq, keep_top=p.keep_top, checkpoint_weight=p.checkpoint_weight, weighted=p.weighted)
    return (ordered[t.winner].answer if t.winner is not None else None), tokens, waves, seq


# -- scoring ---------------------------------------------------------------------------------------
def order_of(ln: dict, r: int) -> list[int]:
    """Draw ``r`` of a problem's sample order: 0 is the index order, others random."""
    order = list(range(N))
    if r:
        random.Random(f"order:{r}:{ln['unique_id']}").shuffle(order)
    return order


@lru_cache(maxsize=None)
def _majority(uid: str, line_id: int) -> tuple:
    ln = _LINES[line_id]
    o = replay_majority(ln, list(range(N)))
    return o.answer, o.tokens, 1, max(s["tokens"] for s in ln["samples"])


_LINES: dict[int, dict] = {}


def score(lines: list[dict], prep: dict, p: Exit | None, draws: Sequence[int] = (0,)) -> list[tuple]:
    """Per problem and order draw (correct, tokens, waves, sequential tokens); ``p`` None:
    majority@16 (the same for every draw: it does not depend on the order)."""
    out = []
    for ln, r in itertools.product(lines, draws):
        if p is None:
            _LINES[id(ln)] = ln
            ans, tok, waves, seq = _majority(ln["unique_id"], id(ln))
        else:
            ans, tok, waves, seq = simulate(prep[ln["unique_id"]], p, order_of(ln, r))
        out.append((_grade(ans, ln["answer"]), tok, waves, seq))
    return out


def summary(per: list[tuple], maj: list[tuple]) -> dict:
    """Accuracy, interval, paired wins/losses and token ratios against majority@16."""
    n = len(per)
    acc = sum(c for c, *_ in per) / n
    wins = sum(1 for a, b in zip(per, maj) if a[0] and not b[0])
    losses = sum(1 for a, b in zip(per, maj) if b[0] and not a[0])
    mtok = sum(t for _, t, *_ in maj)
    return {"problems": n, "accuracy": round(100 * acc, 2),
            "ci95": [round(100 * (acc - ci95(acc, n)), 1), round(100 * (acc + ci95(acc, n)), 1)],
            "vs_majority": f"+{wins}/-{losses}", "tokens": round(sum(t for _, t, *_ in per) / n, 1),
            "token_ratio": round(sum(t for _, t, *_ in per) / mtok, 3),
            "waves": round(sum(w for *_, w, _ in per) / n, 2),
            "seq_ratio": round(sum(s for *_, s in per) / sum(s for *_, s in maj), 3)}


def permuted(lines: list[dict], prep: dict, p: Exit, maj: list[tuple], k: int) -> dict:
    """Mean accuracy and token ratio over ``k`` random orders of the 16 samples, the index
    order not among them (majority@16 does not depend on the order)."""
    accs, ratios = [], []
    for r in range(1, k + 1):
        s = summary(score(lines, prep, p, (r,)), maj)
        accs.append(s["accuracy"])
        ratios.append(s["token_ratio"])
    return {"orders": k, "accuracy_mean": round(float(np.mean(accs)), 2), "accuracy_sd": round(float(np.std(accs)), 2),
            "token_ratio_mean": round(float(np.mean(ratios)), 3)}


# -- the search on the tune half -------------------------------------------------------------------
STAGES = [(16,), (8, 8), (6, 10), (4, 12), (4, 4, 8), (4, 4, 4, 4), (2, 2, 4, 8), (2,) * 8]
VOTES = {"default": {}, "keep75": {"keep_top": 0.75},
         "majority": {"confidence": "none", "keep_top": 1.0, "weighted": False}}
TUNE_DRAWS = range(4)  # tune on the index order and 3 random orders: less luck of one order


def stop_grid() -> list[Exit]:
    """Waves x synchrony x consensus stop x vote, no kill."""
    out = []
    for st, sync, m, tau, v in itertools.product(STAGES, ["step", "token"], [2, 3, 4, 6],
                                                 [0.5, 0.6, 0.75, 0.9, 1.0], VOTES):
        out.append(Exit(stages=st, sync=sync, m=m, tau=tau, **VOTES[v]))
    for st, sync in itertools.product(STAGES[:1], ["step", "token"]):  # no stop at all: the kill alone
        out += [Exit(stages=st, sync=sync, **VOTES[v]) for v in VOTES]
    return out


def kill_grid(bases: list[Exit], thetas: dict[int, list[float]]) -> list[Exit]:
    """DeepConf-style kills on top of ``bases``: absolute thresholds (``thetas`` per window,
    quantiles of the tune half's lowest-window confidences) and warm-up percentiles."""
    out = []
    for b, w, at in itertools.product(bases, [32, 64, 128], ["step", "token"]):
        out += [dataclasses.replace(b, kill="abs", kill_window=w, theta=t, kill_at=at) for t in thetas[w]]
        if len(b.stages) > 1:
            out += [dataclasses.replace(b, kill="warm", kill_window=w, pct=q, kill_at=at) for q in (10, 30, 50, 90)]
    return out


def evaluate(cands: list[Exit], lines: list[dict], prep: dict, maj: list[tuple]) -> list[tuple[Exit, dict]]:
    return [(p, summary(score(lines, prep, p, TUNE_DRAWS), maj)) for p in cands]


def front(res: list[tuple[Exit, dict]]) -> list[tuple[Exit, dict]]:
    """The accuracy / token Pareto front (cheapest first)."""
    out, best = [], -1.0
    for p, s in sorted(res, key=lambda x: (x[1]["token_ratio"], -x[1]["accuracy"])):
        if s["accuracy"] > best:
            out.append((p, s))
            best = s["accuracy"]
    return out


def cheapest_at(res: list[tuple[Exit, dict]], acc: float) -> tuple[Exit, dict] | None:
    ok = [(s["token_ratio"], s["seq_ratio"], -s["accuracy"], i) for i, (p, s) in enumerate(res) if s["accuracy"] >= acc]
    return res[min(ok)[3]] if ok else None


def tune(lines: list[dict], prep: dict) -> dict:
    """The coordinate search on ``lines`` (the tune half): stops first, then kills on the
    cheapest stops that keep majority's accuracy and on the plain lockstep."""
    maj = score(lines, prep, None, TUNE_DRAWS)
    bar = summary(maj, maj)["accuracy"]
    res = evaluate(stop_grid(), lines, prep, maj)
    print(f"  tune: {len(res)} stop rules; majority {bar:.2f}%", flush=True)
    ok = sorted([r for r in res if r[1]["accuracy"] >= bar - 1.0], key=lambda r: r[1]["token_ratio"])[:12]
    bases = [p for p, _ in ok] + [Exit(), Exit(**VOTES["majority"]), Exit(sync="token")]
    lows = {w: [whole_lowest(s, w) for ln in lines for s in prep[ln["unique_id"]]] for w in (32, 64, 128)}
    thetas = {w: [round(float(np.percentile(v, q)), 3) for q in (5, 10, 20, 30)] for w, v in lows.items()}
    res += evaluate(kill_grid(bases, thetas), lines, prep, maj)
    print(f"  tune: {len(res)} rules in all", flush=True)
    return {"majority": bar, "results": res, "thetas": thetas}


FAMILIES = {
    "lockstep-16 + stop": lambda p: p.stages == (16,) and p.kill == "none",
    "waves + stop": lambda p: len(p.stages) > 1 and p.kill == "none",
    "DeepConf-online (warm-up bar)": lambda p: p.kill == "warm",
    "absolute kill": lambda p: p.kill == "abs",
}


def picks(t: dict) -> dict[str, Exit]:
    """The rules to report, all picked on tune: the chosen one (cheapest at majority's
    accuracy), the best of each family, the best at <= 60% tokens, the tune Pareto front."""
    res, bar = t["results"], t["majority"]
    out = {"majority@16": None, "srca default (no exit)": Exit()}
    chosen = cheapest_at(res, bar)
    if chosen:
        out["CHOSEN: cheapest at tune majority accuracy"] = chosen[0]
    for name, f in FAMILIES.items():
        r = cheapest_at([x for x in res if f(x[0])], bar)
        if r:
            out[f"best {name}"] = r[0]
    cheap = [x for x in res if x[1]["token_ratio"] <= 0.6]
    if cheap:
        out["most accurate at <= 0.60x tokens"] = max(cheap, key=lambda x: (x[1]["accuracy"], -x[1]["token_ratio"]))[0]
    for i, (p, _) in enumerate(front(res)):
        out.setdefault(f"front {i}", p)
    return out


def report(named: dict, halves: dict, prep: dict, orders: int) -> list[dict]:
    rows = []
    print("\n| policy | half | accuracy % | 95% CI | vs majority@16 | x majority tokens | waves | x majority seq. tokens |"
          f" {orders} orders: acc / x tokens | rule |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, p in named.items():
        for hname, lines in halves.items():
            draws = TUNE_DRAWS if hname == "tune" else (0,)  # tune: as the search saw it
            maj = score(lines, prep, None, draws)
            s = summary(score(lines, prep, p, draws), maj)
            if p is not None and orders and not name.startswith("front") and hname != "tune":
                s["permuted"] = permuted(lines, prep, p, maj, orders)
            perm = s.get("permuted")
            ptxt = f"{perm['accuracy_mean']} ± {perm['accuracy_sd']} / {perm['token_ratio_mean']}" if perm else ""
            rule = p.name() if p else "all 16 whole samples, plain vote"
            print(f"| {name} | {hname} | {s['accuracy']:.1f} | {s['ci95'][0]}-{s['ci95'][1]} | {s['vs_majority']} "
                  f"| {s['token_ratio']:.3f} | {s['waves']} | {s['seq_ratio']:.3f} | {ptxt} | {rule} |", flush=True)
            rows.append({"policy": name, "half": hname, "rule": rule,
                         "settings": dataclasses.asdict(p) if p else None, **s})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bank", help="bank folder (chunk_*.jsonl.gz)")
    ap.add_argument("--split-salt", default="")
    ap.add_argument("--orders", type=int, default=8, help="random sample orders for the robustness check")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    files = bank_files(a.bank)
    lines = [ln for ln in read_bank(files) if len(ln["samples"]) >= N]
    prep = {ln["unique_id"]: prepare(ln) for ln in lines}
    halves = {h: [ln for ln in lines if half(ln["unique_id"], a.split_salt) == h] for h in ("tune", "test")}
    halves["all"] = lines
    print(f"{len(lines)} problems ({len(halves['tune'])} tune, {len(halves['test'])} test)", flush=True)
    t = tune(halves["tune"], prep)
    named = picks(t)
    rows = report(named, halves, prep, a.orders)
    tune_front = [{"rule": p.name(), **s} for p, s in front(t["results"])]
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w") as f:
            json.dump({"bank": files, "split_salt": a.split_salt, "tune_majority": t["majority"],
                       "abs_thetas": t["thetas"], "rules_searched": len(t["results"]), "rows": rows,
                       "tune_front": tune_front}, f, indent=1)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
