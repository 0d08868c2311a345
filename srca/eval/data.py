"""Evaluation problems: MATH-500 and GSM8K, from a JSONL file or the Hugging Face hub.

Records are read into :class:`Problem`. Two JSONL layouts are understood, per line:

* MATH-500: ``unique_id, problem, answer, subject, level`` (extra fields ignored); also the
  original MATH layout (Hendrycks et al.: ``problem, level, type, solution``): the answer is the
  solution's last ``\boxed{}`` (as MATH-500's own answers were made), ``type`` is the subject,
  and a record without ``unique_id`` or ``id`` is named by a hash of its problem text
  (``math-`` and 12 hex digits: stable, so ``--resume`` finds it again);
* GSM8K: ``question`` and ``answer`` (a number, or the original ``... #### N`` text), with an
  optional ``id``; the subject is ``gsm8k`` and the level is None.

Without a path, :func:`load_problems` looks for the dataset's file in ``$SRCA_DATA_DIR`` and
then for the Hugging Face dataset (needs the ``datasets`` package and a reachable hub).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..answers import extract_boxed

DATA_DIR_ENV = "SRCA_DATA_DIR"


@dataclass(frozen=True)
class Dataset:
    name: str
    filename: str  # looked up in $SRCA_DATA_DIR
    hf_path: str
    hf_config: str | None
    hf_split: str


DATASETS: dict[str, Dataset] = {
    "math500": Dataset("math500", "math500.jsonl", "HuggingFaceH4/MATH-500", None, "test"),
    "gsm8k": Dataset("gsm8k", "gsm8k_test.jsonl", "openai/gsm8k", "main", "test"),
}


class DataError(ValueError):
    """The data cannot be found or read; the message says which and why."""


@dataclass(frozen=True)
class Problem:
    unique_id: str
    problem: str
    answer: str  # reference final answer
    subject: str | None = None
    level: int | None = None


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


def gsm8k_answer(answer: Any) -> str:
    """The final number of a GSM8K answer: the text after ``####`` when present, with
    thousands separators removed (``"... #### 2,125"`` -> ``"2125"``)."""
    s = str(answer)
    if "####" in s:
        s = s.rsplit("####", 1)[1]
    return _THOUSANDS.sub("", s.strip())


def record_to_problem(rec: dict, index: int, where: str = "record") -> Problem:
    """One record (either layout) as a :class:`Problem`; ``index`` numbers GSM8K records
    that carry no id."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    if "problem" in rec:
        answer = rec.get("answer")
        if answer in (None, "") and rec.get("solution") not in (None, ""):  # the original MATH layout
            answer = extract_boxed(str(rec["solution"]))
            if answer is None:
                raise DataError(f"{where}: no answer: field 'solution' has no complete \\boxed{{...}}")
        missing = [k for k, v in (("problem", rec.get("problem")), ("answer", answer)) if v in (None, "")]
        if missing:
            raise DataError(f"{where}: missing field(s) {missing}")
        uid = rec.get("unique_id") or rec.get("id")
        if not uid:
            if "solution" not in rec:
                raise DataError(f"{where}: missing field 'unique_id'")
            uid = "math-" + hashlib.sha1(str(rec["problem"]).encode()).hexdigest()[:12]
        level = rec.get("level")
        if level is not None:
            try:
                level = int(str(level).replace("Level", "").strip())
            except ValueError:
                raise DataError(f"{where}: level must be an integer, got {rec['level']!r}") from None
        return Problem(str(uid), str(rec["problem"]), str(answer).strip(), rec.get("subject") or rec.get("type"), level)
    if "question" in rec:
        if rec.get("answer") in (None, ""):
            raise DataError(f"{where}: missing field 'answer'")
        uid = rec.get("unique_id") or rec.get("id") or f"gsm8k-test-{index}"
        return Problem(str(uid), str(rec["question"]), gsm8k_answer(rec["answer"]), rec.get("subject") or "gsm8k",
                       None)
    raise DataError(f"{where}: expected fields 'problem' (MATH) or 'question' (GSM8K), got {sorted(rec)}")


def read_jsonl(path: str | os.PathLike) -> list[Problem]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"--data: no such file: {p}")
    out: list[Problem] = []
    with p.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{p}:{i + 1}: not valid JSON ({e.msg})") from None
            out.append(record_to_problem(rec, len(out), where=f"{p}:{i + 1}"))
    return out


def from_records(records: Iterable[dict]) -> list[Problem]:
    return [record_to_problem(r, i, where=f"record {i}") for i, r in enumerate(records)]


def load_hf(ds: Dataset) -> list[Problem]:
    """The dataset from the Hugging Face hub (needs ``datasets`` and a reachable hub)."""
    try:
        import datasets  # noqa: F401  (optional dependency)
    except ImportError:
        raise DataError(f"no --data path and no ${DATA_DIR_ENV}/{ds.filename}; loading {ds.hf_path} from the "
                        "Hugging Face hub needs the 'datasets' package (pip install datasets), "
                        "or pass --data FILE.jsonl") from None
    from datasets import load_dataset

    try:
        rows = load_dataset(ds.hf_path, ds.hf_config, split=ds.hf_split)
    except Exception as e:  # the hub being unreachable surfaces as many exception types
        raise DataError(f"could not load {ds.hf_path} from the Hugging Face hub ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); pass --data FILE.jsonl") from None
    return from_records(dict(r) for r in rows)


def load_problems(dataset: str = "math500", path: str | os.PathLike | None = None,
                  limit: int | None = None) -> list[Problem]:
    """Problems of ``dataset`` from ``path`` (JSONL), else ``$SRCA_DATA_DIR``, else the hub.
    ``limit`` keeps the first ``limit`` problems. Duplicate ids are an error."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"--limit: must be an integer >= 1, got {limit!r}")
    ds = DATASETS[dataset]
    if path is not None:
        problems = read_jsonl(path)
    elif os.environ.get(DATA_DIR_ENV) and (Path(os.environ[DATA_DIR_ENV]) / ds.filename).is_file():
        problems = read_jsonl(Path(os.environ[DATA_DIR_ENV]) / ds.filename)
    else:
        problems = load_hf(ds)
    seen: set[str] = set()
    for pr in problems:
        if pr.unique_id in seen:
            raise DataError(f"duplicate unique_id {pr.unique_id!r} in the data")
        seen.add(pr.unique_id)
    if not problems:
        raise DataError("the data holds no problems")
    return problems[:limit] if limit else problems
