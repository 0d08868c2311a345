"""The search told as reasoning text: what the OpenAI facade streams as ``reasoning_content``.

A search emits ``step`` (new nodes with their text), ``checkpoint`` (the answer each probe
implied), ``select`` (the paths kept, and for lineages those that ended) and ``final`` events.
:class:`Narrator` turns them into a compact readable account, one block per step, e.g.::

    Step 2: 3 open, 1 ended
      A: Then she sold 48 / 2 = 24 clips in May. -> 24
      B: In May she sold half: 24. Altogether 48 + 24 = 72. => 72 (finished)
      ...
      answers now: 72 x2, 24 x1, 48 x1

Paths are named by letters after their first step (a lineage keeps its letter all the way); in a
tree, where kept paths share a first step, by node id and parent (``#9 (from #4)``). ``->`` is the answer a checkpoint probe implied, ``=>`` the answer of a path that ended. Methods
without ``select`` events (majority, best-of-N, CoT, CoT-decoding) have their samples told as
they come. SRCA's waves are told as they start (``Wave 2 of 3: ...``). With self-verification
(``verify``) a finished lineage's verdict is told with it (``=> 72 (finished; P(yes) 0.93)``).
The last block is the decision.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from srca.answers import canonical
from srca.methods.verify import verify_factor

_ENDED = {"path": "finished", "program": "its program printed the answer",
          "settled": "settled: its checkpoints agreed", "checkpoint": "out of tokens"}


def _letters(i: int) -> str:
    """A, B, ..., Z, AA, AB, ..."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Narrator:
    """Feed it a solve's events in order (:meth:`feed`); each call returns the text to send now
    (``""``: nothing yet). :meth:`finish` tells the decision. Events are only read (one solve's
    events are shared by every stream that joins it)."""

    def __init__(self) -> None:
        self.nodes: dict[int, dict] = {}  # node id -> its step event entry (text, parent, depth, ...)
        self.answer: dict[int, str | None] = {}  # node id -> the answer its checkpoint probe implied
        self.pending: list[int] = []  # nodes of the latest step, not told yet
        self.names: dict[int, str] = {}  # first-step node id -> its letter
        self.ended: dict[int, str | None] = {}  # ended node id -> its answer (every ended path, once)
        self.verdict: dict[int, float | None] = {}  # finished node id -> its verification log-odds
        self.steps_told = 0

    # -- events ---------------------------------------------------------------------------
    def feed(self, ev: dict[str, Any]) -> str:
        kind = ev.get("type")
        if kind == "step":
            out = self._flush() if self.pending else ""  # a method without select events
            for n in ev.get("nodes", []):
                self.nodes[n["id"]] = n
                self.pending.append(n["id"])
            return out
        if kind == "checkpoint":
            for n in ev.get("nodes", []):
                self.answer[n["id"]] = n.get("answer")
            return ""
        if kind == "select":
            return self._flush(ev.get("kept") or [], ev.get("ended") or [])
        if kind == "verify":  # told with the path when its step is (the verdicts come before the select)
            for n in ev.get("nodes", []):
                self.verdict[n["id"]] = n.get("log_odds")
            return ""
        if kind == "wave":
            out = self._flush() if self.pending else ""
            w, waves, k = ev.get("wave"), ev.get("waves"), ev.get("lineages")
            why = "" if w == 1 else ": the vote is not clear yet"
            return out + f"Wave {w} of {waves}: {k} lineage(s){why}\n\n"
        return ""

    def finish(self, solution: dict[str, Any], cached: bool = False) -> str:
        """The rest of the last step (if any) and the decision, from the final Solution."""
        out = self._flush() if self.pending else ""
        if cached and not self.steps_told:
            out += "(a cached result: this search ran before)\n"
        votes = Counter()
        shown: dict[str, str] = {}
        for c in solution.get("candidates", []):
            key = c.get("canonical") or c.get("answer")
            votes[key] += 1
            shown.setdefault(key, c.get("answer"))
        tally = ", ".join(f"{shown[k]} x{v}" for k, v in votes.most_common())
        conf = solution.get("confidence")
        out += (f"Decision: {solution.get('answer')}"
                + (f" (confidence {conf:.2f})" if isinstance(conf, (int, float)) else "")
                + (f"; candidates: {tally}" if tally else "")
                + f"; stopped: {solution.get('stop_reason')}\n")
        return out

    # -- telling a step -------------------------------------------------------------------
    def _name(self, nid: int) -> str:
        first, seen = nid, 0
        while first in self.nodes and self.nodes[first].get("parent") in self.nodes and seen < 10_000:
            first, seen = self.nodes[first]["parent"], seen + 1
        if first not in self.names:
            self.names[first] = _letters(len(self.names))
        return self.names[first]

    def _flush(self, kept: list[dict] | None = None, ended: list[dict] | None = None) -> str:
        pending, self.pending = self.pending, []
        if kept is None:  # no select event: every new node is told
            for nid in pending:
                if self.nodes[nid].get("finished"):
                    self.ended[nid] = self.nodes[nid].get("answer")
            done = sum(1 for nid in pending if self.nodes[nid].get("finished"))
            head = f"{len(pending)} path(s)" + (f", {done} finished" if done else "")
            return self._block([(nid, None) for nid in pending], head, current=[])
        told: list[tuple[int, str | None]] = []
        for k in kept:
            if k.get("answer") is not None:
                self.answer.setdefault(k["id"], k.get("answer"))
            told.append((k["id"], None))
        for e in ended:
            told.append((e["id"], e.get("kind", "path")))
            self.ended[e["id"]] = e.get("answer")
        ids = {nid for nid, _ in told}
        for nid in pending:  # paths that finished in a tree search: candidates, not in 'kept'
            n = self.nodes.get(nid, {})
            if n.get("finished") and nid not in ids:
                told.append((nid, "path"))
                self.ended[nid] = n.get("answer")
        n_open = len(kept)
        head = f"{n_open} open" + (f", {len(told) - n_open} ended" if len(told) > n_open else "")
        return self._block([(nid, kind) for nid, kind in told if nid in self.nodes], head,
                           current=[k["id"] for k in kept])

    def _line(self, nid: int, kind: str | None, name: str) -> str:
        n = self.nodes[nid]
        text = _one_line(n.get("text", ""))
        if n.get("finished") or kind is not None:
            ans = n.get("answer") if n.get("finished") else (self.ended.get(nid) or self.answer.get(nid))
            why = _ENDED.get(kind or "path", kind)
            if nid in self.verdict:
                odds = self.verdict[nid]
                why += "; no verdict" if odds is None else f"; P(yes) {verify_factor(odds, 1):.2f}"
            tail = f" => {ans} ({why})"
        elif nid in self.answer:
            tail = f" -> {self.answer[nid]}"
        else:
            tail = ""
        return f"  {name}: {text}{tail}"

    def _block(self, told: list[tuple[int, str | None]], head: str, current: list[int]) -> str:
        if not told:
            return ""
        self.steps_told += 1
        depth = max(self.nodes[nid].get("depth", 0) for nid, _ in told)
        names = [self._name(nid) for nid, _ in told]
        if len(set(names)) < len(names):  # a tree: several kept paths share a first step, so ids
            names = [f"#{nid}" + (f" (from #{self.nodes[nid]['parent']})" if self.nodes[nid].get("parent") in
                                  self.nodes else "") for nid, _ in told]
        else:  # lineages in letter order (A before B), wherever they stand
            order = sorted(range(len(told)), key=lambda i: (len(names[i]), names[i]))
            told, names = [told[i] for i in order], [names[i] for i in order]
        lines = [self._line(nid, kind, name) for (nid, kind), name in zip(told, names)]
        tally = self._tally(current)
        return "\n".join([f"Step {depth}: {head}", *lines, *([f"  answers now: {tally}"] if tally else [])]) + "\n\n"

    def _tally(self, current: list[int]) -> str:
        """Answers of the paths that ended so far and of those still open (their checkpoints)."""
        votes: Counter = Counter()
        shown: dict[str, str] = {}
        for nid, ans in [*self.ended.items(), *((i, self.answer.get(i)) for i in current if i not in self.ended)]:
            if ans is None:
                continue
            key = canonical(ans) or ans
            votes[key] += 1
            shown.setdefault(key, ans)
        return ", ".join(f"{shown[k]} x{v}" for k, v in votes.most_common())
