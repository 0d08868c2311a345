"""srca.service: the HTTP service (FastAPI) over :class:`srca.Solver`.

``create_app(ServiceConfig(...), engine=...)`` builds the app; nothing is started at import time.
"""
from __future__ import annotations

from typing import Any

from .config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]


def __getattr__(name: str) -> Any:  # lazy: importing srca.service must not import FastAPI
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
