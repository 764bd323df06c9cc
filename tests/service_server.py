"""Run the real service for HTTP tests: uvicorn on a free loopback port, in a thread or as the
``agentops serve`` subprocess, and tokens for every role.

Example::

    with running_service(paths) as url:
        tokens = role_tokens(paths)
        httpx.get(f"{url}/v1/agents/agent-a/state", headers=bearer(tokens["viewer"]))
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from agentops_assets.service.access import TokenStore
from agentops_assets.service.app import create_app
from agentops_assets.storage.config import Paths

HOST = "127.0.0.1"
# The agents the "agent" token speaks for; "agent_other" speaks for OTHER_AGENT only.
OWN_AGENT = "finance-agent-01"
OTHER_AGENT = "ops-agent-01"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextmanager
def running_service(
    paths: Paths, *, startup_seconds: float = 60.0, **create_app_kwargs: Any
) -> Iterator[str]:
    """Serve ``create_app(paths, **create_app_kwargs)`` with uvicorn in a thread on a free
    loopback port; yields the base URL once /healthz answers 200, stops it on exit.

    The listening socket is bound here and handed to uvicorn, so no other test can take the
    port between choosing and binding it.
    """
    app = create_app(paths, **create_app_kwargs)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    url = f"http://{HOST}:{listener.getsockname()[1]}"
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[listener])
        except BaseException as error:  # reported by the waiting test thread
            failures.append(error)

    thread = threading.Thread(target=serve, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        _wait_healthy(url, startup_seconds, alive=thread.is_alive, failures=failures)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()
        if thread.is_alive():
            raise RuntimeError("uvicorn did not stop within 30 s of should_exit")


def _wait_healthy(url: str, seconds: float, *, alive: Any, failures: list) -> None:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        if failures:
            raise RuntimeError(f"uvicorn failed to start: {failures[0]!r}")
        if not alive():
            raise RuntimeError("uvicorn stopped before /healthz answered")
        try:
            reply = httpx.get(f"{url}/healthz", timeout=2)
            if reply.status_code == 200:
                return
            last = f"{reply.status_code} {reply.text}"
        except httpx.TransportError as error:
            last = repr(error)
        time.sleep(0.05)
    raise TimeoutError(f"{url}/healthz not ready after {seconds} s: {last}")


@contextmanager
def serve_subprocess(
    paths: Paths, *, port: int | None = None, startup_seconds: float = 90.0
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``agentops serve`` as a subprocess on a free port: yields (base URL, process) once
    /healthz answers 200; on exit sends SIGTERM if it is still running."""
    port = port or free_port()
    env = {**os.environ, "AGENTOPS_HOME": str(paths.home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "agentops_assets", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://{HOST}:{port}"
    try:
        _wait_healthy(url, startup_seconds, alive=lambda: process.poll() is None, failures=[])
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def role_tokens(paths: Paths) -> dict[str, str]:
    """A fresh token for each role of the auth matrix, by role name.

    Keys: ``agent`` (speaks for OWN_AGENT), ``agent_other`` (speaks for OTHER_AGENT only),
    ``viewer``, ``approver``, ``admin``.
    """
    store = TokenStore(paths)
    suffix = os.urandom(3).hex()  # several calls on one home must not collide
    return {
        "agent": store.create(f"agent-{suffix}", role="agent", agents=[OWN_AGENT]),
        "agent_other": store.create(f"other-{suffix}", role="agent", agents=[OTHER_AGENT]),
        "viewer": store.create(f"viewer-{suffix}", role="viewer"),
        "approver": store.create(f"approver-{suffix}", role="approver"),
        "admin": store.create(f"admin-{suffix}", role="admin"),
    }


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header for a token (none for None)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def login(url: str, token: str) -> httpx.Client:
    """An httpx client logged in to the console with ``token`` (its cookie jar holds the
    session); the caller closes it. ``client.csrf`` is the session's CSRF token, read from
    the X-CSRF-Token header the service sends on console pages."""
    client = httpx.Client(base_url=url, timeout=30)
    reply = client.post("/login", data={"token": token, "next": "/"})
    if reply.status_code != 303:
        client.close()
        raise RuntimeError(f"login failed: {reply.status_code} {reply.text[:200]}")
    client.csrf = client.get("/healthz").headers["x-csrf-token"]  # type: ignore[attr-defined]
    return client


def private_home(template: Path, target: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A private copy of a built home as ``AGENTOPS_HOME`` (Delta logs hold relative paths,
    so a copied home is a whole one), with the lake and policies of that home."""
    shutil.copytree(template, target)
    monkeypatch.setenv("AGENTOPS_HOME", str(target))
    monkeypatch.delenv("AGENTOPS_LAKE_URI", raising=False)
    monkeypatch.delenv("AGENTOPS_POLICIES", raising=False)
    return Paths.from_env()
