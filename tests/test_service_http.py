"""The service over real HTTP (uvicorn on loopback): the auth matrix of every route and every
role, CSRF, the session cookie, the login redirect, security headers, the body limit, and
`agentops serve` as a process (SIGTERM, a port in use, a bad host)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from starlette.routing import Route

from agentops_assets.control.output import control_path, write_atomically
from agentops_assets.governance.tables import POLICY_DECISIONS
from agentops_assets.service.access import TokenStore
from agentops_assets.service.app import SESSION_COOKIE, create_app
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from tests.conftest import event
from tests.service_server import (
    OTHER_AGENT,
    OWN_AGENT,
    bearer,
    free_port,
    login,
    role_tokens,
    running_service,
    serve_subprocess,
)

CALLERS = ("none", "agent", "agent_other", "viewer", "approver", "admin")
PEOPLE = ("viewer", "approver", "admin")
# The app's own routes; every other route in its table is the console's (discovered below).
OWN_PATHS = {
    "/healthz",
    "/v1/traces",
    "/v1/events",
    "/v1/decide",
    "/v1/reviews/{review_id}",
    "/v1/agents/{agent_id}/state",
    "/login",
    "/logout",
    "/static",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _events_body() -> bytes:
    return orjson.dumps(event(1, agent_id=OWN_AGENT, ts=_now())) + b"\n"


def _traces_body() -> bytes:
    nanos = str(int(datetime.now(UTC).timestamp() * 1e9))
    attributes = [
        {"key": "gen_ai.agent.id", "value": {"stringValue": OWN_AGENT}},
        {"key": "gen_ai.agent.name", "value": {"stringValue": "FinanceAgent"}},
    ]
    span = {
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spanId": "00f067aa0ba902b7",
        "name": "chat gpt-4o-mini",
        "kind": 3,
        "startTimeUnixNano": nanos,
        "endTimeUnixNano": nanos,
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}],
    }
    body = {
        "resourceSpans": [
            {"resource": {"attributes": attributes}, "scopeSpans": [{"spans": [span]}]}
        ]
    }
    return orjson.dumps(body)


def _decision_document(**overrides: object) -> dict[str, object]:
    document: dict[str, object] = {
        "agent_id": OWN_AGENT,
        "agent_type": "FinanceAgent",
        "kind": "tool_call",
        "action": "ledger.query",
        "input_context": "Sum the ledger for account 42.",
    }
    return {**document, **overrides}


@dataclass
class Service:
    """One running service with a token (and, for people, a console session) per role."""

    url: str
    paths: Paths
    tokens: dict[str, str]
    names: dict[str, str]
    sessions: dict[str, httpx.Client]
    review_id: str
    console: list[tuple[str, str]]  # (method, path format) of the console's routes

    @property
    def refusals(self) -> Path:
        return self.paths.home / "access" / "refusals.jsonl"

    def refusal_lines(self) -> list[dict]:
        if not self.refusals.exists():
            return []
        return [orjson.loads(line) for line in self.refusals.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("service") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENTOPS_HOME", str(home))
        patch.delenv("AGENTOPS_LAKE_URI", raising=False)
        patch.delenv("AGENTOPS_POLICIES", raising=False)
        paths = Paths.from_env()
        _publish_control(paths)
        tokens = role_tokens(paths)
        store = TokenStore(paths)
        names = {role: store.verify(token).name for role, token in tokens.items()}
        with running_service(paths) as url:
            sessions = {role: login(url, tokens[role]) for role in PEOPLE}
            review_id = _open_review(url, tokens["admin"])
            routes = create_app(paths).routes
            console = [
                (method, route.path_format)
                for route in routes
                if isinstance(route, Route) and route.path not in OWN_PATHS
                for method in sorted(route.methods or ()) if method != "HEAD"
            ]  # fmt: skip
            try:
                yield Service(url, paths, tokens, names, sessions, review_id, console)
            finally:
                for client in sessions.values():
                    client.close()


def _publish_control(paths: Paths) -> None:
    """A control file with OWN_AGENT's entry, as `agentops run` would publish it."""
    entry = {"state": "normal", "reason": "no findings", "since": None, "until": None}
    write_atomically(
        control_path(paths),
        {
            "day": datetime.now(UTC).date().isoformat(),
            "generated_at": _now(),
            "agents": {OWN_AGENT: {**entry, "agent_type": "FinanceAgent"}},
            "agent_types": {"FinanceAgent": entry},
        },
    )


