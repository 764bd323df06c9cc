"""The console's Jinja2 environment and :func:`render`, shared by the console and the login page.

Templates live in ``service/templates/`` and ship inside the package. Autoescaping is on for
every template, so whatever the tables hold (agent ids, reasons, memory facts) is shown as text,
never as markup.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from agentops_assets.service import charts

TEMPLATE_DIR: Final = Path(__file__).parent / "templates"


@cache
def environment() -> jinja2.Environment:
    """The one Jinja2 environment of the console (built on first use)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the tests, not the page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        usd=money,
        pct=ratio_percent,
        num=number,
        when=moment,
        day=day_text,
        short=shorten,
    )
    return env


def render(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from ``templates/<name>`` with the request's principal and CSRF token.

    Args:
        request: The request (``request.state.principal`` and ``request.state.csrf`` are read
            when the app's middleware set them).
        name: The template, e.g. ``"login.html"``.
        status_code: The HTTP status of the response.
        **context: The template's variables (``login.html``: ``error`` and ``next``).
    """
    principal = getattr(request.state, "principal", None)
    page = (
        environment()
        .get_template(name)
        .render(
            request=request,
            path=request.url.path,
            principal=principal,
            csrf=getattr(request.state, "csrf", None),
            can_act=principal is not None and _can(principal, "approver"),
            **context,
        )
    )
    return HTMLResponse(page, status_code=status_code)


def _can(principal: Any, need: str) -> bool:
    return bool(getattr(principal, "can", lambda _: False)(need))


def money(value: float | None) -> str:
    """US dollars for a table cell; an em dash for a missing value."""
    return "—" if value is None else charts.usd(float(value))


def ratio_percent(value: float | None, digits: int = 1) -> str:
    """A 0..1 ratio as a percentage; an em dash for a missing value."""
    return "—" if value is None else f"{float(value) * 100:.{digits}f} %"


def number(value: float | None, digits: int = 0) -> str:
    """A number with grouped thousands; an em dash for a missing value."""
    return "—" if value is None else f"{float(value):,.{digits}f}"


def moment(value: datetime | None) -> str:
    """A UTC time to the minute; an em dash for none."""
    return "—" if value is None else f"{value:%Y-%m-%d %H:%M}"


def day_text(value: date | datetime | None) -> str:
    """A day as ISO text; an em dash for none."""
    return "—" if value is None else f"{value:%Y-%m-%d}"


def shorten(value: object, width: int = 80) -> str:
    """Text cut to ``width`` characters with an ellipsis (the full text goes in a title)."""
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
