"""The Starlette application: OTLP receiver, decision gate, console, and who may use which.

One middleware identifies every request (a bearer token, else the console session cookie),
refuses what needs a login it lacks, checks CSRF on every state-changing session request, and
adds security headers; route handlers then check roles. Every refusal is logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers
from starlette.requests import Request, cookie_parser
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from agentops_assets.service.access import (
    SESSION_SECONDS,
    Principal,
    RefusalLog,
    Session,
    SessionStore,
    TokenStore,
)
from agentops_assets.storage.config import Paths

if TYPE_CHECKING:
    from agentops_assets.service.gate import Gate
    from agentops_assets.service.receiver import Receiver

__all__ = ["SESSION_COOKIE", "check_csrf", "create_app", "require_console"]

logger = logging.getLogger("agentops.service")

SESSION_COOKIE = "agops_session"
MAX_BODY_BYTES = 16 * 2**20
_MAX_DECIDE_BYTES = 2**20  # an action document is small; a bigger one is a mistake or abuse
_MAX_FORM_BYTES = 2**20  # console forms: a rationale and a correction at most
_MAX_LOGIN_BYTES = 8192
_PUBLIC = ("/healthz", "/login", "/favicon.ico")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSP = (
    "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def create_app(
    paths: Paths,
    *,
    receiver: Receiver | None = None,
    gate: Gate | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    session_seconds: float = SESSION_SECONDS,
) -> Starlette:
    """Build the service for one ``$AGENTOPS_HOME``.

    Args:
        paths: The home whose landing folder, tables, policies and tokens the service uses.
        receiver: A ready ``Receiver``; built in the background at startup when omitted.
        gate: A ready ``Gate``; built in the background at startup when omitted.
        max_body_bytes: Largest telemetry request body accepted (413 above it).
        session_seconds: How long a console login lasts.

    Returns:
        The Starlette app; ``/healthz`` answers 503 until the receiver and gate are ready.
    """
    tokens = TokenStore(paths)
    access = _Access(tokens, SessionStore(tokens, ttl_seconds=session_seconds), RefusalLog(paths))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        preparing = asyncio.create_task(_prepare(app, paths, max_body_bytes))
        try:
            yield
        finally:
            await asyncio.shield(preparing)
            if app.state.gate is not None:
                await run_in_threadpool(app.state.gate.close)  # flush pending decision logs

    app = Starlette(routes=_routes(), lifespan=lifespan)
    app.state.paths = paths
    app.state.access = access
    app.state.receiver = receiver
    app.state.gate = gate
    app.state.failure = None
    app.state.max_body_bytes = getattr(receiver, "max_body_bytes", max_body_bytes)
    app.add_middleware(_AccessMiddleware, access=access)
    return app


class _Access:
    """The token store, sessions and refusal log one app shares."""

    def __init__(self, tokens: TokenStore, sessions: SessionStore, refusals: RefusalLog) -> None:
        self.tokens = tokens
        self.sessions = sessions
        self.refusals = refusals


async def _prepare(app: Starlette, paths: Paths, max_body_bytes: int) -> None:
    """Build what was not given; until then /healthz and the APIs answer 503."""
    try:
        if app.state.receiver is None:
            from agentops_assets.service.receiver import Receiver

            app.state.receiver = await run_in_threadpool(
                Receiver, paths, max_body_bytes=max_body_bytes
            )
            app.state.max_body_bytes = max_body_bytes
        if app.state.gate is None:
            from agentops_assets.service.gate import Gate

            app.state.gate = await run_in_threadpool(Gate, paths)
    except Exception as error:  # reported by /healthz and the log; the service stays down
        app.state.failure = f"{type(error).__name__}: {error}"
        logger.exception("the service could not start")


def _ready(request: Request) -> bool:
    state = request.app.state
    return state.receiver is not None and state.gate is not None


def _routes() -> list[BaseRoute]:
    static = Path(__file__).parent / "static"
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/traces", traces, methods=["POST"]),
        Route("/v1/events", events, methods=["POST"]),
        Route("/v1/decide", decide, methods=["POST"]),
        Route("/v1/reviews/{review_id}", review, methods=["GET"]),
        Route("/v1/agents/{agent_id}/state", agent_state, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static, check_dir=False), name="static"),
        *_console_routes(),
    ]


def _console_routes() -> list[BaseRoute]:
    # Imported here, not at the top: `agentops token` needs access.py without the console's
    # (and the gate's) heavy imports.
    from agentops_assets.service.console import routes

    return list(routes)


# -- responses -------------------------------------------------------------------------------


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(content, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status, headers=headers, media_type="application/json")


def _refuse(request: Request, status: int, reason: str) -> Response:
    """Log a refusal and answer it: JSON for the APIs, a short page for the console."""
    _log_refusal(request.app.state.access, request.scope, status, reason)
    return _refusal_response(request.scope, status, reason)


def _log_refusal(
    access: _Access, scope: Scope, status: int, reason: str, principal: Principal | None = None
) -> None:
    client = scope.get("client")
    access.refusals.record(
        route=scope["path"],
        method=scope["method"],
        principal=principal or scope.get("state", {}).get("principal"),
        status=status,
        reason=reason,
        client=f"{client[0]}:{client[1]}" if client else None,
    )


def _refusal_response(scope: Scope, status: int, reason: str) -> Response:
    if scope["path"].startswith("/v1/"):
        headers = {"WWW-Authenticate": 'Bearer realm="agentops"'} if status == 401 else None
        return _json({"error": reason}, status, headers)
    from agentops_assets.service.templates import render

    title = {401: "Login needed", 403: "Not allowed"}.get(status, "Refused")
    message = f"{reason[:1].upper()}{reason[1:]}."
    return render(Request(scope), "error.html", status_code=status, title=title, message=message)


# -- API routes ------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """200 once the receiver and gate are ready, 503 before (or when they failed)."""
    if _ready(request):
        return _json({"status": "ok"})
    failure = request.app.state.failure
    return _json({"status": "failed" if failure else "starting", "error": failure}, 503)


def _principal(request: Request) -> Principal | None:
    return request.scope.get("state", {}).get("principal")


async def traces(request: Request) -> Response:
    """OTLP/HTTP traces (protobuf or JSON, gzip or not) into a landing file."""
    return await _telemetry(request, "traces")


async def events(request: Request) -> Response:
    """A batch of native JSONL reasoning-log events into a landing file."""
    return await _telemetry(request, "events")


async def _telemetry(request: Request, kind: str) -> Response:
    principal = _principal(request)
    if principal is None or not principal.can("agent"):
        return _refuse(request, 403, "sending telemetry needs role agent or admin")
    if not _ready(request):
        return _json({"error": "the service is starting"}, 503, {"Retry-After": "1"})
    limit = request.app.state.max_body_bytes
    body = await _read_body(request, limit)
    receiver = request.app.state.receiver
    if body is None:
        message = f"The request body is above the limit of {limit:,} bytes."
        reply = receiver.refusal(413, message, content_type=request.headers.get("content-type"))
        return Response(reply.body, 413, media_type=reply.content_type)
    reply = await run_in_threadpool(
        getattr(receiver, kind),
        body,
        content_type=request.headers.get("content-type"),
        content_encoding=request.headers.get("content-encoding"),
        agents=principal.agents if principal.role == "agent" else None,
    )
    if reply.status in (401, 403):
        reason = _status_message(reply.body, reply.content_type)
        _log_refusal(request.app.state.access, request.scope, reply.status, reason)
    return Response(
        reply.body, reply.status, headers=dict(reply.headers), media_type=reply.content_type
    )


def _status_message(body: bytes, content_type: str) -> str:
    """The message of a receiver's ``google.rpc.Status`` reply (JSON or protobuf)."""
    try:
        if "protobuf" in content_type:
            from google.rpc.status_pb2 import Status

            return Status.FromString(body).message or "refused by the receiver"
        return str(orjson.loads(body).get("message")) or "refused by the receiver"
    except Exception:  # a reason for the log only; never fail the reply over it
        return body[:300].decode("utf-8", "replace") or "refused by the receiver"


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit`` (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# The gate's calls that wait (a policy evaluation, a review's fsync, a lake read) run on a few
# threads of their own, taken in arrival order, not on the 40 of Starlette's shared pool: a
# decision is ~0.2 ms of Python, so more threads only add contenders for the GIL (the event
# loop among them) and answer out of order, which stretched the tail under load. Four let
# fsyncs and evaluations (outside the GIL, on the bundles' own threads) overlap.
GATE_THREADS = 4
_gate_pool: ThreadPoolExecutor | None = None
_gate_pool_lock = threading.Lock()
_T = TypeVar("_T")


async def _in_gate_thread(call: Callable[[], _T]) -> _T:
    """``call()`` on the gate's threads (see :data:`GATE_THREADS`)."""
    global _gate_pool
    if _gate_pool is None:
        with _gate_pool_lock:
            if _gate_pool is None:
                _gate_pool = ThreadPoolExecutor(GATE_THREADS, thread_name_prefix="gate-call")
    return await asyncio.get_running_loop().run_in_executor(_gate_pool, call)


def _server_timing(timings: dict[str, float]) -> str:
    """A ``Server-Timing`` header value (milliseconds) of a decision's phases: ``queue``
    (waiting for a gate thread), the gate's own phases, and ``handler`` (this handler in all,
    from the body read to the answer ready)."""
    return ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, seconds in timings.items())


