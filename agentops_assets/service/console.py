"""The supervisor console: server-rendered pages over the tables, and the forms that act.

``routes`` is mounted by the app at the root. Every page needs a console session (viewer and
up); every form needs approver or admin and the session's CSRF token, and records the
logged-in principal's name as the actor in the tables and the audit ledger. Reading and writing
Delta is blocking work, so it runs in Starlette's threadpool. Errors a person can fix (an empty
rationale, a review decided meanwhile) come back as a sentence on the page, never a traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from agentops_assets.service import views
from agentops_assets.service.access import Principal, check_csrf, require_console
from agentops_assets.service.templates import render
from agentops_assets.storage.config import Paths

__all__ = ["render", "routes"]

logger = logging.getLogger("agentops.service.console")

Handler = Callable[[Request], Awaitable[Response]]
_MAX_FIELDS: Final = 20
_VERDICTS: Final = {"approve": "approve", "reject": "reject"}
_UNTIL_FORMATS: Final = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")


class FormError(Exception):
    """A form that cannot be carried out as filled in; the message says why."""


def _paths(request: Request) -> Paths:
    return getattr(request.app.state, "paths", None) or Paths.from_env()


def _guarded(handler: Handler) -> Handler:
    """Any unexpected error becomes the console's error page, logged with its traceback."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception:
            logger.exception("console page %s failed", request.url.path)
            return render(
                request,
                "error.html",
                status_code=500,
                title="Something went wrong",
                message="The page could not be built; the service log has the details.",
            )

    return wrapped


async def _form(request: Request, need: str = "approver") -> tuple[Principal, dict[str, str]]:
    """The acting principal and the form's text fields, or raise the refusal to return."""
    principal = require_console(request, need)
    if isinstance(principal, Response):
        raise _Refused(principal)
    async with request.form(max_files=0, max_fields=_MAX_FIELDS) as form:
        fields = {key: str(value).strip() for key, value in form.items()}
    refused = check_csrf(request, fields)
    if refused is not None:
        raise _Refused(refused)
    return principal, fields


