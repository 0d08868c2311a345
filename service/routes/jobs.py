"""``POST /jobs``, ``GET /jobs/{id}``, ``DELETE /jobs/{id}``: solves queued in Redis, run by any
replica's worker (:mod:`srca.service.worker`); a browser asking for a finished job gets the
trace viewer."""
from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..gate import Gate
from ..jobs import job_view
from ..responses import JSON, html_response, json_response
from ..runtime import Runtime
from ..schemas import InputError, request_body, solve_request_model


def router(rt: Runtime, gate: Gate) -> APIRouter:
    r = APIRouter()

    @r.post("/jobs", status_code=202, openapi_extra=request_body(solve_request_model()),
            summary="Queue a solve; poll GET /jobs/{id}")
    async def submit_job(request: Request) -> Response:
        key_id = await gate.caller(request)
        inp = await gate.solve_input(request)
        if inp.stream:
            raise InputError.one("stream", "jobs do not stream; poll GET /jobs/{id}")
        rt.redis.require()
        job_id = await rt.jobs.submit({"problem": inp.problem, "config": inp.config.to_dict()}, key_id or "")
        return json_response({"id": job_id, "state": "queued", "url": f"/jobs/{job_id}"}, 202,
                             {"Location": f"/jobs/{job_id}"})

    @r.get("/jobs/{job_id}", summary="A job's state, and its result or error")
    async def get_job(job_id: str, request: Request) -> Response:
        key_id = await gate.caller(request)
        h = await rt.jobs.get(job_id, gate.owner(key_id))
        if h is None:  # also another key's job: its existence is not told
            return json_response({"detail": f"no job {job_id[:64]!r}"}, 404)
        view = job_view(h)
        if wants_html(request):  # a browser: the trace viewer for a finished job
            return job_page(view)
        return json_response(view)

    @r.delete("/jobs/{job_id}", summary="Cancel a job (its solve stops on whichever replica runs it)")
    async def cancel_job(job_id: str, request: Request) -> Response:
        key_id = await gate.caller(request)
        state = await rt.jobs.cancel(job_id, gate.owner(key_id))
        if state == "missing":
            return json_response({"detail": f"no job {job_id[:64]!r}"}, 404)
        h = await rt.jobs.get(job_id, gate.owner(key_id))
        view = job_view(h) if h else {"id": job_id, "state": state}
        if state != "cancelled":
            view["detail"] = f"job already {state}"
            return json_response(view, 409)
        return json_response(view)

    return r


def wants_html(request: Request) -> bool:
    """Whether the client asks for a page: ``text/html`` in Accept, ahead of any JSON type (a
    browser; API clients send ``application/json`` or ``*/*``)."""
    accept = [a.split(";")[0].strip().lower() for a in request.headers.get("accept", "").split(",")]
    if "text/html" not in accept:
        return False
    json_at = [i for i, a in enumerate(accept) if a == JSON or a.endswith("+json")]
    return not json_at or accept.index("text/html") < json_at[0]


def job_page(view: dict[str, Any]) -> Response:
    """A finished job's Solution drawn by the trace viewer; otherwise a small page that reloads."""
    from srca.viewer import render_html

    if isinstance(view.get("result"), dict):
        return html_response(render_html(view["result"]))
    state = html.escape(str(view.get("state")))
    waiting = state in ("queued", "running")
    body = ("<!doctype html><meta charset=utf-8>" + ("<meta http-equiv=refresh content=2>" if waiting else "")
            + f"<title>srca job {state}</title><p>Job {html.escape(str(view.get('id')))} is {state}."
            + ("" if waiting else f" {html.escape(str(view.get('error') or ''))}") + "</p>")
    return html_response(body)
