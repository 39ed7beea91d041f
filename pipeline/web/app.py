"""FastAPI application factory. Routers live one per concern beside this file."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pipeline.app.runtime import Runtime
from pipeline.core.errors import (
    BadInput,
    FieldError,
    IllegalTransition,
    NotFound,
    PermissionDenied,
    describe_validation_errors,
)
from pipeline.core.runfile import IMPORT_PATH
from pipeline.web import apidocs, helpline, intake, ops, partners, queue, report_form, stats
from pipeline.web.console import routes as console
from pipeline.web.guard import BodyTooLarge, FormHoldsNul, RequestGuard


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="hotline",
        version="1",
        description="Case-processing pipeline for internet hotlines.",
        docs_url=None,  # served from packaged files by apidocs.install
        redoc_url=None,  # ReDoc needs a CDN
    )
    app.state.runtime = runtime
    # Request ids, NUL in addresses, JSON content type, the body limit while reading,
    # unhandled errors logged and answered 500 (pipeline/web/guard.py).
    # The running process's import streams a whole file: no body limit, a key instead.
    app.add_middleware(RequestGuard, max_bytes=runtime.settings.web.max_body_bytes,
                       streamed=frozenset({IMPORT_PATH}))

    @app.exception_handler(BodyTooLarge)
    @app.exception_handler(FormHoldsNul)
    async def _refused_body(_: Request, exc: BodyTooLarge | FormHoldsNul) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(BadInput)
    async def _bad_input(_: Request, exc: BadInput) -> JSONResponse:
        # The field a sentence is about, when it names one: for the partner's program.
        field = exc.field if isinstance(exc, FieldError) else None
        return JSONResponse({"error": str(exc), **({"field": field} if field else {})},
                            status_code=422)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(PermissionDenied)
    async def _denied(_: Request, exc: PermissionDenied) -> JSONResponse:
        return JSONResponse({"error": str(exc) or "not allowed"}, status_code=403)

    @app.exception_handler(IllegalTransition)
    async def _moved_on(_: Request, exc: IllegalTransition) -> JSONResponse:
        # The item changed state meanwhile (another person or worker acted first).
        return JSONResponse({"error": f"{exc}: it changed meanwhile; look at it again",
                             "state": exc.from_state}, status_code=409)

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
    report_form.install(app)  # the public reporting form at /report
    helpline.install(app)  # contacts, helpline cases, referrals
    apidocs.install(app)  # /docs without a CDN
    return app
