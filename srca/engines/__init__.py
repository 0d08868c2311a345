"""Engine backends behind one protocol (see :mod:`srca.engines.base`).

``make_engine(kind, ...)`` builds one by name; backends import their heavy dependencies only
when constructed, so importing ``srca`` never needs SGLang, a GPU or a network.
"""
from __future__ import annotations

import importlib
from typing import Any

from .base import Engine, EngineInfo, GenRequest, GenResult

# kind -> (module, class). Modules are imported lazily.
ENGINES: dict[str, tuple[str, str]] = {
    "local": ("srca.engines.local", "LocalEngine"),
    "sglang": ("srca.engines.sglang_inproc", "SGLangEngine"),
    "http": ("srca.engines.sglang_http", "SGLangServerEngine"),
    "sglang-servers": ("srca.engines.sglang_launch", "LaunchedServersEngine"),
    "openai": ("srca.engines.openai_compat", "OpenAIEngine"),
    "fake": ("srca.engines.fake", "ScriptedEngine"),
}


def engine_class(kind: str) -> type:
    if kind not in ENGINES:
        raise ValueError(f"engine: unknown kind {kind!r}; choose one of {sorted(ENGINES)}")
    mod, cls = ENGINES[kind]
    return getattr(importlib.import_module(mod), cls)


def make_engine(kind: str = "local", **options: Any) -> Engine:
    """Build an engine by kind: ``local`` (transformers, the embedded default), ``sglang``
    (in-process SGLang), ``http`` (SGLang server or sglang-router), ``sglang-servers`` (``http``
    over SGLang servers it starts and stops itself, :mod:`.sglang_launch`), ``openai``
    (OpenAI-compatible completions server), ``fake`` (scripted, for tests)."""
    return engine_class(kind)(**options)


__all__ = ["Engine", "EngineInfo", "GenRequest", "GenResult", "ENGINES", "make_engine", "engine_class"]
