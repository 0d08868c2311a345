"""The service's own pages: ``/view`` (the trace viewer, following a solve streamed from this
service) and the API docs ``/docs`` (Swagger UI) and ``/redoc``, their scripts served locally."""
from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from ..responses import html_response, json_response


def router() -> APIRouter:
    r = APIRouter()

    @r.get("/view", include_in_schema=False)
    async def live_view() -> Response:
        """The trace viewer, empty, set to follow a solve streamed from this service's POST /solve
        (same origin, so the service's cross-site write checks let it through)."""
        from srca.viewer import render_html

        return html_response(render_html(None, stream_url="/solve", title="srca: follow a solve"))

    return r


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from files served by this service: the scripts ship
    in the ``fastapi-offline`` package (the service extra), so the pages work with no network.
    Without that package both answer 404 with the reason, and ``/openapi.json`` still works."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from starlette.responses import HTMLResponse

    try:
        from importlib.resources import files

        static = files("fastapi_offline") / "static"
    except ImportError:
        static = None
    if static is None or not static.is_dir():
        @app.get("/docs", include_in_schema=False)
        @app.get("/redoc", include_in_schema=False)
        async def no_docs() -> Response:
            return json_response({"detail": "API docs need the fastapi-offline package (pip install 'srca[service]'); "
                                            "the schema is at /openapi.json"}, 404)
        return
    from starlette.staticfiles import StaticFiles

    assets = "/docs-assets"
    app.mount(assets, StaticFiles(directory=str(static)), name="docs-assets")
    # validatorUrl off: Swagger UI would otherwise send the schema to its online validator
    params = {**(app.swagger_ui_parameters or {}), "validatorUrl": None}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"), title=app.title + " - API docs",
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js", swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon.png", oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
            swagger_ui_parameters=params)

    @app.get(app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=root + (app.openapi_url or "/openapi.json"), title=app.title + " - ReDoc",
                              redoc_js_url=f"{root}{assets}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{assets}/favicon.png", with_google_fonts=False)
