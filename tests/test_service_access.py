"""Tokens, roles and sessions of the service on a real home: only hashes on disk, private file
modes, revocation seen by a running store, and the `agentops token` commands."""

from __future__ import annotations

import hashlib
import stat
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
from click.testing import CliRunner

from agentops_assets.cli.main import main
from agentops_assets.service.access import (
    TOKEN_PREFIX,
    Principal,
    RefusalLog,
    SessionStore,
    TokenExistsError,
    TokenNotFoundError,
    TokenStore,
)
from agentops_assets.storage.config import Paths


def _files(paths: Paths) -> list:
    return [p for p in (paths.home / "access").rglob("*") if p.is_file()]


def test_a_created_token_verifies_until_revoked(paths: Paths) -> None:
    store = TokenStore(paths)
    token = store.create("finance-bot", role="agent", agents=["finance-agent-01", "fx-agent"])

    assert token.startswith(TOKEN_PREFIX)
    assert len(token) == len(TOKEN_PREFIX) + 43  # 32 random bytes, urlsafe base64
    assert store.verify(token) == Principal(
        "finance-bot", "agent", frozenset({"finance-agent-01", "fx-agent"})
    )
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.verify("") is None
    assert store.verify(None) is None

    store.revoke("finance-bot")
    assert store.verify(token) is None
    with pytest.raises(TokenNotFoundError, match="No token named 'finance-bot'"):
        store.revoke("finance-bot")


def test_tokens_are_random_and_names_unique(paths: Paths) -> None:
    store = TokenStore(paths)
    first = store.create("alice", role="viewer")
    second = store.create("bob", role="viewer")
    assert first != second
    with pytest.raises(TokenExistsError, match="'alice' exists already"):
        store.create("alice", role="admin")
    assert store.verify(first).role == "viewer"  # the failed create changed nothing


def test_only_hashes_reach_the_disk_with_private_modes(paths: Paths) -> None:
    store = TokenStore(paths)
    tokens = [store.create(f"user-{n}", role=role) for n, role in enumerate(["viewer", "admin"])]
    tokens.append(store.create("bot", role="agent", agents=["a-1"]))
    RefusalLog(paths).record(
        route="/v1/decide", method="POST", principal=None, status=401, reason="x", client=None
    )

    files = _files(paths)
    assert {f.name for f in files} == {"tokens.json", "refusals.jsonl", ".lock"}  # no temp files
    for file in files:
        content = file.read_bytes()
        for token in tokens:
            assert token.encode() not in content
            assert token[len(TOKEN_PREFIX) :].encode() not in content
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE((paths.home / "access").stat().st_mode) == 0o700
    stored = orjson.loads((paths.home / "access" / "tokens.json").read_bytes())
    assert stored["bot"]["sha256"] == hashlib.sha256(tokens[2].encode()).hexdigest()


def test_concurrent_creates_lose_nothing(paths: Paths) -> None:
    """Eight writers at once (each its own store, as separate CLI processes would be)."""

    def create(writer: int) -> list[str]:
        store = TokenStore(paths)
        return [store.create(f"w{writer}-{n}", role="viewer") for n in range(5)]

    with ThreadPoolExecutor(8) as pool:
        tokens = [t for batch in pool.map(create, range(8)) for t in batch]
    store = TokenStore(paths)
    assert len(store.list()) == 40
    assert all(store.verify(token) is not None for token in tokens)


def test_a_revoke_elsewhere_reaches_a_running_store(paths: Paths) -> None:
    service = TokenStore(paths)  # the running service's store, with its cache
    token = TokenStore(paths).create("alice", role="approver")
    assert service.verify(token).name == "alice"

    TokenStore(paths).revoke("alice")  # the CLI, in another process
    assert service.verify(token) is None


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"x": {"sha256": "ab", "role": "root", "agents": [], "created": ""}}'],
)
def test_a_damaged_token_file_refuses_everyone_and_says_why(paths: Paths, content: bytes) -> None:
    store = TokenStore(paths)
    token = store.create("alice", role="admin")
    store.path.write_bytes(content)
    assert store.verify(token) is None  # fail closed, no exception in the request path
    result = _cli(paths, "list")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: The token file {store.path} ")
    assert len(result.output.strip().splitlines()) == 1
    assert _cli(paths, "create", "bob", "--role", "viewer").exit_code == 1
    assert store.path.read_bytes() == content  # nothing overwritten


