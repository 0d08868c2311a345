"""Result lines of an evaluation: building one from a Solution, and the JSONL file they live in.

One line per (problem, method, n), keyed by ``(unique_id, method, n)``. Lines are appended as
solves finish (so an interrupted run keeps everything it finished) and, when a run completes,
the file is rewritten in canonical order in one atomic rename, so a run that was interrupted
and resumed ends with the same file as one that was not, up to the fields that measure the run
rather than the result (:data:`RUN_DEPENDENT`: wall-clock times and prefix-cache hits), provided
each solve's result depends only on its seed: on a deterministic engine, or with ``isolate``
(see :func:`~srca.eval.runner.arun_eval`) on one whose numerics depend on batch composition.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..solution import FULL_SOURCES, Solution
from .data import Problem
from .grading import grade


Key = tuple[str, str, int]


class ResultsError(ValueError):
    """The results file is not one this tool can continue (corrupt, or other settings)."""


def key_of(rec: dict) -> Key:
    return (str(rec["unique_id"]), str(rec["method"]), int(rec["n"]))


def problem_seed(seed: int, unique_id: str) -> int:
    """The seed of one problem: derived from the run's ``seed`` and the problem's id, not from
    run order, so a resumed run draws the same samples."""
    h = hashlib.sha256(f"{int(seed)}\x00{unique_id}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def config_id(config: dict) -> str:
    """A short digest of the settings that shape a result (not the per-problem seed)."""
    d = {k: v for k, v in config.items() if k != "seed"}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def make_record(problem: Problem, method: str, n: int, sol: Solution, seed: int) -> dict[str, Any]:
    """The result line of one solve, graded against ``problem.answer``. No trace.

    ``answers`` summarizes the candidate pool per answer group (paths and checkpoints that
    gave it, its best score, whether it is correct). ``any_correct``: some candidate is
    correct (oracle). ``rescued`` (CCA rescue): the chosen answer is correct, came from a
    checkpoint, and no finished path had a correct answer."""
    groups: dict[int, dict[str, Any]] = {}
    for c in sol.candidates:
        g = groups.get(c.group)
        if g is None:
            g = groups[c.group] = {"answer": c.answer, "paths": 0, "checkpoints": 0, "best_score": c.score,
                                   "correct": grade(c.answer, problem.answer)}
        g["paths" if c.source in FULL_SOURCES else "checkpoints"] += 1
        if c.source == "program":  # counted in paths too; apart, so a joint vote can be replayed by kind
            g["programs"] = g.get("programs", 0) + 1
        g["best_score"] = max(g["best_score"], c.score)
    answers = sorted(groups.values(), key=lambda g: (-(g["paths"] + g["checkpoints"]), -g["best_score"]))
    for g in answers:
        g["best_score"] = round(float(g["best_score"]), 6)
    # per candidate, not per group: a group may mix correct and wrong spellings at its edges
    path_correct = any(c.source in FULL_SOURCES and grade(c.answer, problem.answer) for c in sol.candidates)
    any_correct = path_correct or any(grade(c.answer, problem.answer) for c in sol.candidates
                                      if c.source not in FULL_SOURCES)
    correct = grade(sol.answer, problem.answer)
    from_ckpt = sol.from_checkpoint
    u = sol.usage
    return {
        "unique_id": problem.unique_id,
        "method": method,
        "n": n,
        "answer": sol.answer,
        "gold": problem.answer,
        "correct": correct,
        "level": problem.level,
        "subject": problem.subject,
        "from_checkpoint": from_ckpt,
        "rescued": bool(correct and from_ckpt and not path_correct),
        "any_correct": any_correct,
        "path_correct": path_correct,
        "confidence": sol.confidence,
        "stop_reason": sol.stop_reason,
        "usage": {"generated_tokens": u.generated_tokens, "prompt_tokens": u.prompt_tokens,
                  "cached_tokens": u.cached_tokens, "prefilled_tokens": u.prompt_tokens - u.cached_tokens,
                  "probe_tokens": u.probe_tokens, "unused_tokens": u.unused_tokens, "scorer_calls": u.scorer_calls,
                  "engine_calls": u.engine_calls, "engine_requests": u.engine_requests, "loop_stops": u.loop_stops},
        "timings": {k: round(float(v), 3) for k, v in sorted(sol.timings.items())},
        "answers": answers,
        "seed": seed,
        "config_id": config_id(sol.config),
    }


def dumps(rec: dict) -> str:
    return json.dumps(rec, ensure_ascii=False)


def read_records(path: str | os.PathLike, repair: bool = False) -> list[dict]:
    """The complete lines of a results file. A torn last line (no newline, or not JSON: the
    write of a killed run) is skipped, and with ``repair=True`` cut off the file. A bad line
    anywhere else raises :class:`ResultsError`. A ``.gz`` file (stored results) is read
    whole and never repaired."""
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    if p.suffix == ".gz":
        import gzip

        data, repair = gzip.decompress(data), False
    out: list[dict] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        last = end < 0 or end == len(data) - 1
        line = data[pos:] if end < 0 else data[pos:end]
        try:
            rec = json.loads(line.decode("utf-8")) if line.strip() else None
            if rec is not None:
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
                key_of(rec)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            if last:
                break  # torn tail: dropped below
            lineno = data.count(b"\n", 0, pos) + 1
            raise ResultsError(f"{p}:{lineno}: not a result line ({type(e).__name__}: {e})") from None
        if end < 0:  # valid JSON but no newline: the write may have been cut; redo it
            break
        if rec is not None:
            out.append(rec)
        pos = end + 1
    if repair and pos < len(data):
        with p.open("r+b") as f:
            f.truncate(pos)
    return out


def write_atomic(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Replace ``path`` with ``records`` in one rename (a reader never sees half a file)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, p.stat().st_mode & 0o777 if p.exists() else 0o666 & ~umask)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def canonical_order(records: Sequence[dict], planned: Sequence[Key]) -> list[dict]:
    """Planned keys in plan order, then any other lines sorted by key; one line per key
    (the last one written wins)."""
    by_key = {key_of(r): r for r in records}
    rank = {k: i for i, k in enumerate(planned)}
    return [by_key[k] for k in sorted(by_key, key=lambda k: (0, rank[k], "", "", 0) if k in rank else (1, 0, *k))]


class ResultsWriter:
    """Appends result lines, one complete line per write, flushed at once."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")

    def write(self, rec: dict) -> None:
        self._f.write(dumps(rec) + "\n")
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


# Measurements of the run rather than of the result: wall-clock times, and how much of the
# prompts a prefix cache served (that depends on what ran before, e.g. on a resume).
RUN_DEPENDENT = ("timings", "usage.cached_tokens", "usage.prefilled_tokens")


def comparable(records: Iterable[dict]) -> list[dict]:
    """Records without the :data:`RUN_DEPENDENT` fields, for comparing two runs."""
    out = []
    for r in records:
        r = {k: v for k, v in r.items() if k not in RUN_DEPENDENT}
        if isinstance(r.get("usage"), dict):
            r["usage"] = {k: v for k, v in r["usage"].items() if f"usage.{k}" not in RUN_DEPENDENT}
        out.append(r)
    return out
