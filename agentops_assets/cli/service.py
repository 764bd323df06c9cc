"""``agentops serve`` and ``agentops token``: the live service and who may use it."""

from __future__ import annotations

import logging
import os

import click
from rich.console import Console
from rich.table import Table

from agentops_assets.storage.config import Paths

console = Console()
err = Console(stderr=True)


class _UsageProblem(click.ClickException):
    """A bad option value: one sentence, exit status 2 (as click's own usage errors)."""

    exit_code = 2


def _paths() -> Paths:
    paths = Paths.from_env()
    os.environ["AGENTOPS_HOME"] = str(paths.home)
    return paths


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback exposes tokens unless behind TLS.",
)
@click.option("--port", default=4318, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(host: str, port: int, log_level: str) -> None:
    """Run the OTLP/HTTP receiver, the decision gate API and the supervisor console.

    Reads $AGENTOPS_HOME and its policies; agents send telemetry to /v1/traces and
    /v1/events and ask /v1/decide with a token from `agentops token create`; people log in
    to the console at http://HOST:PORT/ with theirs. SIGTERM or Ctrl-C stops it gracefully.

    \b
    Example:
      agentops token create ops-admin --role admin
      agentops serve --port 4318
    """
    from agentops_assets.service.app import create_app
    from agentops_assets.service.server import ListenError, bind, is_loopback
    from agentops_assets.service.server import serve as run_server

    paths = _paths()
    try:
        listener = bind(host, port)
    except ListenError as error:
        raise click.ClickException(str(error)) from None
    receiver, gate = _components(paths)
    if not is_loopback(host):
        err.print(
            f"[yellow]Listening on {host}:[/] tokens and session cookies cross the network; "
            "put a TLS proxy in front (X-Forwarded-Proto https makes cookies Secure).",
            soft_wrap=True,
        )
    if not _has_tokens(paths):
        err.print(
            "No tokens yet: every API call and login will be refused. Create one with "
            "`agentops token create NAME --role admin`.",
            soft_wrap=True,
        )
    # The service's own loggers (refusals, logins, startup failures) print beside uvicorn's.
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    shown = f"[{host}]" if ":" in host else host
    err.print(
        f"AgentOps service on http://{shown}:{port} (home {paths.home}; Ctrl-C stops it)",
        soft_wrap=True,
    )
    try:
        run_server(create_app(paths, receiver=receiver, gate=gate), listener, log_level=log_level)
    except ListenError as error:
        raise click.ClickException(str(error)) from None


def _components(paths: Paths):
    """The receiver and gate, built before listening so a bad policy is one clear sentence."""
    from agentops_assets.service.gate import Gate
    from agentops_assets.service.receiver import Receiver

    try:
        return Receiver(paths), Gate(paths)
    except Exception as error:  # policies and tables are user input: explain, do not trace
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise click.ClickException(f"The service cannot start: {message}") from None


def _has_tokens(paths: Paths) -> bool:
    from agentops_assets.service.access import AccessError, TokenStore

    try:
        return bool(TokenStore(paths).list())
    except AccessError as error:
        raise click.ClickException(str(error)) from None


@click.group()
def token() -> None:
    """Tokens for agents (telemetry, decisions) and people (the console, the GET APIs).

    Roles: agent (only for its --agent ids), viewer (reads), approver (decides reviews,
    corrects, rolls back, freezes), admin (everything). Only hashes are stored, in
    $AGENTOPS_HOME/access/.

    \b
    Example:
      agentops token create support-bot --role agent --agent support-agent-01
      agentops token list
      agentops token revoke support-bot
    """


@token.command()
@click.argument("name")
@click.option(
    "--role",
    required=True,
    metavar="ROLE",
    help="agent, viewer, approver or admin.",
)
@click.option(
    "--agent",
    "agents",
    multiple=True,
    metavar="ID",
    help="An agent id a role-agent token may speak for; repeat for several.",
)
def create(name: str, role: str, agents: tuple[str, ...]) -> None:
    """Create a token and print it, alone on the last line, this once.

    \b
    Example:
      agentops token create finance-bot --role agent --agent finance-agent-01
      agentops token create alice --role approver
    """
    from agentops_assets.service.access import AccessError, TokenStore

    paths = _paths()
    try:
        secret = TokenStore(paths).create(name, role=role, agents=agents)
    except ValueError as error:
        raise _UsageProblem(str(error)) from None
    except AccessError as error:
        raise click.ClickException(str(error)) from None
    scope = f" for {', '.join(sorted(set(agents)))}" if agents else ""
    err.print(
        f"Created token [bold]{name}[/] (role {role}{scope}). It is shown only now and "
        "stored only as a hash: keep it in a secret store.",
        soft_wrap=True,
    )
    click.echo(secret)


@token.command(name="list")
def list_tokens() -> None:
    """Every token's name, role, agents and creation time (never the secrets).

    \b
    Example:
      agentops token list
    """
    from agentops_assets.service.access import AccessError, TokenStore

    try:
        tokens = TokenStore(_paths()).list()
    except AccessError as error:
        raise click.ClickException(str(error)) from None
    if not tokens:
        err.print("No tokens yet; create one with `agentops token create NAME --role ROLE`.")
        return
    table = Table(title="Service tokens")
    for column in ("name", "role", "agents", "created"):
        table.add_column(column, overflow="fold")
    for info in tokens:
        table.add_row(info.name, info.role, ", ".join(info.agents) or "-", info.created)
    console.print(table)


@token.command()
@click.argument("name")
def revoke(name: str) -> None:
    """Delete a token: the running service refuses it, and ends its console sessions, from
    the next request on.

    \b
    Example:
      agentops token revoke finance-bot
    """
    from agentops_assets.service.access import AccessError, TokenStore

    try:
        TokenStore(_paths()).revoke(name)
    except AccessError as error:
        raise click.ClickException(str(error)) from None
    err.print(f"Revoked token [bold]{name}[/]; its sessions end on their next request.")