@pytest.mark.parametrize(
    ("name", "role", "agents", "message"),
    [
        ("bot", "agent", [], "needs at least one --agent"),
        ("bot", "wizard", [], "not one of agent, viewer, approver, admin"),
        ("bob", "viewer", ["a-1"], "--agent applies to role agent only"),
        ("-bob", "viewer", [], "must be 1-64 letters"),
        ("b" * 65, "viewer", [], "must be 1-64 letters"),
        ("bot", "agent", ["has space"], "without spaces"),
    ],
)
def test_bad_token_requests_are_one_sentence(
    paths: Paths, name: str, role: str, agents: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TokenStore(paths).create(name, role=role, agents=agents)
    assert not (paths.home / "access" / "tokens.json").exists()


def test_roles_rank_people_and_keep_agents_apart() -> None:
    agent = Principal("bot", "agent", frozenset({"a-1"}))
    viewer, approver, admin = (Principal(r, r) for r in ("viewer", "approver", "admin"))
    assert [p.can("viewer") for p in (agent, viewer, approver, admin)] == [0, 1, 1, 1]
    assert [p.can("approver") for p in (agent, viewer, approver, admin)] == [0, 0, 1, 1]
    assert [p.can("admin") for p in (agent, viewer, approver, admin)] == [0, 0, 0, 1]
    assert [p.can("agent") for p in (agent, viewer, approver, admin)] == [1, 0, 0, 1]
    assert agent.speaks_for("a-1") and not agent.speaks_for("a-2")
    assert admin.speaks_for("a-2") and not approver.speaks_for("a-1")
    assert agent.may_read("a-1") and not agent.may_read("a-2") and viewer.may_read("a-2")


def test_sessions_end_on_logout_expiry_and_revoke(paths: Paths) -> None:
    tokens = TokenStore(paths)
    sessions = SessionStore(tokens, ttl_seconds=3600)
    token = tokens.create("alice", role="approver")
    assert sessions.open("agops_wrong") is None

    session_id, session, principal = sessions.open(token)
    assert sessions.resolve(session_id) == (session, principal)
    assert len(session.csrf) >= 40 and session.csrf != session_id
    sessions.close(session_id)
    assert sessions.resolve(session_id) is None

    session_id, _, _ = sessions.open(token)
    tokens.revoke("alice")
    assert sessions.resolve(session_id) is None

    short = SessionStore(tokens, ttl_seconds=0.05)
    session_id, _, _ = short.open(tokens.create("bob", role="viewer"))
    time.sleep(0.1)
    assert short.resolve(session_id) is None


def _cli(paths: Paths, *args: str):
    return CliRunner().invoke(main, ["token", *args], env={"AGENTOPS_HOME": str(paths.home)})


def test_cli_create_prints_the_token_alone_on_the_last_line(paths: Paths) -> None:
    result = _cli(paths, "create", "finance-bot", "--role", "agent", "--agent", "fa-1")
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(TOKEN_PREFIX) and " " not in last
    assert result.stdout.strip() == last  # the notice goes to stderr; stdout is the token only
    assert TokenStore(paths).verify(last) == Principal("finance-bot", "agent", frozenset({"fa-1"}))

    listed = _cli(paths, "list")
    assert listed.exit_code == 0
    assert "finance-bot" in listed.output and "fa-1" in listed.output
    assert last not in listed.output
    assert hashlib.sha256(last.encode()).hexdigest()[:12] not in listed.output

    revoked = _cli(paths, "revoke", "finance-bot")
    assert revoked.exit_code == 0
    assert TokenStore(paths).verify(last) is None
    assert "finance-bot" not in _cli(paths, "list").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--role", "wizard"],
            "Error: Role 'wizard' is not one of agent, viewer, approver, admin.",
        ),
        (["--role", "agent"], "Error: Role agent needs at least one --agent ID it may speak for."),
    ],
)
def test_cli_bad_role_or_missing_agent_is_one_sentence_exit_2(
    paths: Paths, args: list[str], message: str
) -> None:
    result = _cli(paths, "create", "bot", *args)
    assert result.exit_code == 2
    assert result.output.strip() == message
    assert TokenStore(paths).list() == []


def test_cli_mistakes_on_names(paths: Paths) -> None:
    assert _cli(paths, "create", "alice", "--role", "viewer").exit_code == 0
    again = _cli(paths, "create", "alice", "--role", "viewer")
    assert again.exit_code == 1
    assert again.output.strip() == (
        "Error: A token named 'alice' exists already; revoke it first or pick another name."
    )
    unknown = _cli(paths, "revoke", "nobody")
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "Error: No token named 'nobody' (see `agentops token list`)."
    assert "Traceback" not in again.output + unknown.output