def _open_review(url: str, admin: str) -> str:
    """A review about OWN_AGENT: a refund above FinanceAgent's limit needs an approval."""
    document = _decision_document(action="payments.refund", amount_usd=50_000)
    reply = httpx.post(f"{url}/v1/decide", json=document, headers=bearer(admin), timeout=30)
    assert reply.status_code == 200 and reply.json()["decision"] == "review", reply.text
    return reply.json()["review_id"]


# -- the matrix ------------------------------------------------------------------------------

SEND = {"none": 401, "agent": 200, "agent_other": 403, "viewer": 403, "approver": 403}
SEND["admin"] = 200
READ = {"none": 401, "agent": 200, "agent_other": 403, "viewer": 200, "approver": 200}
READ["admin"] = 200
PUBLIC = dict.fromkeys(CALLERS, 200)
API = [
    ("GET", "/healthz", PUBLIC),
    ("POST", "/v1/events", SEND),
    ("POST", "/v1/traces", SEND),
    ("POST", "/v1/decide", SEND),
    ("GET", "/v1/reviews/{review_id}", READ),
    ("GET", "/v1/agents/{agent_id}/state", READ),
]


def _api_request(service: Service, method: str, route: str, caller: str) -> httpx.Response:
    path = route.format(review_id=service.review_id, agent_id=OWN_AGENT)
    headers = bearer(service.tokens.get(caller))
    body: bytes | None = None
    if route == "/v1/events":
        headers["Content-Type"], body = "application/x-ndjson", _events_body()
    elif route == "/v1/traces":
        headers["Content-Type"], body = "application/json", _traces_body()
    elif route == "/v1/decide":
        headers["Content-Type"], body = "application/json", orjson.dumps(_decision_document())
    return httpx.request(method, service.url + path, headers=headers, content=body, timeout=30)


def _assert_refusal_logged(service: Service, before: int, reply: httpx.Response, caller: str):
    lines = service.refusal_lines()
    assert len(lines) == before + 1, f"expected one refusal line, got {lines[before:]}"
    line = lines[-1]
    assert line["status"] == reply.status_code
    assert line["method"] == reply.request.method
    assert line["route"] == reply.request.url.path
    assert line["principal"] == service.names.get(caller)
    assert line["client"].startswith("127.0.0.1:")
    assert line["reason"] and line["time"]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "route", "expected"), API, ids=[r for _, r, _ in API])
def test_api_matrix(
    service: Service, method: str, route: str, expected: dict[str, int], caller: str
) -> None:
    before = len(service.refusal_lines())
    reply = _api_request(service, method, route, caller)
    assert reply.status_code == expected[caller], reply.text
    if reply.status_code in (401, 403):
        _assert_refusal_logged(service, before, reply, caller)
        assert {"error"} <= reply.json().keys() or {"code", "message"} <= reply.json().keys()
    else:
        assert len(service.refusal_lines()) == before
    if reply.status_code == 401:
        assert reply.headers["www-authenticate"].startswith("Bearer")


def test_api_answers_carry_what_the_caller_needs(service: Service) -> None:
    decided = _api_request(service, "POST", "/v1/decide", "agent").json()
    assert decided["decision"] in ("allow", "review", "deny")
    assert {"zone", "reasons", "revision", "decision_id"} <= decided.keys()
    review = _api_request(service, "GET", "/v1/reviews/{review_id}", "agent").json()
    assert review["agent_id"] == OWN_AGENT
    state = _api_request(service, "GET", "/v1/agents/{agent_id}/state", "agent").json()
    assert state


def test_an_agent_cannot_decide_or_read_for_another_agent(service: Service) -> None:
    other = {**_decision_document(), "agent_id": OTHER_AGENT}
    for document in (other, {"no": "agent id"}, ["not", "an", "object"]):
        reply = httpx.post(
            f"{service.url}/v1/decide", json=document, headers=bearer(service.tokens["agent"])
        )
        assert reply.status_code == 403, reply.text
    reply = httpx.get(
        f"{service.url}/v1/agents/{OTHER_AGENT}/state", headers=bearer(service.tokens["agent"])
    )
    assert reply.status_code == 403
    # The other agent's own token reads its state but not OWN_AGENT's review.
    own = httpx.get(
        f"{service.url}/v1/reviews/{service.review_id}",
        headers=bearer(service.tokens["agent_other"]),
    )
    assert own.status_code == 403


