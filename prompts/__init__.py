"""Prompt templates, loaded by name from the JSON files in this folder, or from a folder the
operator names in ``$SRCA_PROMPTS_DIR`` (its files add to the shipped set; a shipped name wins).

A template is ``{"system": str | null, "user": str}`` where ``user`` contains ``{problem}``, with an
optional ``"asks": "program"`` for a template that asks for a Python program instead of a chain
of thought (the ``pot`` method asks with its own ``pot`` template unless the one named is such).

A name is a plain identifier (letters, digits, ``_``, ``-``; at most 64 characters), never a
path: the name reaches this module from requests (``SearchConfig.prompt``), so ``..``, ``/``
or an absolute path must not read files outside the two folders.
"""
from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

PROMPTS_DIR_ENV = "SRCA_PROMPTS_DIR"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _operator_dir() -> Path | None:
    raw = os.environ.get(PROMPTS_DIR_ENV, "").strip()
    return Path(raw) if raw else None


def available() -> list[str]:
    """Every template name that :func:`load` accepts (shipped, then the operator's folder)."""
    names = {p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".json")}
    d = _operator_dir()
    if d is not None and d.is_dir():
        names |= {p.stem for p in d.glob("*.json") if NAME_RE.fullmatch(p.stem) and p.is_file()}
    return sorted(n for n in names if NAME_RE.fullmatch(n))


def load(name: str) -> dict:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        # say nothing about the filesystem: only that this is not a template name
        raise ValueError(f"prompt: {str(name)[:80]!r} is not a template name (letters, digits, '_', '-'); "
                         f"choose one of {available()}")
    shipped = resources.files(__name__) / f"{name}.json"
    if shipped.is_file():
        return _load_text(name, shipped.read_text(encoding="utf-8"))
    d = _operator_dir()
    path = d / f"{name}.json" if d is not None else None
    if path is None or not path.is_file():
        raise ValueError(f"prompt: unknown template {name!r}; choose one of {available()}")
    return _load_file(name, str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=256)
def _load_file(name: str, path: str, mtime_ns: int) -> dict:  # keyed by mtime: an edited file is re-read
    return _load_text(name, Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=256)
def _load_text(name: str, text: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"prompt {name!r}: not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("user"), str) or "{problem}" not in data["user"]:
        raise ValueError(f"prompt {name!r}: 'user' must be a string containing {{problem}}")
    if data.get("system") is not None and not isinstance(data["system"], str):
        raise ValueError(f"prompt {name!r}: 'system' must be a string or null")
    if data.get("asks", "reasoning") not in ("reasoning", "program"):
        raise ValueError(f"prompt {name!r}: 'asks' must be 'reasoning' or 'program'")
    return data


def asks(name: str) -> str:
    """What template ``name`` asks for: ``"reasoning"`` (the default) or ``"program"``."""
    return load(name).get("asks", "reasoning")


def messages(name: str, problem: str) -> list[dict]:
    t = load(name)
    msgs = [{"role": "system", "content": t["system"]}] if t.get("system") else []
    msgs.append({"role": "user", "content": t["user"].replace("{problem}", problem)})
    return msgs
