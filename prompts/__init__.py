"""Prompt templates, loaded by name from the JSON files in this folder.

A template is ``{"system": str | null, "user": str}`` where ``user`` contains ``{problem}``.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def load(name: str) -> dict:
    files = resources.files(__name__)
    path = files / f"{name}.json"
    if not path.is_file():
        names = sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".json"))
        raise ValueError(f"prompt: unknown template {name!r}; choose one of {names}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if "{problem}" not in data.get("user", ""):
        raise ValueError(f"prompt {name!r}: 'user' must contain {{problem}}")
    return data


def messages(name: str, problem: str) -> list[dict]:
    t = load(name)
    msgs = [{"role": "system", "content": t["system"]}] if t.get("system") else []
    msgs.append({"role": "user", "content": t["user"].replace("{problem}", problem)})
    return msgs
