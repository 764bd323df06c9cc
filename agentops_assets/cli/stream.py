"""``agentops stream``: drain the telemetry stream into the lake, and see how far behind it is."""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from agentops_assets.storage.config import Paths

console = Console()
err = Console(stderr=True)


def _paths() -> Paths:
    paths = Paths.from_env()
    os.environ["AGENTOPS_HOME"] = str(paths.home)
    return paths


def _open():
    """The configured stream, or a one-sentence error saying how to configure one."""
    from agentops_assets.stream import StreamError, open_stream

    try:
        stream = open_stream()
    except StreamError as error:
        raise click.ClickException(str(error)) from None
    if stream is None:
        raise click.ClickException(
            "No stream is configured: set AGENTOPS_STREAM_URL (e.g. redis://127.0.0.1:6379/0) "
            "and, optionally, AGENTOPS_STREAM_NAME (default agentops:telemetry)."
        )
    return stream


@click.group()
def stream() -> None:
    """The real-time stream zone: what `agentops serve` publishes when AGENTOPS_STREAM_URL is set.

    \b
    Example:
      export AGENTOPS_STREAM_URL=redis://127.0.0.1:6379/0
      agentops stream consume
      agentops stream status
    """


@stream.command()
@click.option(
    "--batch-seconds",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How long a micro-batch gathers messages after its first one.",
)
@click.option(
    "--max-messages",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most messages (requests) in one micro-batch.",
)
@click.option("--once", is_flag=True, help="Drain what is in the stream now, then stop.")
def consume(batch_seconds: float, max_messages: int, once: bool) -> None:
    """Drain the stream into agent_events and agent_events_quarantine, exactly once.

    One line per micro-batch, a summary at the end. SIGTERM or Ctrl-C stops it after the
    batch being committed; a killed consumer loses nothing and stores nothing twice when
    started again. Run one consumer per stream: a second one is refused.

    \b
    Example:
      agentops stream consume --batch-seconds 2
      agentops stream consume --once
    """
    from agentops_assets.stream import StreamConsumer, StreamError

    paths = _paths()
    opened = _open()
    stop = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        stop.set()

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, interrupt)
    err.print(
        f"Draining stream {opened.name!r} (group {opened.group!r}) into {paths.lake_uri} "
        f"in micro-batches of {batch_seconds:g} s"
        + (" until it is empty" if once else "")
        + (f"; server durability: {opened.durability()}" if hasattr(opened, "durability") else ""),
        soft_wrap=True,
        markup=False,
    )
    try:
        report = StreamConsumer(paths, opened).drain(
            batch_seconds=batch_seconds,
            max_messages=max_messages,
            once=once,
            stop=stop,
            report=_print_batch,
        )
    except StreamError as error:
        raise click.ClickException(str(error)) from None
    finally:
        opened.close()
    console.print(
        f"{report.batches:,} batches, {report.messages:,} messages: {report.new_events:,} new "
        f"events, {report.duplicate_events:,} duplicates left out, {report.quarantined:,} "
        f"quarantined"
        + (f", {report.skipped:,} already committed before a restart" if report.skipped else ""),
        soft_wrap=True,
    )


def _print_batch(result) -> None:
    latency = datetime.now(UTC).timestamp() - result.oldest_ms / 1000
    skipped = f", {result.skipped} already committed" if result.skipped else ""
    err.print(
        f"{result.first_id}..{result.last_id}: {result.messages} messages, "
        f"{result.new_events:,} new events (+{result.duplicate_events:,} duplicates), "
        f"{result.quarantined:,} quarantined{skipped}; committed in {result.seconds:.2f} s, "
        f"oldest published {latency:.2f} s ago",
        markup=False,
        soft_wrap=True,
    )


@stream.command()
def status() -> None:
    """Print the stream's lag: messages undelivered and pending, ages, what is committed.

    \b
    Example:
      agentops stream status
    """
    from agentops_assets.stream import StreamError, stream_status

    paths = _paths()
    opened = _open()
    try:
        figures = stream_status(paths, opened)
        durability = getattr(opened, "durability", None)  # what the implementation can tell
        if durability is not None:
            figures = {**figures, "server durability": durability()}
    except StreamError as error:
        raise click.ClickException(str(error)) from None
    finally:
        opened.close()
    table = Table(title="Telemetry stream", title_justify="left")
    table.add_column("figure")
    table.add_column("value", overflow="fold")
    for name, value in figures.items():
        shown = "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
        table.add_row(name, shown)
    console.print(table)
