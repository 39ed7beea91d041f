"""Rendering helpers: the Jinja2 environment, filters, the defanged URL, and the
language of each page (the viewer's choice, else the browser's Accept-Language)."""

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
from pipeline.core.i18n import N_, _
from pipeline.web.console.labels import action_label, label

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"

ANALYSTS = ("analyst", "supervisor")
EVERYONE = ("analyst", "supervisor", "admin", "auditor")

# (link, label, roles that see it) for the navigation bar.
NAV = [
    ("/console/", N_("Queue"), ANALYSTS),
    ("/console/search", N_("Search"), ("analyst", "supervisor", "admin", "auditor")),
    ("/console/review", N_("Four eyes"), ANALYSTS),
    ("/console/police", N_("Police holds"), ("analyst", "supervisor", "admin")),
    ("/console/notices", N_("Notices"), EVERYONE),
    ("/console/mail", N_("Mailbox"), ("analyst", "supervisor", "counsellor")),
    ("/console/team", N_("Team"), ("supervisor", "admin")),
    ("/console/stats", N_("Statistics"), EVERYONE),
    ("/console/rules", N_("Rules"), ("supervisor", "admin", "auditor")),
    ("/console/admin", N_("Users"), ("admin",)),
    ("/console/helpline", N_("Helpline"), ("counsellor", "supervisor")),
]

# The viewer's language: a cookie set by the switch in the page header.
LANGUAGE_COOKIE = "hotline_lang"
LANGUAGES = i18n.DEFAULT_LANGUAGES  # when a runtime names none


def languages_of(request: Request) -> tuple[str, ...]:
    """The console's languages (`console.languages`), the default first."""
    chosen = getattr(request.app.state.runtime.settings.console, "languages", None)
    return tuple(chosen) if chosen else LANGUAGES

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
    """`07.12.2026. 14:05 UTC` in Serbian, `Dec 7, 2026, 2:05 PM UTC` in English."""
    if value is None:
        return ""
    return i18n.format_datetime(as_utc(value), tz="UTC") + " UTC"


def fmt_duration(value: timedelta | float | int | None) -> str:
    """`3 d 4 h`, `5 h 12 min`, `42 min` (seconds as numbers are accepted)."""
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return _("%(days)s d %(hours)s h") % {"days": days, "hours": hours}
    if hours:
        return _("%(hours)s h %(mins)s min") % {"hours": hours, "mins": mins}
    return _("%(mins)s min") % {"mins": mins}


def humanise(value: Any) -> str:
    """`awaiting_assessment` -> `awaiting assessment`, in the page's language."""
    if value is None:
        return ""
    return label(re.sub(r"\s+", "_", str(value).strip()))


def language_of(request: Request) -> str:
    """The language the viewer chose (cookie), else the one the browser asks for."""
    offered = languages_of(request)
    chosen = i18n.canonical(request.cookies.get(LANGUAGE_COOKIE))
    if chosen in offered:
        return chosen
    return i18n.negotiate(request.headers.get("accept-language"), offered)


templates = Jinja2Templates(directory=str(TEMPLATES))
i18n.install(templates.env)
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
templates.env.filters["label"] = label
templates.env.filters["action"] = action_label
# A message chosen in Python (marked with N_) translated where it is shown.
templates.env.filters["t"] = lambda value: _(str(value)) if value else ""
templates.env.filters["number"] = lambda value: i18n.format_number(value)
# A refused form's problem (`pipeline.domain.problems.Problem`) as a sentence.
templates.env.filters["problem"] = lambda problem: problem.text(i18n.current_language())


def render(request: Request, name: str, context: dict[str, Any],
           status_code: int = 200) -> Response:
    runtime = request.app.state.runtime
    viewer = getattr(request.state, "viewer", None)
    language = language_of(request)
    base = {
        "lang": language,
        "languages": [(tag, i18n.NATIVE_NAMES[tag]) for tag in languages_of(request)],
        "hotline_name": runtime.settings.app.name,
        "viewer": viewer,
        "now": runtime.clock.now(),
        "path": request.url.path,
        "nav": NAV,
        "registries": registries_banner(runtime, request.url.path) if viewer else None,
    }
    with i18n.set_language(language):
        response = templates.TemplateResponse(request, name, {**base, **context},
                                              status_code=status_code)
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language, Cookie"
    return response
