"""FastAPI application factory. Routers live one per concern beside this file."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pipeline.errors import BadInput, NotFound, PermissionDenied
from pipeline.runtime import Runtime
from pipeline.web.guard import BodyTooLarge, FormHoldsNul, RequestGuard


def describe_validation_errors(errors: list[Any]) -> list[str]:
    """One readable line per problem: `reports.3.url: Field required`."""
    lines = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body",)]
        lines.append(f"{'.'.join(loc) or 'body'}: {error.get('msg')}")
    return lines


def create_app(runtime: Runtime) -> FastAPI:
    from pipeline.web import intake

    app = FastAPI(
        title="hotline",
        version="1",
        description="Case-processing pipeline for internet hotlines.",
    )
    app.state.runtime = runtime
    # Request ids, NUL in addresses, JSON content type, the body limit while reading,
    # unhandled errors logged and answered 500 (pipeline/web/guard.py).
    app.add_middleware(RequestGuard, max_bytes=runtime.settings.web.max_body_bytes)

    @app.exception_handler(BodyTooLarge)
    @app.exception_handler(FormHoldsNul)
    async def _refused_body(_: Request, exc: BodyTooLarge | FormHoldsNul) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

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

    from pipeline.web import ops

    ops.install(app)  # /metrics, /healthz, /readyz (issue 10)

    from pipeline.web.queue import install as install_assessment

    install_assessment(app)  # queue, cases, users and tokens API (issue 5)

    from pipeline.web.console.routes import install as install_console

    install_console(app)  # the analysts' console under /console/ (issue 8)

    from pipeline.web.partners import install as install_partners

    install_partners(app)  # partner intake, police replies, notice confirmation (issue 6)

    from pipeline.web.stats import install as install_stats

    install_stats(app)  # statistics export, per-URL export, partner takedown status (issue 7)
    return app


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