def _fill(path: str, service: Service) -> str:
    return path.format(
        agent_id=OWN_AGENT, review_id=service.review_id, trace_id="tr-00000000", version=1
    )


def _console_request(service: Service, method: str, path: str, caller: str) -> httpx.Response:
    url = service.url + _fill(path, service)
    if caller in PEOPLE:  # people use their console session, and its CSRF token
        client = service.sessions[caller]
        data = {"csrf": client.csrf} if method == "POST" else None  # type: ignore[attr-defined]
        return client.request(method, url, data=data)
    headers = bearer(service.tokens.get(caller))
    return httpx.request(method, url, headers=headers, timeout=30)


def test_the_console_has_routes(service: Service) -> None:
    paths = {path for _, path in service.console}
    assert {"/", "/reviews", "/agents/{agent_id}", "/traces/{trace_id}"} <= paths
    assert any(method == "POST" for method, _ in service.console)


@pytest.mark.parametrize("caller", CALLERS)
def test_console_matrix(service: Service, caller: str) -> None:
    """Every console route for one caller: none is sent to log in (pages) or refused (forms),
    agent tokens are refused, viewers read but change nothing, approvers and admins act."""
    for method, path in service.console:
        before = len(service.refusal_lines())
        reply = _console_request(service, method, path, caller)
        where = f"{method} {path} as {caller}: {reply.status_code} {reply.text[:200]}"
        if caller == "none" and method == "GET":
            assert reply.status_code == 303, where
            assert reply.headers["location"].startswith("/login?next=%2F"), where
        elif caller == "none":
            assert reply.status_code == 401, where
        elif caller.startswith("agent") or (caller == "viewer" and method == "POST"):
            assert reply.status_code == 403, where
        else:
            assert reply.status_code not in (401, 403) and reply.status_code < 500, where
            assert len(service.refusal_lines()) == before, where
            continue
        _assert_refusal_logged(service, before, reply, caller)


@pytest.mark.parametrize("caller", CALLERS)
def test_logout_matrix(service: Service, caller: str) -> None:
    before = len(service.refusal_lines())
    if caller in PEOPLE:
        with closing(login(service.url, service.tokens[caller])) as client:
            reply = client.post("/logout", data={"csrf": client.csrf})
            assert reply.status_code == 303 and reply.headers["location"] == "/login"
            assert client.get("/", follow_redirects=False).status_code == 303  # logged out
        assert service.sessions[caller].get("/").status_code == 200  # other sessions live on
        return
    reply = httpx.post(f"{service.url}/logout", headers=bearer(service.tokens.get(caller)))
    assert reply.status_code == (401 if caller == "none" else 403)
    _assert_refusal_logged(service, before, reply, caller)


# -- CSRF, cookies, redirects, headers -------------------------------------------------------


def _a_console_form(service: Service) -> str:
    return _fill(next(p for m, p in service.console if m == "POST"), service)


@pytest.mark.parametrize("supplied", [None, "", "wrong-token"])
def test_a_form_without_the_right_csrf_token_is_refused_even_for_admin(
    service: Service, supplied: str | None
) -> None:
    client = service.sessions["admin"]
    before = len(service.refusal_lines())
    data = {} if supplied is None else {"csrf": supplied}
    reply = client.post(_a_console_form(service), data=data)
    assert reply.status_code == 403
    assert service.refusal_lines()[before]["reason"] == "missing or wrong CSRF token"
    header = client.post(_a_console_form(service), headers={"X-CSRF-Token": supplied or "x"})
    assert header.status_code == 403


def test_the_csrf_header_or_field_lets_a_form_through(service: Service) -> None:
    client = service.sessions["admin"]
    by_header = client.post(_a_console_form(service), headers={"X-CSRF-Token": client.csrf})
    by_field = client.post(_a_console_form(service), data={"csrf": client.csrf})
    for reply in (by_header, by_field):
        assert reply.status_code not in (401, 403) and reply.status_code < 500, reply.text