async def decide(request: Request) -> Response:
    """Ask whether an action may go ahead: allow, review or deny (fails closed). The answer
    carries the phases' times in a ``Server-Timing`` header."""
    began = time.perf_counter()
    principal = _principal(request)
    if principal is None or not principal.can("agent"):
        return _refuse(request, 403, "asking for decisions needs role agent or admin")
    if not _ready(request):
        return _json({"error": "the service is starting"}, 503, {"Retry-After": "1"})
    body = await _read_body(request, _MAX_DECIDE_BYTES)
    if body is None:
        return _json({"error": f"action document above {_MAX_DECIDE_BYTES:,} bytes"}, 413)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return _json({"error": f"the body is not JSON: {error}"}, 400)
    if principal.role == "agent":
        agent_id = document.get("agent_id") if isinstance(document, dict) else None
        if not principal.speaks_for(agent_id):
            return _refuse(request, 403, f"agent id {agent_id!r} is not one of this token's")
    gate = request.app.state.gate
    timings: dict[str, float] = {}
    # Most answers need nothing that waits (cached context, memoized policy answer): given
    # here, on the loop, they skip a thread's round trip and its turns of the GIL; a review's
    # thread only waits for its journal line's fsync. The others are decided on a thread.
    now = gate.decide_now(document, caller=principal.name, timings=timings)
    queued = time.perf_counter()

    def call() -> dict[str, Any]:
        waited = time.perf_counter() - queued
        if now is None:
            timings.clear()  # what decide_now measured before it gave up
        timings["queue"] = waited
        if now is not None:
            return now.finish()  # the review's answer, once its journal line is on disk
        return gate.decide(document, caller=principal.name, timings=timings)

    result = now if isinstance(now, dict) else await _in_gate_thread(call)
    timings["handler"] = time.perf_counter() - began
    return _json(result, headers={"Server-Timing": _server_timing(timings)})


