"""The FastAPI application of ``company-activity serve``: pages, the JSON API and its OpenAPI document.

Safe by default:

- without ``COMPANY_ACTIVITY_UI_TOKEN`` only loopback clients are served (``serve`` refuses to listen
  elsewhere); with it, every page and API call needs the token (``Authorization: Bearer …``, or the cookie
  that opening any page with ``?token=…`` once sets);
- read-only database connections (:mod:`.db`), values HTML-escaped by Jinja2's autoescape, secrets masked;
- a bad parameter is a 400 with a message, an unknown company, run or day a 404, a warehouse that cannot
  be read now a 503, and anything else a 500 that says nothing about the code (the traceback goes to the
  log only);
- every script, style and font comes from the app itself (plotly.js from the installed ``plotly``
  package), and the Content-Security-Policy tells the browser to fetch nothing from anywhere else.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..config import Settings
from .db import WarehouseUnavailable, reader_for
from .queries import BadRequest, NotFound, excerpt
from .render import plotly_js_path, render, static_path

log = logging.getLogger("company_activity.web")

COOKIE = "company_activity_ui_token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
STATIC = {
    "plotly.min.js": ("plotly", "text/javascript"),
    "app.js": ("app", "text/javascript"),
    "app.css": ("app", "text/css"),
}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="company-activity",
        version=__version__,
        description="Read-only JSON API behind the company-activity web UI.",
        docs_url=None,  # Swagger UI and ReDoc load their code from a CDN: not served
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.reader = reader_for(settings)
    token = settings.ui_token.get_secret_value() if settings.ui_token is not None else ""
    _guard(app, token)
    _error_handlers(app)
    _static(app)
    from .routes import api_router, page_router

    app.include_router(api_router)
    app.include_router(page_router)
    _document_errors(app)
    return app


def _guard(app: FastAPI, token: str) -> None:
    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not token:
            host = request.client.host if request.client else None
            if not is_loopback(host):
                return _error(
                    request, 403, "this UI serves loopback clients only (set COMPANY_ACTIVITY_UI_TOKEN)"
                )
        else:
            given = request.query_params.get("token")
            if given is not None and request.method == "GET" and _same(given, token):
                url = request.url.remove_query_params("token")
                target = url.path + (f"?{url.query}" if url.query else "")
                response: Response = RedirectResponse(target, status_code=303)
                response.set_cookie(
                    COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
                )
                return _secure(response)
            auth = request.headers.get("authorization", "")
            bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
            cookie = request.cookies.get(COOKIE)
            if not any(v is not None and _same(v, token) for v in (bearer, cookie)):
                response = _error(
                    request,
                    401,
                    "a token is required: open the UI with ?token=… once, or send Authorization: Bearer …",
                )
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        return _secure(await call_next(request))


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8"))


def _secure(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The error as JSON under /api/, as an HTML page elsewhere; never a traceback."""
    if request.url.path.startswith("/api/") or request.url.path.endswith(".csv"):
        response: Response = JSONResponse({"detail": message}, status_code=status, headers=headers)
    else:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        page = render("error.html", status=status, reason=reason, message=message)
        response = HTMLResponse(page, status_code=status, headers=headers)
    return _secure(response)


def _error_handlers(app: FastAPI) -> None:
    async def bad_request(request: Request, exc: Exception) -> Response:
        return _error(request, 400, str(exc))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(request, 404, str(exc))

    async def unavailable(request: Request, exc: Exception) -> Response:
        return _error(request, 503, str(exc), {"Retry-After": "5"})

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
            given = err.get("input")
            shown = f"={excerpt(given)}" if isinstance(given, str) else ""
            problems.append(f"{where}{shown}: {err.get('msg', 'invalid value')}")
        return _error(request, 400, "bad parameter: " + "; ".join(problems))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and message == "Not Found":
            message = f"no page at {request.url.path[:80]}"
        return _error(request, exc.status_code, message, dict(exc.headers or {}))

    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("web UI: %s %s failed", request.method, request.url.path)
        return _error(request, 500, "internal error: the server log has the details")

    app.add_exception_handler(BadRequest, bad_request)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(WarehouseUnavailable, unavailable)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, crash)


def _static(app: FastAPI) -> None:
    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            raise NotFound(f"no static file {name[:40]!r}")
        kind, media = STATIC[name]
        path = plotly_js_path() if kind == "plotly" else static_path(name)
        return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


def _document_errors(app: FastAPI) -> None:
    """The OpenAPI document lists the errors the API gives: 400 (not FastAPI's 422), 401, 403, 404, 503."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status, text in (
                    ("400", "a bad parameter (the message says which)"),
                    ("401", "the token is missing or wrong (when COMPANY_ACTIVITY_UI_TOKEN is set)"),
                    ("403", "not a loopback client (when no token is set)"),
                    ("404", "no such company, run or day"),
                    ("503", "the warehouse cannot be read now (a run is writing, or it is unreachable)"),
                ):
                    responses[status] = {
                        "description": text,
                        "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                    }
        schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
        schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
