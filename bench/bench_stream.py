"""Stream zone benchmark: events/s through Redis Streams into agent_events, and latency.

What it measures, on the machine's Redis (127.0.0.1:6379, a stream of its own, deleted after)
and a fresh home, with ``agentops stream consume`` running as a separate process as it would
in production:

1. Latency: requests of ``--latency-events`` JSONL events are published at ``--rate`` a
   second for ``--seconds``; each one's end-to-end latency runs from just before its publish
   call to the moment an observer polling the agent_events Delta log (every 20 ms) sees the
   commit that holds it, i.e. when a query opening the table returns its rows. p50 and p99.
2. Throughput: ``--requests`` requests of ``--events`` events each are published as fast as
   one thread can (bodies prepared beforehand), and the clock stops when the commit holding
   the last one is visible: events/s from first publish to last queryable row.

Publishing goes through ``TelemetryStream.publish`` (XADD), not HTTP: the receiver's HTTP and
check costs are bench_receiver.py's subject. The consumer's CPU time per event is reported too
(2 shared cores: wall-clock figures move with the load average printed beside them).
The issue sets no numeric target, so the verdict is "reported".

    python bench/bench_stream.py [--batch-seconds 2] [--rate 10] [--seconds 15]
                                 [--latency-events 50] [--requests 200] [--events 500]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import redis
from _report import quantile, row, work_folder
from deltalake import DeltaTable

from agentops_assets.storage.config import Paths
from agentops_assets.stream import StreamSettings, open_stream, txn_version
from agentops_assets.telemetry.schema import AGENT_EVENTS

REDIS_URL = "redis://127.0.0.1:6379/0"
NDJSON = "application/x-ndjson"


def _body(first: int, count: int) -> bytes:
    """``count`` valid JSONL events with ids from ``first`` (ts within the last day)."""
    base = datetime.now(UTC) - timedelta(hours=1)
    lines = []
    for n in range(first, first + count):
        lines.append(
            orjson.dumps(
                {
                    "event_id": f"ev-{n:09d}",
                    "trace_id": f"tr-{n // 8:09d}",
                    "ts": (base + timedelta(milliseconds=n % 3_000_000)).isoformat(),
                    "duration_ms": 120.5,
                    "agent_id": f"agent-{n % 20:02d}",
                    "agent_type": "FinanceAgent",
                    "kind": "llm_call",
                    "action": "chat",
                    "input_context": f"Summarise the ledger for account {n % 997}.",
                    "status": "ok",
                    "provider": "openai",
                    "model": "gpt-4o",
                    "input_tokens": 1200,
                    "output_tokens": 300,
                }
            )
        )
    return b"\n".join(lines) + b"\n"


class CommitWatcher:
    """Polls the agent_events Delta log; records when each stream id's commit became visible."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.seen: list[tuple[int, int, float]] = []  # (first version, last version, when)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def visible_at(self, message_id: str) -> float | None:
        version = txn_version(message_id)
        for first, last, when in list(self.seen):
            if first <= version <= last:
                return when
        return None

    def _run(self) -> None:
        table, known = None, -1
        while not self.stop.wait(0.02):
            if table is None:
                if not DeltaTable.is_deltatable(self.uri):
                    continue
                table = DeltaTable(self.uri)
            else:
                table.update_incremental()
            now = time.perf_counter()
            version = table.version()
            if version == known:
                continue
            for commit in table.history(version - known if known >= 0 else None):
                if commit.get("version", -1) <= known:
                    continue
                ids = commit.get("agentops.stream_ids")
                if ids:
                    first, last = ids.split("..")
                    self.seen.append((txn_version(first), txn_version(last), now))
            known = version


