"""Who may call the service: bearer tokens with roles, console sessions, CSRF, refusals.

Tokens live as SHA-256 hashes in ``$AGENTOPS_HOME/access/tokens.json`` (mode 0600, replaced
atomically); the secret itself is printed once by ``agentops token create`` and never stored.
Console sessions are kept in memory: a restart asks people to log in again.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from agentops_assets.storage.atomic import replace_file
from agentops_assets.storage.config import Paths

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "ROLES",
    "TOKEN_PREFIX",
    "AccessError",
    "Principal",
    "RefusalLog",
    "Session",
    "SessionStore",
    "TokenExistsError",
    "TokenFileError",
    "TokenInfo",
    "TokenNotFoundError",
    "TokenStore",
    "check_csrf",
    "hash_token",
    "require_console",
]

ROLES = ("agent", "viewer", "approver", "admin")
# The console and GET APIs rank people; the agent role stands apart (telemetry and decisions).
_RANK = {"viewer": 1, "approver": 2, "admin": 3}
# A recognizable prefix lets secret scanners (GitHub, gitleaks, trufflehog) flag leaked tokens.
TOKEN_PREFIX = "agops_"
_TOKEN_BYTES = 32  # 256 bits of randomness
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_AGENT_ID = re.compile(r"[^\s\x00-\x1f]{1,200}")
SESSION_SECONDS = 8 * 3600
MAX_LOG_BYTES = 64 * 2**20  # a flood of refused requests must not fill the disk
_PREFIX = 8  # hex characters of a hash used to find its record

logger = logging.getLogger("agentops.service.access")


class AccessError(Exception):
    """Base of the access-control errors."""


class TokenExistsError(AccessError):
    """A token of that name exists already."""


class TokenNotFoundError(AccessError):
    """No token of that name exists."""


class TokenFileError(AccessError):
    """The token file cannot be read or holds a record the store did not write."""


@dataclass(frozen=True)
class Principal:
    """Who a request speaks for: a token's name, its role and, for role agent, its agents."""

    name: str
    role: str
    agents: frozenset[str] = frozenset()

    def can(self, need: str) -> bool:
        """Whether this role covers ``need``: admin > approver > viewer; agent stands apart.

        ``need="agent"`` (send telemetry, ask for decisions) is granted to agents and admins.
        """
        if need == "agent":
            return self.role in ("agent", "admin")
        if need not in _RANK:
            raise ValueError(f"Role {need!r} is not one of {', '.join(ROLES)}.")
        if self.role == "agent":
            return False
        return _RANK[self.role] >= _RANK[need]

    def speaks_for(self, agent_id: object) -> bool:
        """Whether it may send telemetry or ask for decisions as ``agent_id``."""
        if self.role == "admin":
            return True
        return self.role == "agent" and isinstance(agent_id, str) and agent_id in self.agents

    def may_read(self, agent_id: object) -> bool:
        """Whether it may read ``agent_id``'s state or reviews: viewers and up, or its agent."""
        if self.role == "agent":
            return isinstance(agent_id, str) and agent_id in self.agents
        return self.can("viewer")


@dataclass(frozen=True)
class TokenInfo:
    """What ``agentops token list`` shows of one token: never its secret, nor its hash."""

    name: str
    role: str
    agents: tuple[str, ...]
    created: str


def hash_token(token: str) -> str:
    """SHA-256 of a token, hex.

    A plain fast hash is right here, unlike for passwords: tokens carry 256 random bits, so
    no dictionary or brute force can invert the hash, and a slow KDF would only slow every
    request down.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, mode 0600; readers never see a partial file."""
    replace_file(path, data, private=True)


