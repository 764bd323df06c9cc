"""Run the app on uvicorn: bind first (so a taken port is one clear sentence), then serve
until SIGTERM or Ctrl-C, shutting down gracefully (the lifespan flushes the gate)."""

from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket
from typing import Any, Literal

import uvicorn

__all__ = ["LOG_LEVELS", "ListenError", "bind", "is_loopback", "serve"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class ListenError(ValueError):
    """The service cannot listen on the host and port asked for."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``.

    Raises:
        ListenError: the host is unknown or not on this machine, the port is taken, or the
            port needs privileges.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError):
        raise ListenError(f"Cannot listen on {host!r}: no such host name or address.") from None
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as error:
        listener.close()
        raise ListenError(_bind_failure(host, port, error)) from None
    listener.set_inheritable(True)
    return listener


def _bind_failure(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"Port {port} on {host} is already in use; stop what listens there or pass --port."
    if error.errno == errno.EADDRNOTAVAIL:
        return f"Cannot listen on {host}: that address is not one of this machine's."
    if error.errno == errno.EACCES:
        return f"Port {port} needs administrator rights; pass --port 1024 or above."
    return f"Cannot listen on {host}:{port}: {error.strerror or error}."


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (tokens sent to it never cross a network)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(app: Any, listener: socket.socket, *, log_level: LogLevel = "info") -> None:
    """Serve ``app`` on ``listener`` until SIGTERM or SIGINT, then shut down gracefully.

    uvicorn turns either signal into a graceful exit and re-raises it once done; the no-op
    handlers installed here make that re-raise end the process normally (exit status 0).
    uvicorn's loggers propagate to the root logger, so the caller's logging configuration
    formats them like the service's own (``agentops serve`` calls ``logging.basicConfig``).
    """
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
        proxy_headers=True,  # behind a local TLS proxy, X-Forwarded-Proto makes cookies Secure
    )
    server = uvicorn.Server(config)
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[listener])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()
    if not server.started:
        raise ListenError("The service stopped while starting; see the log above.")


def _ignore(signum: int, frame: object) -> None:
    # uvicorn logs the shutdown itself and re-raises the signal after it: no second line.
    logging.getLogger("agentops.service").debug("signal %d after shutdown", signum)
