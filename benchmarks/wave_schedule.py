"""How SRCA's wave schedules fill one GPU over a whole eval: a model over a sample bank (CPU only).

    python benchmarks/wave_schedule.py BANK --problems 200,500 \\
        --cost benchmarks/results/batch_cost_h100_eleventh.json \\
        --cost benchmarks/results/batch_cost_h200_tenth.json \\
        --jobs majority,srca,srca-overlap,srca-spec,srca-nowaves --policy '{"wave_overlap": 512}' \\
        --out benchmarks/results/wave_schedule_bank2.json.gz

Why: an eval's wall on one GPU is not its tokens over a fixed rate. Every decode iteration
decodes one token of each running sequence, and what an iteration costs grows slower than the
running batch (the real-workload runs: 29 ms at 795 running, 64 ms at 2,656 on the eleventh
run's H100; ``batch_cost.py``). srca's waves run a hard problem's samples in up to three lengths
one after another, so its last solves decode nearly alone: the eleventh run's srca@16 kept 1,141
sequences running on average against majority@16's 2,656 and finished in 0.95x the raw
engine's wall at 0.73x its tokens. Whether starting waves earlier (``wave_overlap``,
``wave_speculate``) buys more in iterations than it costs in tokens depends on that cost curve,
which differs between machines; this replays the bank's samples through each schedule.

The model: an eval's solves are admitted as :mod:`srca.admission` admits them (``--admission``):
``load`` (``Solver(admit="load")``) starts the next solve whenever the sequences running leave room in
``--capacity`` for its width (at most 1,024 solves, their widths at most 1.5x the batch);
``width``, a Solver's default, as many at once as their widths fit (majority@16 and every
schedule whose waves may all run at once: 256; srca@16's waves of at most 6: 682, so all of
MATH-500), the next when one ends. Every running sequence decodes one token per iteration (no
queueing: a burst past ``--capacity`` is taken as decoded at once; the raw phase, every prompt
x 16 in one call, queues the rest in order), and an iteration with ``b`` sequences running costs ``c * b ** p``
milliseconds, fitted by least squares (log-log) to a ``batch_cost.py`` JSON's sampling jobs
(majority, best-of-N, srca: tree searches pay for step prefills besides). A wave's samples are
the bank's first 16 of the problem in order, with each sample's token count; a lineage the
token limit cut is probed after its wave (its probe tokens decode then); a solve decides after
a wave once it and every earlier wave have ended (the decisions of
:func:`srca.eval.bank.replay_lineages`, which this reuses: same waves, same stops); waves
started early and not needed are aborted at that decision, their tokens so far counted as
unused. ``wave_overlap`` D: the next wave starts once the current one has run
``min(D, its longest sample)`` tokens; ``wave_speculate``: when the second wave (or a later
one) goes out, the next one goes with it if the running sequences leave room for it and, admitted
by load, no solve waits for admission (as the solver's load count decides it; checked at that
moment only). Not modelled: prefill time, the controller's own time, SGLang's
admission of a burst in prefill chunks. Compare schedules with each other under one cost model;
the ratio to the raw phase is the model's, to be checked on the GPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import heapq
import itertools
import json
import math
import os
import random
import sys
from dataclasses import dataclass
from typing import Callable

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402
from srca.admission import MAX_AUTO_CONCURRENCY, OVERCOMMIT, width  # noqa: E402
from srca.answers import equivalent  # noqa: E402
from srca.config import SearchConfig  # noqa: E402
from srca.eval import config_for  # noqa: E402
from srca.eval.bank import Policy, bank_files, read_bank, replay_lineages  # noqa: E402
from srca.methods.consensus import Ballot, config_wave_sizes, wave_settled  # noqa: E402

N = 16
TREE_JOBS = ("dvts", "beam", "srca-paper")  # step-by-step searches: their iterations also pay for step prefills


@dataclass
class Lineage:
    ballot: Ballot | None  # what it votes once its wave is decided
    tokens: int  # generated whole
    probe: int  # its checkpoint probe's tokens (a lineage the token limit cut), else 0


@dataclass
class Problem:
    lineages: list[Lineage]


def lineages_of(line: dict, c: SearchConfig) -> Problem:
    """Each of the problem's first ``c.n`` samples as the lineage it is in ``c``'s search (its
    ballot and probe: :func:`replay_lineages` of that sample alone)."""
    pol = dataclasses.replace(Policy.from_config(c), n=1, waves=1, wave_overlap=0, wave_speculate=False)
    out = []
    for i in range(c.n):
        o = replay_lineages(line, [i], pol)
        out.append(Lineage(o.ballots[0] if o.ballots else None, line["samples"][i]["tokens"], o.probe_tokens))
    return Problem(out)


def waves_needed(p: Problem, c: SearchConfig) -> int:
    """How many of its waves the search runs (the first whose vote is clear stops it)."""
    sizes = config_wave_sizes(c)
    upto = 0
    for w, size in enumerate(sizes[:-1]):
        upto += size
        bs = [x.ballot for x in p.lineages[:upto] if x.ballot is not None]
        if wave_settled(bs, equivalent, c.wave_consensus, c.wave_min, keep_top=c.keep_top,
                        checkpoint_weight=c.checkpoint_weight, keep_min=c.keep_min, margin=c.wave_margin,
                        remaining=c.n - upto):
            return w + 1
    return len(sizes)


def fit_cost(path: str) -> tuple[float, float, list[dict]]:
    """``(c, p)`` of ``ms = c * running ** p`` over a batch_cost JSON's sampling jobs."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rt") as f:
        rows = [r for r in json.load(f)["rows"] if not r["job"].split("@")[0].split(":")[0].startswith(TREE_JOBS)]
    if len(rows) < 2:
        raise SystemExit(f"--cost {path}: needs two sampling jobs (majority, best_of_n, srca) to fit")
    xs = [math.log(r["mean_running"]) for r in rows]
    ys = [math.log(r["ms_per_iteration"]) for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    p = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return math.exp(my - p * mx), p, rows


class Run:
    """One job's schedule over every problem (event-driven; time in decode iterations)."""

    def __init__(self, problems: list[Problem], c: SearchConfig | None, concurrency: int | None, capacity: int,
                 cost: Callable[[int], float], by_load: bool = False, width: int = 1) -> None:
        """``concurrency`` solves at once; or ``by_load``: as :class:`srca.admission.LoadSlots`
        admits, a solve of ``width`` sequences once the running ones leave room for it (at most
        ``concurrency`` solves, their widths at most ``OVERCOMMIT`` times the batch)."""
        self.P, self.c, self.capacity, self.cost = problems, c, capacity, cost
        self.by_load, self.width = by_load, width
        self.holders = 0
        self.queue: list[int] = []  # solves not admitted yet
        if c is None:  # majority: every sample in one call
            self.sizes = [len(problems[0].lineages) if problems else 0]
        else:
            self.sizes = config_wave_sizes(c)
        self.need = [1] * len(problems) if c is None else [waves_needed(p, c) for p in problems]
        self.overlap = 0 if c is None or len(self.sizes) < 2 or c.wave_overlap >= c.max_new_tokens else c.wave_overlap
        self.spec = bool(c is not None and c.wave_speculate and len(self.sizes) > 1 and not self.overlap)
        self.limit = concurrency or len(problems)
        self.ev: list[tuple] = []
        self.k = 0
        self.running = 0
        self.start: list[list[int | None]] = [[None] * len(self.sizes) for _ in problems]
        self.decided = [0] * len(problems)
        self.pending: set[tuple[int, int]] = set()  # (solve, wave) decisions already scheduled
        self.done: list[tuple[int, int] | None] = [None] * len(problems)
        self.unused = 0
        self.live: set[tuple[int, int]] = set()  # (solve, lineage) sequences decoding now
        self.now = 0

    def push(self, t: float, kind: str, s: int, w: int, extra: int = 0) -> None:
        self.k += 1
        heapq.heappush(self.ev, (t, self.k, kind, s, w, extra))

    def rows(self, w: int) -> range:
        a = sum(self.sizes[:w])
        return range(a, a + self.sizes[w])

    def wave_end(self, s: int, w: int) -> int:
        return self.start[s][w] + max(self.P[s].lineages[i].tokens for i in self.rows(w))

    def launch(self, t: int, s: int, w: int) -> None:
        self.start[s][w] = t
        for i in self.rows(w):
            self.live.add((s, i))
            self.push(t + self.P[s].lineages[i].tokens, "end", s, w, i)
        self.running += self.sizes[w]
        self.schedule_decision(s)
        if self.overlap and w + 1 < len(self.sizes):
            self.push(t + min(self.overlap, self.wave_end(s, w) - t), "overlap", s, w + 1)
        # a speculated wave takes room only no solve waits for (admitted by load: the admission
        # tells the load it has solves waiting, EngineLoad.waiting)
        if self.spec and 2 <= w + 1 < len(self.sizes) and self.start[s][w + 1] is None \
                and not (self.by_load and self.queue) and self.running + self.sizes[w + 1] <= self.capacity:
            self.launch(t, s, w + 1)

    def schedule_decision(self, s: int) -> None:
        w = self.decided[s]
        if (s, w) not in self.pending and all(self.start[s][j] is not None for j in range(w + 1)):
            self.pending.add((s, w))
            # the decision after wave w reads its samples once they and the earlier decisions are
            # in (a wave started early may have ended before the decision before it)
            ends = max([self.wave_end(s, j) for j in range(w + 1)] + [self.now])
            # majority voting probes nothing; a search probes the lineages the token limit cut
            probes = [self.P[s].lineages[i].probe if self.c is not None else 0 for i in self.rows(w)]
            for q in probes:  # the wave's cut lineages, probed once it has ended
                if q:
                    self.push(ends, "probe", s, w, q)
            self.push(ends + max(probes), "decide", s, w)

    def admit(self, t: int, queue: list[int]) -> None:
        """Start the next solves the admission lets in now."""
        while queue and self.holders < self.limit and (
                not self.by_load or self.holders == 0
                or ((self.holders + 1) * self.width <= OVERCOMMIT * self.capacity
                    and self.running + self.width <= self.capacity)):
            self.holders += 1
            self.launch(t, queue.pop(), 0)

    def simulate(self) -> dict:
        queue = self.queue = list(range(len(self.P)))[::-1]
        self.admit(0, queue)
        last, wall_ms, tokens, iters = 0, 0.0, 0, 0
        while self.ev:
            t, _, kind, s, w, extra = heapq.heappop(self.ev)
            self.now = t
            if t > last and self.running:
                wall_ms += (t - last) * self.cost(self.running)
                tokens += (t - last) * self.running
                iters += t - last
            last = t
            if kind == "probe":  # its sequence decodes `extra` tokens from now
                self.running += 1
                self.push(t + extra, "probe_end", s, w)
            elif kind == "probe_end":
                self.running -= 1
            elif kind == "end":
                if (s, extra) in self.live:  # not aborted
                    self.live.discard((s, extra))
                    self.running -= 1
            elif kind == "overlap":
                if self.done[s] is None and self.start[s][w] is None:
                    self.launch(t, s, w)
            elif kind == "decide" and self.done[s] is None and self.decided[s] == w:
                self.decided[s] = w + 1
                if w + 1 >= self.need[s]:
                    self.done[s] = (t, w + 1)
                    for j in range(w + 1, len(self.sizes)):  # waves started early, not needed: aborted
                        if self.start[s][j] is not None:
                            for i in self.rows(j):
                                self.unused += min(self.P[s].lineages[i].tokens, t - self.start[s][j])
                                if (s, i) in self.live:
                                    self.live.discard((s, i))
                                    self.running -= 1
                            self.start[s][j] = None
                    self.holders -= 1
                elif self.start[s][w + 1] is None:
                    self.launch(t, s, w + 1)
                else:
                    self.schedule_decision(s)
            self.admit(t, queue)  # a sequence or a solve ended: room for the next solves
        lat = [d[0] for d in self.done if d is not None]
        return {"wall_s": wall_ms / 1000, "tokens": tokens, "unused_tokens": self.unused, "iterations": iters,
                "mean_running": tokens / max(1, iters), "mean_solve_iterations": sum(lat) / max(1, len(lat))}


def raw_phase(problems: list[Problem], capacity: int, cost: Callable[[int], float]) -> dict:
    """Every prompt x 16 in one call: the first ``capacity`` decode, the rest wait in order."""
    lens = [x.tokens for p in problems for x in p.lineages]
    t, wall_ms, nxt, run = 0, 0.0, 0, []
    while nxt < len(lens) or run:
        while nxt < len(lens) and len(run) < capacity:
            heapq.heappush(run, t + lens[nxt])
            nxt += 1
        end = run[0]
        wall_ms += (end - t) * cost(len(run))
        t = end
        while run and run[0] <= t:
            heapq.heappop(run)
    return {"wall_s": wall_ms / 1000, "tokens": sum(lens), "iterations": t}


def auto_concurrency(c: SearchConfig, capacity: int) -> int:
    """The solves an eval admits at once by their width (:mod:`srca.admission`), all of one kind."""
    return min(MAX_AUTO_CONCURRENCY, max(1, capacity // width(c)))


def parse_jobs(jobs: str, policies: list[str], n: int, capacity: int) -> list[tuple[str, SearchConfig, bool, int]]:
    """(label, config, whether it is majority voting, the solves admitted at once) per job."""
    out: list[tuple[str, SearchConfig, bool, int]] = []
    for name in [j.strip() for j in jobs.split(",") if j.strip()]:
        try:
            c = config_for(name, n)
        except ValueError as e:
            raise SystemExit(f"--jobs: {e}")
        if name != "majority" and (c.method != "srca" or not c.lineages):
            raise SystemExit(f"--jobs: {name!r}: only majority and srca's lineage variants are modelled")
        out.append((f"{name}@{n}", c, name == "majority", auto_concurrency(c, capacity)))
    for text in policies:
        try:
            fields = json.loads(text)
            c = config_for("srca", n).replace(**fields)
        except (ValueError, TypeError) as e:
            raise SystemExit(f"--policy {text!r}: {e}")
        out.append((f"srca {json.dumps(fields, separators=(',', ':'))}@{n}", c, False, auto_concurrency(c, capacity)))
    return out


def problems_for(lines: list[dict], c: SearchConfig, memo: dict) -> list[Problem]:
    """The problems as ``c``'s lineages (one replay per vote setting: the ballots depend on it)."""
    key = (len(lines), repr(dataclasses.replace(Policy.from_config(c), waves=1, wave_overlap=0, wave_speculate=False)))
    if key not in memo:
        memo[key] = [lineages_of(ln, c) for ln in lines]
    return memo[key]


def model_job(problems: list[Problem], c: SearchConfig, majority: bool, concurrency: int, capacity: int,
              cost: Callable[[int], float], by_load: bool = False) -> dict:
    """One job's modelled run (majority: every sample at once, no vote to wait for), its solves
    admitted ``concurrency`` at once, or ``by_load`` (at most ``concurrency``)."""
    return Run(problems, None if majority else c, concurrency, capacity, cost, by_load, width(c)).simulate()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bank", help="a sample bank folder (gpu_study.py)")
    ap.add_argument("--problems", default="500", help="eval sizes, comma-separated (the bank's first K problems)")
    ap.add_argument("--cost", action="append", default=[], help="a batch_cost.py JSON to fit the iteration cost to "
                    "(repeat for several machines)")
    ap.add_argument("--cost-model", action="append", default=[], help="NAME=C,P: ms per iteration = C * running ** P")
    ap.add_argument("--jobs", default="majority,srca,srca-overlap,srca-spec,srca-nowaves")
    ap.add_argument("--policy", action="append", default=[], help="srca with these SearchConfig fields (JSON)")
    ap.add_argument("--n", type=int, default=N, help="samples per problem (the bank's first n)")
    ap.add_argument("--repeat", type=int, default=1, help="the bank's problems this many times over, each copy "
                    "in its own shuffled order (a larger eval's load, e.g. --repeat 4 --problems 2000)")
    ap.add_argument("--capacity", type=int, default=4096, help="running sequences the engine decodes at once")
    ap.add_argument("--admission", default="load,width", help="how solves are admitted, comma-separated: load "
                    "(srca.admission.LoadSlots, Solver(admit='load')), width (by their widths alone, the default)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    models: list[dict] = []
    for path in a.cost:
        c, p, rows = fit_cost(path)
        models.append({"name": os.path.basename(path), "c": c, "p": p,
                       "fitted_to": [[r["job"], r["mean_running"], r["ms_per_iteration"]] for r in rows]})
    for text in a.cost_model:
        name, _, cp = text.partition("=")
        try:
            c, p = (float(x) for x in cp.split(","))
        except ValueError:
            raise SystemExit(f"--cost-model {text!r}: NAME=C,P")
        models.append({"name": name, "c": c, "p": p})
    if not models:
        raise SystemExit("give --cost (a batch_cost.py JSON) or --cost-model NAME=C,P")
    jobs = parse_jobs(a.jobs, a.policy, a.n, a.capacity)
    admissions = [x.strip() for x in a.admission.split(",") if x.strip()]
    if not admissions or any(x not in ("load", "width") for x in admissions):
        raise SystemExit(f"--admission {a.admission!r}: load, width or both")
    files = bank_files(a.bank)
    if not files:
        raise SystemExit(f"{a.bank}: no bank chunks (*.jsonl.gz)")
    sizes = [int(x) for x in a.problems.split(",")]
    if a.repeat < 1:
        raise SystemExit("--repeat: an integer >= 1")
    bank = read_bank(files)
    lines = list(bank)
    rng = random.Random(0)
    for _ in range(a.repeat - 1):
        copy = list(bank)
        rng.shuffle(copy)
        lines += copy
    lines = lines[: max(sizes)]
    if any(len(ln["samples"]) < a.n for ln in lines):
        raise SystemExit(f"--n {a.n}: the bank holds fewer samples for some problems")
    memo: dict = {}
    results = []
    for m in models:
        cost = (lambda b, c=m["c"], p=m["p"]: c * b ** p)
        for k in sizes:
            raw = raw_phase(problems_for(lines[:k], jobs[0][1], memo), a.capacity, cost)
            maj = None
            print(f"\n{m['name']}: ms = {m['c']:.3f} * running ** {m['p']:.3f}; {k} problems; raw phase "
                  f"{raw['wall_s']:.1f} s (model), {raw['iterations']} iterations")
            print("| job | admission (solves at most) | wall s | x raw wall | tokens / majority's | unused | x raw tok/s "
                  "| x raw tok/s, used only | mean running | iterations | solve latency (iterations) |")
            print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            for (label, c, is_majority, conc), adm in itertools.product(jobs, admissions):
                by_load = adm == "load"
                conc = MAX_AUTO_CONCURRENCY if by_load else conc
                r = model_job(problems_for(lines[:k], c, memo), c, is_majority, conc, a.capacity, cost, by_load)
                r["admission"] = adm
                if is_majority and maj is None:
                    maj = r
                rate = raw["tokens"] / raw["wall_s"]
                row = {"model": m["name"], "problems": k, "job": label, "concurrency": conc, **r,
                       "x_raw_wall": r["wall_s"] / raw["wall_s"], "x_raw_tok_s": r["tokens"] / r["wall_s"] / rate,
                       "x_raw_tok_s_used": (r["tokens"] - r["unused_tokens"]) / r["wall_s"] / rate,
                       "x_majority_tokens": r["tokens"] / maj["tokens"] if maj else None}
                results.append(row)
                print(f"| {label} | {adm} ({conc}) | {r['wall_s']:.1f} | {row['x_raw_wall']:.3f} | "
                      f"{row['x_majority_tokens'] or 0:.3f} | {r['unused_tokens'] / max(1, r['tokens']):.0%} | "
                      f"{row['x_raw_tok_s']:.3f} | {row['x_raw_tok_s_used']:.3f} | {r['mean_running']:.0f} | "
                      f"{r['iterations']} | {r['mean_solve_iterations']:.0f} |")
            results.append({"model": m["name"], "problems": k, "job": "raw", **raw})
    if a.out:
        write_result(a.out, "wave_schedule", a, models=models, rows=results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