class _Refused(Exception):
    """Carries the response that refuses a request (login, role, CSRF)."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


def _refusals(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except _Refused as refused:
            return refused.response

    return wrapped


def page(handler: Handler) -> Handler:
    """A console route: refusals answered, unexpected errors shown as the error page."""
    return _guarded(_refusals(handler))


def _viewer(request: Request) -> None:
    allowed = require_console(request, "viewer")
    if isinstance(allowed, Response):
        raise _Refused(allowed)


# --- pages ----------------------------------------------------------------------------------


@page
async def fleet_page(request: Request) -> Response:
    """``GET /``: the fleet overview."""
    _viewer(request)
    data = await run_in_threadpool(views.fleet, _paths(request))
    return render(request, "fleet.html", nav="fleet", **data)


@page
async def reviews_page(request: Request) -> Response:
    """``GET /reviews``: the pending review items, filterable by zone and agent."""
    _viewer(request)
    return await _reviews(request)


async def _reviews(
    request: Request,
    *,
    error: str | None = None,
    failed: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    query = request.query_params
    try:
        number = max(0, int(query.get("page", "0")))
    except ValueError:
        number = 0
    wanted = views.ReviewFilter(
        zone=query.get("zone") or None, agent=query.get("agent") or None, page=number
    )
    paths = _paths(request)
    data = await run_in_threadpool(views.review_page, paths, wanted)
    done = query.get("done")
    notice = await run_in_threadpool(_review_notice, paths, done) if done else None
    return render(
        request,
        "reviews.html",
        status_code=status_code,
        nav="reviews",
        error=error,
        failed=failed or {},
        notice=notice,
        **data,
    )


def _review_notice(paths: Paths, review_id: str) -> dict[str, Any] | None:
    """The item just decided, as it stands in the queue (the notice after a redirect)."""
    import polars as pl

    from agentops_assets.governance.review import reviews

    rows = reviews(paths).filter(pl.col("review_id") == review_id)
    return rows.row(0, named=True) if rows.height else None


@page
async def decide_review(request: Request) -> Response:
    """``POST /reviews/{review_id}``: approve or reject, with rationale and optional
    correction and lesson key."""
    principal, fields = await _form(request)
    review_id = request.path_params["review_id"]
    try:
        await run_in_threadpool(_decide, _paths(request), review_id, principal, fields)
    except FormError as error:
        failed = fields | {"review_id": review_id}
        return await _reviews(request, error=str(error), failed=failed, status_code=400)
    return RedirectResponse(f"/reviews?done={review_id}", 303)


def _decide(paths: Paths, review_id: str, principal: Principal, fields: dict[str, str]) -> None:
    from agentops_assets.governance.review import LESSON_NAMESPACE, ReviewError, decide
    from memory import FactChange, MemoryStoreError

    verdict = _VERDICTS.get(fields.get("verdict", ""))
    if verdict is None:
        raise FormError("choose Approve or Reject.")
    correction = fields.get("correction") or None
    lesson_key = fields.get("lesson_key") or None
    if lesson_key and correction:
        try:  # the key must be a valid fact id before anything is decided
            FactChange.put(lesson_key, correction, namespace=LESSON_NAMESPACE)
        except (MemoryStoreError, ValueError) as error:
            raise FormError(f"the lesson cannot be stored: {error}") from None
    try:
        decide(
            paths,
            review_id,
            verdict,  # type: ignore[arg-type]
            reviewer=principal.name,
            rationale=fields.get("rationale", ""),
            correction=correction,
            lesson_key=lesson_key,
        )
    except ReviewError as error:
        raise FormError(str(error)) from None


@page
async def agent_page(request: Request) -> Response:
    """``GET /agents/{agent_id}``: state, cycles, metrics against baseline, memory."""
    _viewer(request)
    return await _agent(request)


async def _agent(
    request: Request,
    *,
    error: str | None = None,
    failed: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    agent_id = request.path_params["agent_id"]
    try:
        data = await run_in_threadpool(views.agent_page, _paths(request), agent_id)
    except views.NotFoundError as missing:
        return _not_found(request, "No such agent", str(missing))
    return render(
        request,
        "agent.html",
        status_code=status_code,
        nav="fleet",
        error=error,
        failed=failed or {},
        done=request.query_params.get("done"),
        **data,
    )


@page
async def memory_diff(request: Request) -> Response:
    """``GET /agents/{agent_id}/memory/{version}``: what one memory commit changed; a
    fragment for htmx, a page otherwise."""
    _viewer(request)
    agent_id = request.path_params["agent_id"]
    version = request.path_params["version"]
    try:
        data = await run_in_threadpool(views.memory_diff, _paths(request), agent_id, version)
    except views.NotFoundError as missing:
        return _not_found(request, "No such memory version", str(missing))
    fragment = request.headers.get("hx-request") == "true"
    name = "memory_diff.html" if fragment else "memory_diff_page.html"
    return render(request, name, nav="fleet", **data)


@page
async def rollback_memory(request: Request) -> Response:
    """``POST /agents/{agent_id}/memory/rollback``: bring the agent's facts back to a version,
    as a new commit by the logged-in principal, recorded in the audit ledger."""
    principal, fields = await _form(request)
    agent_id = request.path_params["agent_id"]
    try:
        await run_in_threadpool(_rollback, _paths(request), agent_id, principal, fields)
    except FormError as error:
        return await _agent(request, error=str(error), failed=fields, status_code=400)
    return RedirectResponse(f"/agents/{_quoted(agent_id)}?done=rollback#memory", 303)


def _rollback(paths: Paths, agent_id: str, principal: Principal, fields: dict[str, str]) -> None:
    from agentops_assets.governance import audit
    from memory import TABLE_NAME, MemoryStore, MemoryStoreError

    try:
        version = int(fields.get("version", ""))
    except ValueError:
        raise FormError("pick the memory version to roll back to.") from None
    reason = fields.get("reason", "")
    if not reason:
        raise FormError("the reason is empty; say why the memory goes back, in a sentence.")
    store = MemoryStore(paths.table_uri(TABLE_NAME))
    try:
        commit = store.rollback(agent_id, version, reason=reason, author=principal.name)
    except (MemoryStoreError, ValueError) as error:
        raise FormError(str(error)) from None
    if commit is None:
        raise FormError(f"the memory of {agent_id} is already as it was at v{version}.")
    audit.record_memory(audit.ledger(paths), paths)


@page
async def control_agent(request: Request) -> Response:
    """``POST /agents/{agent_id}/control``: set a state above the rules (freeze...) or release,
    with a reason; the states are evaluated again at once so the control file says it now."""
    principal, fields = await _form(request)
    agent_id = request.path_params["agent_id"]
    try:
        await run_in_threadpool(_control, _paths(request), agent_id, principal, fields)
    except FormError as error:
        return await _agent(request, error=str(error), failed=fields, status_code=400)
    return RedirectResponse(f"/agents/{_quoted(agent_id)}?done=control", 303)


def _control(paths: Paths, agent_id: str, principal: Principal, fields: dict[str, str]) -> None:
    from agentops_assets.control.overrides import ControlError, release, set_state
    from agentops_assets.control.refresh import refresh_autonomy
    from agentops_assets.storage.policy_file import PolicyFileError

    action = fields.get("action")
    reason = fields.get("reason", "")
    agent_type = views.agent_type_of(paths, agent_id)
    if agent_type is None:
        raise FormError(f"no agent {agent_id!r} in this home's telemetry or states.")
    try:
        if action == "set":
            state = fields.get("state", "")
            until = _until(fields.get("until", ""))
            set_state(
                paths, agent_type, agent_id, state, reason=reason, by=principal.name, until=until
            )
        elif action == "release":
            release(paths, agent_type, agent_id, reason=reason, by=principal.name)
        else:
            raise FormError("choose Set state or Release.")
        refresh_autonomy(paths)
    except (ControlError, PolicyFileError) as error:
        raise FormError(str(error)) from None


def _until(text: str) -> datetime | None:
    if not text:
        return None
    for layout in _UNTIL_FORMATS:
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise FormError(f"'until' {text!r} is no time; write it as 2026-12-05 18:00 (UTC).")


@page
async def trace_page(request: Request) -> Response:
    """``GET /traces/{trace_id}``: one reasoning cycle end to end (``agentops audit trace``)."""
    from agentops_assets.governance.trace import TraceNotFoundError, trace

    _viewer(request)
    asked = request.path_params["trace_id"]
    try:
        found = await run_in_threadpool(trace, _paths(request), asked)
    except TraceNotFoundError as missing:
        return _not_found(request, "No such trace", str(missing))
    return render(request, "trace.html", nav="fleet", **views.trace_view(found))


@page
async def budgets_page(request: Request) -> Response:
    """``GET /budgets``: spend per day against the caps."""
    _viewer(request)
    data = await run_in_threadpool(views.budgets_page, _paths(request))
    return render(request, "budgets.html", nav="budgets", **data)


@page
async def drift_page(request: Request) -> Response:
    """``GET /drift``: drift findings and anomalies per day, metrics against baselines."""
    _viewer(request)
    data = await run_in_threadpool(views.drift_page, _paths(request))
    return render(request, "drift.html", nav="drift", **data)


def _not_found(request: Request, title: str, message: str) -> Response:
    return render(request, "error.html", status_code=404, title=title, message=message)


def _quoted(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


routes: list[BaseRoute] = [
    Route("/", fleet_page, methods=["GET"]),
    Route("/reviews", reviews_page, methods=["GET"]),
    Route("/reviews/{review_id}", decide_review, methods=["POST"]),
    Route("/agents/{agent_id}", agent_page, methods=["GET"]),
    Route("/agents/{agent_id}/memory/{version:int}", memory_diff, methods=["GET"]),
    Route("/agents/{agent_id}/memory/rollback", rollback_memory, methods=["POST"]),
    Route("/agents/{agent_id}/control", control_agent, methods=["POST"]),
    Route("/traces/{trace_id}", trace_page, methods=["GET"]),
    Route("/budgets", budgets_page, methods=["GET"]),
    Route("/drift", drift_page, methods=["GET"]),
]
