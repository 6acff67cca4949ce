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
  package, Swagger UI at ``/api/docs`` from the installed ``fastapi-offline`` package), and the
  Content-Security-Policy tells the browser to fetch nothing from anywhere else;
- a request whose ``Host`` header is not an allowed name is a 400 (:class:`HostAllowList`, Starlette's
  ``TrustedHostMiddleware``): loopback names only, and with a token also ``COMPANY_ACTIVITY_UI_HOSTS`` and
  the host of ``COMPANY_ACTIVITY_UI_URL``. A page on another domain that rebinds its name to 127.0.0.1
  therefore cannot read the API through a user's browser.
"""

from __future__ import annotations

import hmac
import importlib.util
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..config import Settings
from ..errors import ConfigError
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
    "api-docs.js": ("app", "text/javascript"),
    "swagger-ui-bundle.js": ("swagger", "text/javascript"),
    "swagger-ui.css": ("swagger", "text/css"),
}
#: the Host names every UI answers to (with or without a port): the loopback names and addresses
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_HOST_PATTERN = re.compile(r"(\*|(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?)")
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


def allowed_hosts(settings: Settings) -> list[str]:
    """The ``Host`` names the UI answers to: loopback always; with a token, also the configured names.

    ``COMPANY_ACTIVITY_UI_HOSTS`` is a comma-separated list of names (``activity.example.com``), IP
    addresses (IPv6 in brackets or not), ``*.example.com`` for every subdomain, or ``*`` for any (behind a
    proxy that checks the name itself); the host of ``COMPANY_ACTIVITY_UI_URL`` is added to them. Without
    a token both are ignored: the UI then serves loopback clients only, under loopback names.
    """
    hosts = list(LOOPBACK_HOSTS)
    if settings.ui_token is None:
        return hosts
    given = [h.strip() for h in (settings.ui_hosts or "").split(",") if h.strip()]
    for name in given:
        host = _host_name(name)
        if host is None:
            raise ConfigError(
                f"COMPANY_ACTIVITY_UI_HOSTS: {excerpt(name)} is not a host name, an IP address, "
                "*.domain or * (give names without scheme, port or path, separated by commas)"
            )
        hosts.append(host)
    if settings.ui_url:
        try:
            host = urlsplit(settings.ui_url).hostname
        except ValueError:
            host = None
        if host and (named := _host_name(host)):
            hosts.append(named)
    return list(dict.fromkeys(hosts))


def _host_name(name: str) -> str | None:
    """``name`` as TrustedHostMiddleware compares it (lower case, IPv6 in brackets), or None if invalid."""
    name = name.lower()
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name if _HOST_PATTERN.fullmatch(name) else None
    return f"[{address}]" if address.version == 6 else str(address)


class HostAllowList:
    """Starlette's ``TrustedHostMiddleware`` decides; a refused ``Host`` gets a 400 that says why.

    The middleware's own answer ("Invalid host header", plain text) is dropped for the app's error
    (JSON under /api/, a page elsewhere) naming the host and the setting that would allow it.
    """

    _PASSED = "company_activity.host_allowed"

    def __init__(self, app: ASGIApp, allowed: list[str]):
        self.app = app
        self.allowed = allowed
        self.check = TrustedHostMiddleware(self._passed, allowed_hosts=allowed, www_redirect=False)

    async def _passed(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[self._PASSED] = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return

        async def dropped(message: Any) -> None:
            return None

        await self.check(scope, receive, dropped)
        if scope.pop(self._PASSED, False):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # the UI has none; refused all the same
            await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope, receive)
        given = request.headers.get("host")
        shown = "(none)" if given is None else excerpt(given)
        response = _error(
            request,
            400,
            f"Host {shown} is not allowed; this UI answers to {', '.join(self.allowed)} "
            "(to serve another name, set COMPANY_ACTIVITY_UI_TOKEN and add the name to "
            "COMPANY_ACTIVITY_UI_HOSTS)",
        )
        await response(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="company-activity",
        version=__version__,
        description="Read-only JSON API behind the company-activity web UI.",
        docs_url=None,  # FastAPI's own pages load Swagger UI from a CDN: /api/docs serves it from a package
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.reader = reader_for(settings)
    token = settings.ui_token.get_secret_value() if settings.ui_token is not None else ""
    _guard(app, token)
    app.add_middleware(HostAllowList, allowed=allowed_hosts(settings))  # outermost: before the token
    _error_handlers(app)
    _static(app)
    _api_docs(app)
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
        if kind == "plotly":
            path = plotly_js_path()
        elif kind == "swagger":
            path = swagger_ui_path(name)
        else:
            path = static_path(name)
        return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


def swagger_ui_path(name: str) -> Path:
    """A file of Swagger UI as the installed ``fastapi-offline`` package ships it (part of the ui extra)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("Swagger UI is not installed: pip install 'company-activity[ui]' (fastapi-offline)")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / name


_API_DOCS = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API · company-activity</title>
<link rel="stylesheet" href="/static/swagger-ui.css">
</head>
<body>
<p style="font-family: sans-serif; margin: 0.8em 1.2em"><a href="/">company-activity</a> ·
the JSON API (<a href="/api/openapi.json">OpenAPI document</a>)</p>
<div id="swagger-ui" data-openapi="/api/openapi.json"></div>
<script src="/static/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>
"""


def _api_docs(app: FastAPI) -> None:
    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> Response:
        """Swagger UI over the OpenAPI document: its code from the installed package, its set-up in
        /static/api-docs.js (the CSP allows no inline script)."""
        swagger_ui_path("swagger-ui-bundle.js")  # a clear 404 when the package is missing
        return HTMLResponse(_API_DOCS)


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