async def review(request: Request) -> Response:
    """The state and outcome of one review an earlier decision opened."""
    principal = _principal(request)
    if principal is None or not (principal.can("viewer") or principal.role == "agent"):
        return _refuse(request, 403, "reading reviews needs role viewer or above")
    if not _ready(request):
        return _json({"error": "the service is starting"}, 503, {"Retry-After": "1"})
    review_id = request.path_params["review_id"]
    # Starlette's pool, not the gate's threads: a review reads the queue table (milliseconds).
    item = await run_in_threadpool(request.app.state.gate.review, review_id)
    if item is None:
        return _json({"error": f"no review {review_id!r}"}, 404)
    if not principal.may_read(item.get("agent_id")):
        return _refuse(request, 403, "the review is about an agent not of this token's")
    return _json(item)


async def agent_state(request: Request) -> Response:
    """The control output for one agent: its autonomy state, allowed tools and route."""
    principal = _principal(request)
    agent_id = request.path_params["agent_id"]
    if principal is None or not principal.may_read(agent_id):
        return _refuse(request, 403, f"reading agent {agent_id!r} is not allowed for this token")
    if not _ready(request):
        return _json({"error": "the service is starting"}, 503, {"Retry-After": "1"})
    from agentops_assets.service.gate import GateError

    try:
        state = await run_in_threadpool(request.app.state.gate.agent_state, agent_id)
    except GateError as error:  # the control file cannot be read: say so, do not guess
        return _json({"error": str(error)}, 503, {"Retry-After": "5"})
    if state is None:
        return _json({"error": f"no agent {agent_id!r}"}, 404)
    return _json(state)


# -- login and logout ------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an absolute or scheme-relative URL (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _render_login(request: Request, *, error: str | None, next_: str, status: int) -> Response:
    from agentops_assets.service.templates import render

    return render(request, "login.html", status_code=status, error=error, next=next_)


