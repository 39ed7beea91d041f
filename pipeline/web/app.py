"""FastAPI application factory. Routers live one per concern beside this file."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from pipeline.app.runtime import Runtime
from pipeline.core.errors import (
    BadInput,
    NotFound,
    PermissionDenied,
    describe_validation_errors,
)
from pipeline.web import apidocs, intake, ops, partners, queue, stats
from pipeline.web.console import routes as console


class BodyLimit(BaseHTTPMiddleware):
    """Refuse bodies over the configured size before reading them."""

    def __init__(self, app: Any, max_bytes: int):
        super().__init__(app)
        self.max_bytes = max_bytes

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return JSONResponse(
                {"error": f"request body larger than {self.max_bytes} bytes"}, status_code=413
            )
        return await call_next(request)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="hotline",
        version="1",
        description="Case-processing pipeline for internet hotlines.",
        docs_url=None,  # served from packaged files by apidocs.install
        redoc_url=None,  # ReDoc needs a CDN
    )
    app.state.runtime = runtime
    app.add_middleware(BodyLimit, max_bytes=runtime.settings.web.max_body_bytes)

    @app.exception_handler(BadInput)
    async def _bad_input(_: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(PermissionDenied)
    async def _denied(_: Request, exc: PermissionDenied) -> JSONResponse:
        return JSONResponse({"error": str(exc) or "not allowed"}, status_code=403)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"error": "the body is not valid JSON"}, status_code=400)
        return JSONResponse({"error": "invalid input", "problems":
                             describe_validation_errors(errors)}, status_code=422)

    app.include_router(intake.router)
    ops.install(app)  # /metrics, /healthz, /readyz
    queue.install(app)  # queue, cases, users and tokens API
    console.install(app)  # the analysts' console under /console/
    partners.install(app)  # partner intake, police replies, notice confirmation
    stats.install(app)  # statistics export, per-URL export, partner takedown status
    apidocs.install(app)  # /docs without a CDN
    return app