class TokenStore:
    """The tokens of one home, by hash; re-read when the file changes (a revoke from the CLI
    takes effect on the running service's next request)."""

    def __init__(self, paths: Paths) -> None:
        self.folder = paths.home / "access"
        self.path = self.folder / "tokens.json"
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._by_prefix: dict[str, list[tuple[str, Principal]]] = {}

    def create(self, name: str, *, role: str, agents: Iterable[str] = ()) -> str:
        """Create a token and return its secret, which is stored nowhere.

        Raises:
            ValueError: a bad name, role or agent id, or agents given for another role.
            TokenExistsError: ``name`` is taken.
        """
        agent_ids = tuple(sorted(set(agents)))
        _validate(name, role, agent_ids)
        token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        with self._exclusive():
            records = self._read()
            if name in records:
                raise TokenExistsError(
                    f"A token named {name!r} exists already; revoke it first or pick another name."
                )
            records[name] = {
                "sha256": hash_token(token),
                "role": role,
                "agents": list(agent_ids),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self._write(records)
        return token

    def revoke(self, name: str) -> None:
        """Delete the token ``name``; its sessions end on their next request.

        Raises:
            TokenNotFoundError: no such token.
        """
        with self._exclusive():
            records = self._read()
            if records.pop(name, None) is None:
                raise TokenNotFoundError(f"No token named {name!r} (see `agentops token list`).")
            self._write(records)

    def list(self) -> list[TokenInfo]:
        """Every token's name, role, agents and creation time, by name."""
        return [
            TokenInfo(name, r["role"], tuple(r["agents"]), r["created"])
            for name, r in sorted(self._read().items())
        ]

    def verify(self, token: str | None) -> Principal | None:
        """The principal of a presented token, or None when it is unknown or revoked."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        return self.by_hash(hash_token(token))

    def by_hash(self, digest: str) -> Principal | None:
        """The principal whose token hashes to ``digest``, or None."""
        # Look up by a short prefix, then compare the whole hash in constant time, so the
        # timing of a lookup never tells how much of a guessed hash matched.
        for stored, principal in self._current().get(digest[:_PREFIX], ()):
            if hmac.compare_digest(stored, digest):
                return principal
        return None

    def _current(self) -> dict[str, list[tuple[str, Principal]]]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp != self._stamp:
            with self._lock:
                known: dict[str, list[tuple[str, Principal]]] = {}
                try:
                    records = self._read()
                except TokenFileError as error:  # fail closed: no token is valid until fixed
                    logger.error("%s Every request is refused until then.", error)
                    records = {}
                for name, r in records.items():
                    principal = Principal(name, r["role"], frozenset(r["agents"]))
                    known.setdefault(r["sha256"][:_PREFIX], []).append((r["sha256"], principal))
                self._by_prefix, self._stamp = known, stamp
        return self._by_prefix

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the store for a read-modify-write, against other threads and processes (two
        `agentops token create` at once must not lose one)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        with self._lock, os.fdopen(descriptor, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> dict[str, dict[str, Any]]:
        """Every record by name.

        Raises:
            TokenFileError: the file is not what ``agentops token`` writes.
        """
        try:
            records = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as error:
            raise TokenFileError(f"The token file {self.path} cannot be read ({error}).") from None
        if not isinstance(records, dict) or not all(_well_formed(r) for r in records.values()):
            raise TokenFileError(
                f"The token file {self.path} has a record that `agentops token` did not write; "
                "fix or remove it."
            )
        return records

    def _write(self, records: dict[str, dict[str, Any]]) -> None:
        _write_private(self.path, orjson.dumps(records, option=orjson.OPT_INDENT_2))


def _well_formed(record: object) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("sha256"), str)
        and len(record["sha256"]) == 64
        and record.get("role") in ROLES
        and isinstance(record.get("agents"), list)
        and isinstance(record.get("created"), str)
    )


def _validate(name: str, role: str, agents: tuple[str, ...]) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"Token name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    if role not in ROLES:
        raise ValueError(f"Role {role!r} is not one of {', '.join(ROLES)}.")
    if role == "agent" and not agents:
        raise ValueError("Role agent needs at least one --agent ID it may speak for.")
    if role != "agent" and agents:
        raise ValueError(f"--agent applies to role agent only, not {role}.")
    for agent_id in agents:
        if not _AGENT_ID.fullmatch(agent_id):
            raise ValueError(f"Agent id {agent_id!r} must be 1-200 characters without spaces.")


@dataclass
class Session:
    """One console login: whose token (by hash), until when, and its CSRF token."""

    token_sha256: str
    expires: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class SessionStore:
    """Console sessions by random id, in memory; each request re-checks the token behind it,
    so revoking a token ends its sessions."""

    def __init__(self, tokens: TokenStore, *, ttl_seconds: float = SESSION_SECONDS) -> None:
        self.tokens = tokens
        self.ttl_seconds = ttl_seconds
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, token: str) -> tuple[str, Session, Principal] | None:
        """Start a session for a valid token: (session id, session, principal), else None."""
        principal = self.tokens.verify(token)
        if principal is None:
            return None
        session_id = secrets.token_urlsafe(32)
        session = Session(hash_token(token), time.monotonic() + self.ttl_seconds)
        with self._lock:
            self._drop_expired()
            self._sessions[session_id] = session
        return session_id, session, principal

    def resolve(self, session_id: str | None) -> tuple[Session, Principal] | None:
        """The live session and its principal, or None (unknown, expired or token revoked)."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        principal = self.tokens.by_hash(session.token_sha256)
        if principal is None or session.expires < time.monotonic():
            self.close(session_id)
            return None
        return session, principal

    def close(self, session_id: str) -> None:
        """End a session (logout)."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]


class RefusalLog:
    """Every refused request, one JSON line each in ``$AGENTOPS_HOME/access/refusals.jsonl``
    and on the ``agentops.service.access`` logger."""

    def __init__(self, paths: Paths) -> None:
        self.path = paths.home / "access" / "refusals.jsonl"
        self._lock = threading.Lock()

    def record(
        self,
        *,
        route: str,
        method: str,
        principal: Principal | None,
        status: int,
        reason: str,
        client: str | None,
    ) -> None:
        """Append one refusal; never raises (a full disk must not turn a 403 into a 500)."""
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "route": route,
            "method": method,
            "principal": principal.name if principal else None,
            "role": principal.role if principal else None,
            "status": status,
            "reason": reason,
            "client": client,
        }
        logger.warning(
            "refused %s %s for %s: %s %s (client %s)",
            method,
            route,
            entry["principal"] or "no token",
            status,
            reason,
            client,
        )
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._rotate()
                descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(descriptor, "ab") as file:
                    file.write(orjson.dumps(entry) + b"\n")
        except OSError as error:
            logger.error("could not write the refusal log %s: %s", self.path, error)

    def _rotate(self) -> None:
        """Keep the log bounded: above ``MAX_LOG_BYTES`` it becomes ``refusals.jsonl.1``
        (replacing the previous one) and a new file starts."""
        try:
            if self.path.stat().st_size > MAX_LOG_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass


def require_console(request: Request, need: str = "viewer") -> Principal | Response:
    """The principal of a console request, or the response that refuses it.

    Without a session: a redirect to ``/login?next=...``; with a role below ``need``: 403.
    """
    from agentops_assets.service import app as service_app

    return service_app.require_console(request, need)


def check_csrf(request: Request, form: Any) -> Response | None:
    """None when the form's hidden ``csrf`` field (or the X-CSRF-Token header) matches the
    session's CSRF token; else the 403 response to return."""
    from agentops_assets.service import app as service_app

    return service_app.check_csrf(request, form)
