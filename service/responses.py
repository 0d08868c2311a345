"""JSON responses and error bodies: one encoding for every JSON text the service sends (compact,
non-ASCII characters as they are) and one error shape per API: ``{"detail": ...}``, and OpenAI's
envelope under ``/v1/``."""
from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

JSON = "application/json"
HTML = "text/html; charset=utf-8"


def json_text(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_text(data), status, headers, JSON)


def html_response(page: str) -> Response:
    return Response(page, 200, media_type=HTML)


def error_body(path: str, message: str, kind: str, param: str | None = None, detail: Any = None,
               code: str | None = None) -> dict[str, Any]:
    """The body of an error answer to a request for ``path``. ``kind``, ``param`` and ``code``
    fill OpenAI's envelope (``/v1/``); ``detail`` (default: the message) is the native body."""
    if path.startswith("/v1/"):
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return {"detail": detail if detail is not None else message}