def test_a_cross_site_origin_is_refused(service: Service) -> None:
    client = service.sessions["admin"]
    reply = client.post(
        _a_console_form(service),
        data={"csrf": client.csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert reply.status_code == 403
    assert "cross-site" in service.refusal_lines()[-1]["reason"]


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
def test_a_cross_site_login_is_refused(service: Service, origin: str) -> None:
    reply = httpx.post(
        f"{service.url}/login",
        data={"token": service.tokens["viewer"]},
        headers={"Origin": origin},
    )
    assert reply.status_code == 403 and "set-cookie" not in reply.headers
    assert service.refusal_lines()[-1]["reason"] == f"cross-site request from {origin}"
    same = httpx.post(
        f"{service.url}/login",
        data={"token": service.tokens["viewer"]},
        headers={"Origin": service.url},
    )
    assert same.status_code == 303


def test_another_sessions_csrf_token_does_not_work(service: Service) -> None:
    admin, approver = service.sessions["admin"], service.sessions["approver"]
    assert admin.csrf != approver.csrf
    reply = admin.post(_a_console_form(service), data={"csrf": approver.csrf})
    assert reply.status_code == 403


def test_the_session_cookie_is_httponly_samesite_strict(service: Service) -> None:
    reply = httpx.post(
        f"{service.url}/login", data={"token": service.tokens["viewer"], "next": "/reviews"}
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/reviews"
    cookie = reply.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in attributes
    assert attributes["samesite"].strip().lower() == "samesite=strict"
    assert attributes["path"].strip() == "Path=/"
    assert "secure" not in attributes  # plain http on loopback
    behind_tls = httpx.post(
        f"{service.url}/login",
        data={"token": service.tokens["viewer"]},
        headers={"X-Forwarded-Proto": "https"},  # a local TLS proxy (trusted: loopback)
    )
    assert "secure" in behind_tls.headers["set-cookie"].lower().split("; ")


@pytest.mark.parametrize(
    ("token", "status"), [("agops_not-a-real-token", 401), ("", 401), ("agent", 403)]
)
def test_a_bad_login_stays_on_the_login_page(service: Service, token: str, status: int) -> None:
    token = service.tokens.get(token, token)
    before = len(service.refusal_lines())
    reply = httpx.post(f"{service.url}/login", data={"token": token, "next": "/"})
    assert reply.status_code == status
    assert "set-cookie" not in reply.headers
    assert '<form method="post" action="/login">' in reply.text
    assert len(service.refusal_lines()) == before + 1


def test_an_agent_token_login_shows_no_console(service: Service) -> None:
    reply = httpx.post(f"{service.url}/login", data={"token": service.tokens["agent"]})
    assert reply.status_code == 403
    assert "Agent tokens cannot use the console" in reply.text
    assert 'action="/logout"' not in reply.text and service.names["agent"] not in reply.text
    assert service.refusal_lines()[-1]["principal"] == service.names["agent"]


def test_an_authorization_header_that_is_not_bearer_is_401(service: Service) -> None:
    reply = httpx.get(
        f"{service.url}/v1/agents/{OWN_AGENT}/state", headers={"Authorization": "Basic eDp5"}
    )
    assert reply.status_code == 401
    assert service.refusal_lines()[-1]["reason"] == "the Authorization header is not a Bearer token"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil"])
def test_login_never_redirects_off_site(service: Service, target: str) -> None:
    reply = httpx.post(
        f"{service.url}/login", data={"token": service.tokens["viewer"], "next": target}
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/"


def test_without_a_session_pages_redirect_to_login_and_back(service: Service) -> None:
    reply = httpx.get(f"{service.url}/reviews?state=pending")
    assert reply.status_code == 303
    assert reply.headers["location"] == "/login?next=%2Freviews%3Fstate%3Dpending"
    page = httpx.get(service.url + reply.headers["location"])
    assert page.status_code == 200 and 'name="next" value="/reviews?state=pending"' in page.text
    htmx = httpx.get(f"{service.url}/reviews", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"].startswith("/login?next=")


def test_a_revoked_token_ends_its_sessions(service: Service) -> None:
    store = TokenStore(service.paths)
    token = store.create("short-lived", role="approver")
    with closing(login(service.url, token)) as client:
        assert client.get("/").status_code == 200
        store.revoke("short-lived")
        reply = client.get("/", follow_redirects=False)
        assert reply.status_code == 303 and reply.headers["location"].startswith("/login")
        assert service.refusal_lines()[-1]["reason"] == "session expired or ended"
        api = httpx.get(f"{service.url}/v1/agents/{OWN_AGENT}/state", headers=bearer(token))
        assert api.status_code == 401
        assert service.refusal_lines()[-1]["reason"] == "unknown or revoked token"


def test_html_pages_carry_security_headers(service: Service) -> None:
    page = service.sessions["viewer"].get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    login_page = httpx.get(f"{service.url}/login")
    assert login_page.headers["x-frame-options"] == "DENY"
    assert "no-store" not in login_page.headers.get("cache-control", "")


def test_static_files_need_no_login(service: Service) -> None:
    reply = httpx.get(f"{service.url}/static/htmx.min.js")
    assert reply.status_code == 200 and len(reply.content) > 10_000


# -- body limits -----------------------------------------------------------------------------


def test_bodies_above_the_limit_get_413_without_being_read(paths: Paths) -> None:
    admin = role_tokens(paths)["admin"]
    limit = 4096
    with running_service(paths, max_body_bytes=limit) as url:
        headers = {**bearer(admin), "Content-Type": "application/x-ndjson"}
        fits = _events_body()
        assert httpx.post(f"{url}/v1/events", content=fits, headers=headers).status_code == 200
        declared = httpx.post(f"{url}/v1/events", content=b"x" * (limit + 1), headers=headers)
        assert declared.status_code == 413
        sent = 0

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
            nonlocal sent
            for _ in range(64):
                sent += 1024
                yield b"y" * 1024

        streamed = httpx.post(f"{url}/v1/events", content=chunks(), headers=headers)
        assert streamed.status_code == 413
        assert "limit of 4,096 bytes" in streamed.text
    assert len([f for f in paths.landing.rglob("*") if f.is_file()]) == 1  # only the one that fits


def test_healthz_is_503_while_the_service_cannot_start(paths: Paths) -> None:
    """The receiver and gate are built after uvicorn starts listening; a failure to build
    them leaves /healthz at 503 with the reason (and every API at 503)."""
    app = create_app(paths, max_body_bytes=0)  # the receiver refuses a zero limit
    config = uvicorn.Config(app, log_level="critical", lifespan="on")
    server = uvicorn.Server(config)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
        thread.start()
        try:
            deadline = time.monotonic() + 30
            reply = None
            while time.monotonic() < deadline:
                with suppress(httpx.TransportError):
                    reply = httpx.get(f"{url}/healthz")
                    if reply.json()["status"] == "failed":
                        break
                time.sleep(0.05)
            assert reply is not None and reply.status_code == 503
            assert reply.json() == {
                "status": "failed",
                "error": "ValueError: max_body_bytes must be at least 1, not 0.",
            }
            admin = role_tokens(paths)["admin"]
            decided = httpx.post(f"{url}/v1/decide", json={}, headers=bearer(admin))
            assert decided.status_code == 503
        finally:
            server.should_exit = True
            thread.join(30)


# -- agentops serve --------------------------------------------------------------------------


def test_agentops_serve_answers_and_stops_cleanly_on_sigterm(paths: Paths) -> None:
    """Health without a token; and SIGTERM stops it with status 0 after the gate flushed the
    decisions it answered into policy_decisions."""
    with serve_subprocess(paths) as (url, process):
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.post(f"{url}/v1/decide", json={}).status_code == 401
        admin = TokenStore(paths).create("ops-admin", role="admin")
        answers = [
            httpx.post(f"{url}/v1/decide", json=_decision_document(), headers=bearer(admin))
            for _ in range(5)
        ]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        output = process.stderr.read()
    assert "Traceback" not in output
    assert "No tokens yet" in output  # the empty home is explained
    assert f"AgentOps service on {url}" in output
    decided = {answer.json()["decision_id"] for answer in answers}
    logged = lake.scan(paths.table_uri(POLICY_DECISIONS)).collect()
    assert decided <= set(logged["decision_id"])


def _serve(paths: Paths, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentops_assets", "serve", *args],
        env={**os.environ, "AGENTOPS_HOME": str(paths.home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_port_in_use_is_one_sentence(paths: Paths) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _serve(paths, "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: Port {port} on 127.0.0.1 is already in use; stop what listens there or pass "
        "--port."
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("no-such-host.invalid", "Error: Cannot listen on 'no-such-host.invalid': no such host"),
        ("192.0.2.1", "Error: Cannot listen on 192.0.2.1: that address is not one of this"),
    ],
)
def test_a_bad_host_is_one_sentence(paths: Paths, host: str, message: str) -> None:
    result = _serve(paths, "--host", host, "--port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