async def login_page(request: Request) -> Response:
    """The login form; with a live session already, straight on to ``next``."""
    next_ = _safe_next(request.query_params.get("next"))
    if _principal(request) is not None and request.state.session is not None:
        return RedirectResponse(next_, 303)
    return _render_login(request, error=None, next_=next_, status=200)


async def login(request: Request) -> Response:
    """Exchange a token for a console session cookie (HttpOnly, SameSite=Strict)."""
    access: _Access = request.app.state.access
    if _cross_site(request.headers):  # login CSRF: another site logging a browser in
        return _refuse(request, 403, f"cross-site request from {request.headers['origin']}")
    body = await _read_body(request, _MAX_LOGIN_BYTES)
    if body is None:
        return _json({"error": "the login form is too large"}, 413)
    async with Request(request.scope, _replay(body, then=request.receive)).form(
        max_files=0, max_fields=10
    ) as form:
        token = str(form.get("token") or "").strip()
        next_ = _safe_next(str(form.get("next") or "/"))
    opened = access.sessions.open(token)
    if opened is None:
        _log_refusal(access, request.scope, 401, "login with an unknown or revoked token")
        return _render_login(
            request, error="That token is unknown or revoked.", next_=next_, status=401
        )
    session_id, _, principal = opened
    if not principal.can("viewer"):
        access.sessions.close(session_id)
        _log_refusal(access, request.scope, 403, "agent tokens cannot use the console", principal)
        return _render_login(
            request,
            error="Agent tokens cannot use the console; log in with a viewer, approver or "
            "admin token.",
            next_=next_,
            status=403,
        )
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:  # a login replaces the browser's session, never adds to it
        access.sessions.close(previous)
    response = RedirectResponse(next_, 303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(access.sessions.ttl_seconds),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    logger.info("console login by %s (%s)", principal.name, principal.role)
    return response


async def logout(request: Request) -> Response:
    """End the session (the middleware checked its CSRF token) and forget the cookie."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        request.app.state.access.sessions.close(session_id)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# -- helpers for the console's routes ----------------------------------------------------------


def require_console(request: Request, need: str = "viewer") -> Principal | Response:
    """The principal of a console request, or the response refusing it.

    Without a login: a redirect to ``/login?next=...``; with a role below ``need``: 403.
    """
    principal = _principal(request)
    if principal is None:
        _log_refusal(request.app.state.access, request.scope, 303, "no console session")
        return RedirectResponse(_login_url(request.scope), 303)
    if not principal.can(need):
        return _refuse(request, 403, f"this page needs role {need} or above")
    return principal


def check_csrf(request: Request, form: FormData | dict[str, Any] | None) -> Response | None:
    """None when the form's ``csrf`` field (or the X-CSRF-Token header) matches the session's
    CSRF token, or when the request carries a bearer token (no ambient credential to abuse);
    else the 403 response to return."""
    state = request.scope.get("state", {})
    if state.get("session") is None:
        return None
    supplied = request.headers.get("x-csrf-token") or (form or {}).get("csrf")
    if not _csrf_matches(state["session"], supplied):
        return _refuse(request, 403, "missing or wrong CSRF token")
    return None


def _csrf_matches(session: Session, supplied: object) -> bool:
    return isinstance(supplied, str) and hmac.compare_digest(
        supplied.encode("utf-8", "surrogatepass"), session.csrf.encode()
    )


def _login_url(scope: Scope) -> str:
    target = scope["path"] + (
        f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
    )
    return f"/login?next={quote(target, safe='')}"


# -- the middleware ----------------------------------------------------------------------------


class _AccessMiddleware:
    """Identify the caller, refuse what needs a login or a CSRF token it lacks, add headers."""

    def __init__(self, app: Callable[..., Awaitable[None]], access: _Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        headers = Headers(scope=scope)
        missing = self._identify(headers, state)
        refusal, receive = await self._check(scope, receive, headers, state, missing)
        send = _with_security_headers(
            send, authenticated=state["principal"] is not None, csrf=state["csrf"]
        )
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _identify(self, headers: Headers, state: dict[str, Any]) -> str:
        """Set the principal, session and CSRF token; return why there is no principal, if
        there is none (the reason a refusal logs)."""
        state.update(principal=None, session=None, csrf=None)
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer":
                return "the Authorization header is not a Bearer token"
            state["principal"] = self.access.tokens.verify(token.strip())
            return "unknown or revoked token"
        session_id = _cookie(headers, SESSION_COOKIE)
        if session_id is None:
            return "no token"
        resolved = self.access.sessions.resolve(session_id)
        if resolved is not None:
            session, state["principal"] = resolved
            state.update(session=session, csrf=session.csrf)
        return "session expired or ended"

    async def _check(
        self,
        scope: Scope,
        receive: Receive,
        headers: Headers,
        state: dict[str, Any],
        missing: str,
    ) -> tuple[Response | None, Receive]:
        """(the refusal or None, the receive callable to pass on)."""
        path, method = scope["path"], scope["method"]
        principal: Principal | None = state["principal"]
        if path in _PUBLIC or path.startswith("/static/"):
            return None, receive
        if principal is None:
            return self._unauthenticated(scope, headers, missing), receive
        unsafe = method not in _SAFE_METHODS
        if not path.startswith("/v1/"):
            if not principal.can("viewer"):
                return self._refusal(scope, 403, "agent tokens cannot use the console"), receive
            if unsafe and path != "/logout" and not principal.can("approver"):
                return self._refusal(scope, 403, "changes need role approver or admin"), receive
        if unsafe and state["session"] is not None:
            return await self._check_csrf(scope, receive, headers, state["session"])
        return None, receive

    def _unauthenticated(self, scope: Scope, headers: Headers, reason: str) -> Response:
        if scope["path"].startswith("/v1/") or scope["method"] not in ("GET", "HEAD"):
            return self._refusal(scope, 401, reason)
        _log_refusal(self.access, scope, 303, reason)
        if headers.get("hx-request"):  # htmx follows redirects inside the page; send it away
            return Response(status_code=401, headers={"HX-Redirect": _login_url(scope)})
        return RedirectResponse(_login_url(scope), 303)

    def _refusal(self, scope: Scope, status: int, reason: str) -> Response:
        _log_refusal(self.access, scope, status, reason)
        return _refusal_response(scope, status, reason)

    async def _check_csrf(
        self, scope: Scope, receive: Receive, headers: Headers, session: Session
    ) -> tuple[Response | None, Receive]:
        """A session's state-changing request needs a same-origin Origin (when sent) and the
        session's CSRF token, in the X-CSRF-Token header (htmx) or the form field ``csrf``."""
        if _cross_site(headers):
            reason = f"cross-site request from {headers['origin']}"
            return self._refusal(scope, 403, reason), receive
        supplied: object = headers.get("x-csrf-token")
        if supplied is None and _is_form(headers):
            body = await _buffer(receive, _MAX_FORM_BYTES)
            if body is None:
                return self._refusal(scope, 413, "form above 1 MiB"), receive
            async with Request(scope, _replay(body, then=receive)).form() as form:
                supplied = form.get("csrf")
            receive = _replay(body, then=receive)  # the route reads the same form again
        if not _csrf_matches(session, supplied):
            return self._refusal(scope, 403, "missing or wrong CSRF token"), receive
        return None, receive


def _cross_site(headers: Headers) -> bool:
    """Whether the browser says the request comes from another origin: Origin, when sent,
    must name this host (``null``, sent from sandboxed frames, never does)."""
    origin = headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != headers.get("host")


def _cookie(headers: Headers, name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw or name not in raw:
        return None
    # Starlette's parser, as Request.cookies: a malformed neighbour cookie does not hide ours.
    return cookie_parser(raw).get(name)


def _is_form(headers: Headers) -> bool:
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data")


async def _buffer(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, *, then: Receive) -> Receive:
    """A receive callable that yields the already read ``body`` once, then hands over to
    ``then`` (which reports the client's disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return receive


def _with_security_headers(send: Send, *, authenticated: bool, csrf: str | None) -> Send:
    """Add the security headers; a session's responses also carry its CSRF token (readable by
    same-origin scripts only), which htmx and API clients echo in X-CSRF-Token."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.setdefault("headers", [])
            present = {name.lower() for name, _ in headers}
            extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
            content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            if content_type.startswith(b"text/html"):
                extra += [
                    (b"content-security-policy", _CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                ]
            if authenticated and b"cache-control" not in present:
                extra.append((b"cache-control", b"no-store"))
            if csrf is not None:
                extra.append((b"x-csrf-token", csrf.encode()))
            headers.extend(pair for pair in extra if pair[0] not in present)
        await send(message)

    return wrapped
