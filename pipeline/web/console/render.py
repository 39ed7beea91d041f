"""Rendering helpers: the Jinja2 environment, filters, and the defanged URL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from pipeline.adapters.tracing.breaker import BREAKERS
from pipeline.app.health import unreachable_cases
from pipeline.core import i18n
from pipeline.core.clock import as_utc

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"

ANALYSTS = ("analyst", "supervisor")
EVERYONE = ("analyst", "supervisor", "admin", "auditor")

# (link, label, roles that see it) for the navigation bar.
NAV = [
    ("/console/", "Queue", ANALYSTS),
    ("/console/review", "Four eyes", ANALYSTS),
    ("/console/police", "Police holds", ("analyst", "supervisor", "admin")),
    ("/console/mail", "Mailbox", ANALYSTS),
    ("/console/team", "Team", ("supervisor", "admin")),
    ("/console/stats", "Statistics", EVERYONE),
    ("/console/rules", "Rules", ("supervisor", "admin", "auditor")),
    ("/console/admin", "Users", ("admin",)),
    ("/console/helpline", "Helpline", ("counsellor", "supervisor")),
]

_SCHEMES = {"http": "hxxp", "https": "hxxps", "ftp": "fxp", "ftps": "fxps"}


def defang(url: str | None) -> str:
    """A URL made safe to show: `hxxps://example[.]com/a.b` (scheme and host dots).

    The result is not a URL any browser or mail client will turn into a link.
    """
    if not url:
        return ""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        return url.replace(".", "[.]")
    rest = url[len(parts.scheme) + 3:]  # after "scheme://"
    netloc_end = len(parts.netloc)
    netloc = rest[:netloc_end].replace(".", "[.]").replace("@", "[@]")
    fanged = _SCHEMES.get(scheme, scheme.replace("t", "x", 1) if "t" in scheme else scheme)
    return f"{fanged}[://]{netloc}{rest[netloc_end:]}"


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def fmt_duration(value: timedelta | float | int | None) -> str:
    """`3 d 4 h`, `5 h 12 min`, `42 min` (seconds as numbers are accepted)."""
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def humanise(value: Any) -> str:
    """`awaiting_assessment` -> `awaiting assessment`."""
    if value is None:
        return ""
    return re.sub(r"_+", " ", str(value))


templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters["defang"] = defang
templates.env.filters["when"] = fmt_time
templates.env.filters["duration"] = fmt_duration
templates.env.filters["human"] = humanise
# gettext for the pages whose text is in the catalogs (the helpline's): the
# language is the one the page sets with `i18n.set_language` (Serbian by default).
i18n.install(templates.env)


# The start pages (pipeline.web.console.routes.HOME) say how many cases were traced
# while the registries were unreachable; every page says which registries
# of this process do not answer.
START_PAGES = ("/console/", "/console/admin")


def registries_banner(runtime: Any, path: str) -> dict[str, Any] | None:
    down = [c.server for c in BREAKERS.circuits() if c.state != "closed"]
    waiting = 0
    if path in START_PAGES:
        with runtime.session_factory() as session:
            waiting = unreachable_cases(session)
    if not down and not waiting:
        return None
    return {"down": down, "waiting": waiting}


def render(request: Request, name: str, context: dict[str, Any],
           status_code: int = 200) -> Response:
    runtime = request.app.state.runtime
    viewer = getattr(request.state, "viewer", None)
    base = {
        "hotline_name": runtime.settings.app.name,
        "viewer": viewer,
        "now": runtime.clock.now(),
        "path": request.url.path,
        "nav": NAV,
        "registries": registries_banner(runtime, request.url.path) if viewer else None,
    }
    return templates.TemplateResponse(request, name, {**base, **context},
                                      status_code=status_code)
