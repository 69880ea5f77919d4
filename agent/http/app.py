"""The FastAPI application: ``create_app(store, settings)``.

Error answers never echo request bodies (FastAPI's default 422 answer includes the offending input,
which could be an API key), and storage's NotFound becomes 404 everywhere, so another user's id is
indistinguishable from one that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.http import routes_admin, routes_config, routes_mcp, routes_sessions, routes_usage, runs
from agent.http.bodies import ValidUnicodeBodies
from agent.http.deps import ServiceState
from agent.http.hubs import HubPool
from agent.http.limits import BodySizeLimit, RateLimiter, RunSlots, TooManyRequests
from agent.http.settings import ServiceSettings
from agent.http.ssrf import UnsafeUrl, egress_policy
from providers.errors import ConfigError
from storage import Store
from storage.errors import NotFound

STATIC_DIR = Path(__file__).parent / "static"

# The page loads nothing from elsewhere; /docs (Swagger UI from FastAPI) keeps its own defaults.
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class _SecurityHeaders:
    """Pure ASGI (not BaseHTTPMiddleware), so streamed SSE answers pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
        if path == "/" or path.startswith("/static/"):
            extra += [(b"content-security-policy", _PAGE_CSP.encode()), (b"x-frame-options", b"DENY")]
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and what, never the submitted value."""
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "invalid")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]


def _install_error_handlers(app: FastAPI) -> None:
    async def validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": _validation_errors(exc)}, status_code=422)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc) or "not found"}, status_code=404)

    async def too_many(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TooManyRequests)
        return JSONResponse({"detail": exc.detail}, status_code=429, headers={"Retry-After": str(exc.retry_after)})

    async def bad_request(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = getattr(exc, "headers", None)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(TooManyRequests, too_many)
    app.add_exception_handler(UnsafeUrl, bad_request)
    app.add_exception_handler(ConfigError, bad_request)
    app.add_exception_handler(StarletteHTTPException, http_error)


def create_app(store: Store, settings: ServiceSettings | None = None) -> FastAPI:
    """The routekit service over ``store``. The caller owns the store (opens and closes it)."""
    settings = settings or ServiceSettings()
    hubs = HubPool(settings.hub_idle_seconds, settings.max_idle_hubs)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with hubs.running(), anyio.create_task_group() as tg:
            tg.start_soon(runs.settle_open_attempts, app.state.routekit)
            yield
            tg.cancel_scope.cancel()

    app = FastAPI(
        lifespan=lifespan,
        title="routekit",
        summary="MCP-aware agent runtime: per-user provider keys, MCP servers, sessions, streamed runs, usage.",
        version="0.1.0",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.routekit = ServiceState(
        store=store,
        settings=settings,
        limiter=RateLimiter(settings.requests_per_minute),
        runs=RunSlots(settings.max_concurrent_runs),
        hubs=hubs,
        egress=egress_policy(settings),
    )
    _install_error_handlers(app)
    for module in (routes_config, routes_mcp, routes_sessions, runs, routes_usage, routes_admin):
        app.include_router(module.router)
    app.include_router(routes_mcp.admin_router)

    static_dir = settings.static_dir or STATIC_DIR

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(static_dir / "index.html", media_type="text/html")

    @app.get("/healthz", tags=["service"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.mount("/static", StaticFiles(directory=static_dir), name="static")
    app.add_middleware(ValidUnicodeBodies)
    app.add_middleware(_SecurityHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