def _consumer(home: Path, name: str, batch_seconds: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "AGENTOPS_HOME": str(home),
        "AGENTOPS_STREAM_URL": REDIS_URL,
        "AGENTOPS_STREAM_NAME": name,
    }
    command = [
        sys.executable, "-m", "agentops_assets", "stream", "consume",
        "--batch-seconds", str(batch_seconds), "--max-messages", "1000",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_visible(watcher: CommitWatcher, message_id: str, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        when = watcher.visible_at(message_id)
        if when is not None:
            return when
        time.sleep(0.01)
    raise TimeoutError(f"message {message_id} not in agent_events after {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-seconds", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=10.0, help="latency phase requests/s")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--latency-events", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    name = f"agentops:bench:{uuid.uuid4().hex[:10]}"
    with work_folder("agentops-bench-stream-", args.keep) as home:
        paths = Paths.from_env(home)
        stream = open_stream(StreamSettings(REDIS_URL, name))
        assert stream is not None
        consumer = _consumer(home, name, args.batch_seconds)
        watcher = CommitWatcher(paths.table_uri(AGENT_EVENTS))
        watcher.start()
        try:
            _run(args, stream, watcher, paths, consumer)
        finally:
            watcher.stop.set()
            if consumer.poll() is None:
                consumer.send_signal(signal.SIGTERM)
                consumer.wait(timeout=60)
            client = redis.Redis.from_url(REDIS_URL)
            client.delete(name, *client.keys(f"{name}:*"))
            client.close()
            stream.close()


def _run(args, stream, watcher: CommitWatcher, paths: Paths, consumer) -> None:
    print(
        f"Stream zone: Redis {stream.server_version} at {REDIS_URL} (appendonly as configured "
        f"on the server), consumer `agentops stream consume --batch-seconds "
        f"{args.batch_seconds:g}` in its own process; load average before "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    # Warm-up: the consumer's imports and the table's creation are not what is measured.
    warm = stream.publish("events", NDJSON, "identity", _body(10**8, 10))
    _wait_visible(watcher, warm, 120)

    # 1. Latency at a steady rate.
    sent: list[tuple[str, float]] = []
    publish_s: list[float] = []
    first = 0
    interval = 1 / args.rate
    started = time.perf_counter()
    for n in range(int(args.seconds * args.rate)):
        body = _body(first, args.latency_events)
        first += args.latency_events
        time.sleep(max(0.0, started + n * interval - time.perf_counter()))
        before = time.perf_counter()
        sent.append((stream.publish("events", NDJSON, "identity", body), before))
        publish_s.append(time.perf_counter() - before)
    _wait_visible(watcher, sent[-1][0], 120)
    latencies = [_wait_visible(watcher, mid, 1) - at for mid, at in sent]

    # 2. Throughput of a burst.
    bodies = [_body(first + i * args.events, args.events) for i in range(args.requests)]
    first += args.requests * args.events
    load_before = os.getloadavg()
    burst_start = time.perf_counter()
    ids = [stream.publish("events", NDJSON, "identity", body) for body in bodies]
    published = time.perf_counter()
    done = _wait_visible(watcher, ids[-1], 600)
    burst_events = args.requests * args.events

    consumer.send_signal(signal.SIGTERM)
    consumer.wait(timeout=60)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = cpu.ru_utime + cpu.ru_stime
    stored = pl.scan_delta(paths.table_uri(AGENT_EVENTS)).select(pl.len()).collect().item()
    expected = 10 + len(sent) * args.latency_events + burst_events
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())

    print(f"\nEnd-to-end latency, publish -> row queryable in agent_events ({len(sent)} "
          f"requests of {args.latency_events} events at {args.rate:g}/s):")  # fmt: skip
    row("latency p50", f"{quantile(latencies, 0.5):.3f} s", "reported", None)
    row("latency p99", f"{quantile(latencies, 0.99):.3f} s", "reported", None)
    row("publish (XADD) p50", f"{quantile(publish_s, 0.5) * 1000:.2f} ms", "reported", None)
    row("publish (XADD) p99", f"{quantile(publish_s, 0.99) * 1000:.2f} ms", "reported", None)
    print(f"\nThroughput, a burst of {args.requests} requests x {args.events} events "
          f"(load average before {' '.join(f'{x:.2f}' for x in load_before)}):")  # fmt: skip
    row(
        "published (one thread, XADD)",
        f"{burst_events / (published - burst_start):,.0f} ev/s",
        "reported",
        None,
    )
    row(
        "through the stream into agent_events",
        f"{burst_events / (done - burst_start):,.0f} ev/s",
        "reported",
        None,
    )
    row(
        "consumer CPU per 1,000 events (incl. start-up)",
        f"{cpu_s / expected * 1000 * 1000:.1f} ms",
        "reported",
        None,
    )
    row("rows stored = events published", f"{stored:,} = {expected:,}", "exact", stored == expected)
    print(f"\nload average after: {load}")
    print(
        "verdict: reported (the issue gives no numeric target); every published event stored "
        + ("once" if stored == expected else "NOT exactly once")
    )
    if stored != expected:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
