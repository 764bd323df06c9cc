"""OTLP/HTTP receiver benchmark: spans/s into landing files and agent_events, and SIGKILL.

A bounded load generator on loopback (several client processes, one keep-alive connection
each, ``http.client``) POSTs realistic protobuf ExportTraceServiceRequests (GenAI spans, 512
a request by default, distinct span ids) to a real uvicorn serving the service app, measures
acknowledged spans/s and request latency, once per receiver check (``fast``, the default, and
``full``, ingestion's reader and validation on every request; AGENTOPS_RECEIVER_CHECK), then
ingests the first run's landing files into agent_events. Then the SIGKILL test (first check):
the server is killed mid-load and restarted; clients retry what got no answer, as OTLP
exporters do; every span a client was told was accepted must be stored once.

    python bench/bench_receiver.py [--checks fast,full] [--clients 3] [--requests 100]
                                   [--spans 512] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import importlib.util
import json
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from _report import quantile, row, run_child, work_folder
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS

TARGET_SPANS_PER_S = 20_000
AGENTS = [f"agent-{n:02d}" for n in range(10)]
SPANS_PER_TRACE = 8
INGEST_CODE = """
import json, time
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
t = time.perf_counter()
report = ingest_landing(Paths.from_env())
print(json.dumps({"seconds": time.perf_counter() - t, "records": report.records,
                  "new": report.new_rows, "duplicates": report.duplicate_rows,
                  "quarantined": report.quarantined_rows, "files": len(report.files)}))
"""
IMPORTS_CODE = """
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
print("imported")
"""
SERVE_MINIMAL = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from agentops_assets.service.receiver import Receiver
from agentops_assets.storage.config import Paths

receiver = Receiver(Paths.from_env(), workers=int(sys.argv[2]))  # check: from the environment

async def traces(request: Request) -> Response:
    body = await request.body()
    reply = await run_in_threadpool(
        receiver.traces, body, content_type=request.headers.get("content-type"),
        content_encoding=request.headers.get("content-encoding"))
    return Response(reply.body, reply.status, headers=dict(reply.headers),
                    media_type=reply.content_type)

async def healthz(request: Request) -> Response:
    return Response(b"ok")

app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"]),
                        Route("/healthz", healthz)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


# -- the load: realistic GenAI batches with distinct ids -------------------------------------


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span_id(phase: int, worker: int, request: int, n: int) -> bytes:
    """Span ids that say where they come from: the bench can list what it sent."""
    return ((phase << 56) | (worker << 40) | (request << 16) | (n + 1)).to_bytes(8, "big")


def batch(phase: int, worker: int, request: int, spans: int, start_ns: int) -> bytes:
    """One ExportTraceServiceRequest: traces of an agent decision, LLM calls and tool calls."""
    out = []
    for n in range(spans):
        first = n - n % SPANS_PER_TRACE
        trace = phase.to_bytes(2, "big") + worker.to_bytes(2, "big") + request.to_bytes(4, "big")
        agent = AGENTS[(request + first) % len(AGENTS)]
        begin = start_ns + (request * spans + n) * 1_000_000
        if n == first:
            name, attrs = (
                "invoke_agent FinanceAgent",
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.id": agent,
                    "gen_ai.agent.name": "FinanceAgent",
                    "gen_ai.conversation.id": f"conv-{worker}-{request}-{first}",
                    "agentops.outcome": "success",
                    "agentops.confidence": 0.87,
                    "agentops.reasoning.summary": "Invoice matches the purchase order.",
                },
            )
        elif n % 3:
            name, attrs = (
                "chat gpt-4o",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.input_tokens": 1200 + n,
                    "gen_ai.usage.output_tokens": 300,
                    "gen_ai.usage.cache_read.input_tokens": 1024,
                    "gen_ai.request.temperature": 0.2,
                },
            )
        else:
            name, attrs = (
                "execute_tool erp_lookup",
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "erp_lookup",
                    "gen_ai.tool.call.arguments": f'{{"invoice": "INV-{n}"}}',
                    "http.response.status_code": 200,
                },
            )
        out.append(
            Span(
                trace_id=trace + first.to_bytes(8, "big"),
                span_id=span_id(phase, worker, request, n),
                parent_span_id=b"" if n == first else span_id(phase, worker, request, first),
                name=name,
                kind=Span.SPAN_KIND_CLIENT if n != first else Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=begin,
                end_time_unix_nano=begin + 250_000_000,
                attributes=[_kv(k, v) for k, v in attrs.items()],
                status=Status(code=Status.STATUS_CODE_OK),
            )
        )
    resource = Resource(
        attributes=[_kv("service.name", "finance-agent"), _kv("agentops.agent.tier", "tactical")]
    )
    scope = InstrumentationScope(name="opentelemetry.instrumentation.openai_v2", version="2.1")
    request_message = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=out)])
        ]
    )
    return request_message.SerializeToString()


def client(
    phase: int,
    worker: int,
    requests: int,
    spans: int,
    port: int,
    token: str | None,
    retry: bool,
    gzipped: bool,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """Send ``requests`` batches on one keep-alive connection; report what was acknowledged.

    With ``retry``, a request that got no answer (the server died) or a 429/503 is sent again
    until it is answered, as an OTLP exporter retries; otherwise it counts as failed. With
    ``gzipped``, bodies are sent gzip-compressed, as the SDK exporter does when asked to.
    """
    start_ns = time.time_ns() - 3_600 * 10**9
    bodies = [batch(phase, worker, r, spans, start_ns) for r in range(requests)]
    headers = {"Content-Type": "application/x-protobuf"}
    if gzipped:
        bodies = [gzip.compress(body, compresslevel=6) for body in bodies]
        headers["Content-Encoding"] = "gzip"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    ready.put(sum(len(b) for b in bodies))
    go.wait()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    done: list[tuple[int, float, int, int, float]] = []  # request, latency, status, spans, at
    cut: set[int] = set()  # requests that got no answer (connection reset by a killed server)
    for r, body in enumerate(bodies):
        while True:
            sent = time.perf_counter()
            try:
                conn.request("POST", "/v1/traces", body, headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                cut.add(r)
                if not retry:
                    done.append((r, time.perf_counter() - sent, 0, 0, time.perf_counter()))
                    break
                time.sleep(0.05)
                continue
            if retry and response.status in (429, 502, 503, 504):
                time.sleep(0.05)
                continue
            accepted = 0
            if response.status == 200:
                partial = ExportTraceServiceResponse.FromString(data).partial_success
                accepted = spans - partial.rejected_spans
            done.append(
                (r, time.perf_counter() - sent, response.status, accepted, time.perf_counter())
            )
            break
    conn.close()
    results.put((worker, done, len(cut)))


# -- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def full_app_available() -> bool:
    """Whether `agentops serve` can become ready here (its gate module exists)."""
    return importlib.util.find_spec("agentops_assets.service.gate") is not None


@contextmanager
def server(home: Path, port: int, full: bool, workers: int, check: str) -> Any:
    """The service in its own process (so it can be SIGKILLed); yields the process."""
    env = {
        **os.environ,
        "AGENTOPS_HOME": str(home),
        "AGENTOPS_RECEIVER_WORKERS": str(workers),
        "AGENTOPS_RECEIVER_CHECK": check,
    }
    if full:
        command = [sys.executable, "-m", "agentops_assets", "serve", "--port", str(port),
                   "--log-level", "warning"]  # fmt: skip
    else:
        command = [sys.executable, "-c", SERVE_MINIMAL, str(port), str(workers)]
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service did not become ready")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, todo = set(), [pid]
    while todo:
        current = todo.pop()
        tree.add(current)
        todo += [child for child, parent in parents.items() if parent == current]
    return sum(times.get(p, 0.0) for p in tree)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def agent_token(home: Path) -> str:
    """A token of role agent for the bench's agents: the receiver checks every span."""
    from agentops_assets.service.access import TokenStore

    return TokenStore(Paths.from_env(home)).create("bench", role="agent", agents=AGENTS)


# -- phases ----------------------------------------------------------------------------------


class Load:
    """Client processes, built and started together; ``run`` waits for their results."""

    def __init__(
        self, phase: int, clients: int, requests: int, spans: int, port: int, token: str | None,
        *, retry: bool, gzipped: bool = False,
    ) -> None:  # fmt: skip
        ctx = multiprocessing.get_context("spawn")
        self.ready, self.results, self.go = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.processes = [
            ctx.Process(
                target=client,
                args=(
                    phase,
                    w,
                    requests,
                    spans,
                    port,
                    token,
                    retry,
                    gzipped,
                    self.ready,
                    self.go,
                    self.results,
                ),  # fmt: skip
            )
            for w in range(clients)
        ]
        for process in self.processes:
            process.start()
        self.body_bytes = sum(self.ready.get(timeout=120) for _ in self.processes)

    def start(self) -> float:
        self.go.set()
        return time.perf_counter()

    def wait(self) -> dict[int, list[tuple[int, float, int, int, float]]]:
        out = {}
        self.cut = 0
        for _ in self.processes:
            worker, done, cut = self.results.get(timeout=600)
            out[worker] = done
            self.cut += cut
        for process in self.processes:
            process.join()
        return out


def in_process(work: Path, spans: int, check: str) -> None:
    """Receiver.traces called directly, one request at a time: the cost without HTTP."""
    from agentops_assets.service.receiver import Receiver

    receiver = Receiver(Paths.from_env(work / f"in-process-{check}"), workers=0, check=check)
    start_ns = time.time_ns() - 3_600 * 10**9
    bodies = [batch(3, 0, r, spans, start_ns) for r in range(21)]
    allowed = frozenset(AGENTS)
    receiver.traces(bodies[0], content_type="application/x-protobuf", content_encoding=None)
    cpu, wall = time.process_time(), time.perf_counter()
    for body in bodies[1:]:
        reply = receiver.traces(
            body, content_type="application/x-protobuf", content_encoding=None, agents=allowed
        )
        assert reply.status == 200, reply.body
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    count = 20 * spans
    row(f"[{check}] Receiver.traces in process, one thread", f"{count / wall:,.0f} spans/s", "",
        None)  # fmt: skip
    row("  CPU per span (decode, check, fsync)", f"{1e6 * cpu / count:,.1f} us", "", None)
    row("  wall per request (one thread)", f"{wall / 20 * 1000:,.1f} ms", "", None)


def durable_write(work: Path, spans: int) -> None:
    """What making one request durable costs: write, fsync, rename, fsync of the folder."""
    from agentops_assets.service.receiver import _write_durably

    folder = work / "fsync"
    folder.mkdir()
    body = batch(4, 0, 0, spans, time.time_ns())
    took = []
    for n in range(20):
        started = time.perf_counter()
        _write_durably(folder, f"{n}.pb", body)
        took.append(time.perf_counter() - started)
    row("durable write of one request (fsync x2, rename)",
        f"{quantile(took, 0.5) * 1000:,.2f} ms", "p50 of 20", None)  # fmt: skip


def throughput(
    work: Path, args: argparse.Namespace, full: bool, check: str, *, ingest: bool
) -> tuple[float, float | None]:
    """HTTP -> landing files with one receiver check; then, with ``ingest``, into agent_events."""
    home = work / f"throughput-{check}"
    token = agent_token(home) if full else None
    port = free_port()
    print(f"  [{check}] machine load average (1, 5, 15 min) at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    with server(home, port, full, args.workers, check) as process:
        load = Load(
            1, args.clients, args.requests, args.spans, port, token, retry=False,
            gzipped=args.gzip,
        )  # fmt: skip
        cpu_before, load_before = tree_cpu(process.pid), os.getloadavg()[0]
        started = load.start()
        results = load.wait()
        server_cpu = tree_cpu(process.pid) - cpu_before
        load_after = os.getloadavg()[0]
    replies = [reply for done in results.values() for reply in done]
    wall = max(reply[4] for reply in replies) - started
    acked = sum(reply[3] for reply in replies)
    statuses = sorted({reply[2] for reply in replies})
    latencies = [reply[1] for reply in replies]
    rate = acked / wall
    encoding = "protobuf, gzip" if args.gzip else "protobuf"
    print(
        f"  load: {args.clients} client processes x {args.requests} requests x {args.spans} "
        f"spans ({encoding}, {load.body_bytes / len(replies) / 1024:,.0f} KiB a request), "
        f"statuses {statuses}"
    )
    row(f"[{check}] HTTP -> landing files (acknowledged)", f"{rate:,.0f} spans/s",
        f">= {TARGET_SPANS_PER_S:,} spans/s", rate >= TARGET_SPANS_PER_S)  # fmt: skip
    row("  spans acknowledged / wall time", f"{acked:,} / {wall:.1f} s", "", None)
    row("  request latency p50", f"{quantile(latencies, 0.5) * 1000:,.0f} ms", "", None)
    row("  request latency p99", f"{quantile(latencies, 0.99) * 1000:,.0f} ms", "", None)
    per_cpu = acked / server_cpu
    row("  service CPU per span (all its processes)", f"{1e6 / per_cpu:,.1f} us", "", None)
    row("  spans per service CPU-second", f"{per_cpu:,.0f}", "", None)
    print(f"  machine load average (1 min) before / after the load: {load_before:.1f} / "
          f"{load_after:.1f} on {os.cpu_count()} cores (other sessions share them)")  # fmt: skip
    latency[check] = (quantile(latencies, 0.5), quantile(latencies, 0.99))
    if not ingest:
        return rate, None

    cpu_before = children_cpu()
    run_child(home, IMPORTS_CODE)  # start-up alone, not counted as ingestion
    cpu_start_up, cpu_before = children_cpu() - cpu_before, children_cpu()
    out, _ = run_child(home, INGEST_CODE)
    ingest_cpu = children_cpu() - cpu_before - cpu_start_up
    report = json.loads(out)
    ingest_rate = report["records"] / report["seconds"]
    row("landing -> agent_events (ingest)", f"{ingest_rate:,.0f} spans/s", "", None)
    row("  ingest CPU per span (start-up excluded)",
        f"{1e6 * ingest_cpu / report['records']:,.1f} us", "", None)  # fmt: skip
    capacity = os.cpu_count() / (server_cpu / acked + ingest_cpu / report["records"])
    row(f"  CPU-bound capacity on {os.cpu_count()} idle cores, both", f"{capacity:,.0f} spans/s",
        "(projection)", None)  # fmt: skip
    stored = pl.scan_delta(Paths.from_env(home).table_uri(AGENT_EVENTS)).select(pl.len())
    rows = stored.collect().item()
    row("  rows stored / spans acknowledged", f"{rows:,} / {acked:,}", "equal", rows == acked)
    end_to_end = acked / (wall + report["seconds"])
    row("end to end, HTTP then ingest (sequential)", f"{end_to_end:,.0f} spans/s",
        f">= {TARGET_SPANS_PER_S:,} spans/s", end_to_end >= TARGET_SPANS_PER_S)  # fmt: skip
    return rate, end_to_end


def sigkill(work: Path, args: argparse.Namespace, full: bool, check: str) -> bool:
    home = work / "sigkill"
    token = agent_token(home) if full else None
    port = free_port()
    # Longer than the throughput load, so the kill lands mid-load at any speed.
    requests = max(args.requests, 100)
    load = Load(2, args.clients, requests, args.spans, port, token, retry=True)
    print(f"  SIGKILL run with check {check}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    with server(home, port, full, args.workers, check) as first:
        load.start()
        time.sleep(args.kill_after)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    killed_at = time.perf_counter()
    with server(home, port, full, args.workers, check):
        restarted = time.perf_counter() - killed_at
        results = load.wait()
    acked = {
        span_id(2, worker, request, n).hex()
        for worker, done in results.items()
        for request, _, status, spans, _ in done
        if status == 200
        for n in range(spans)
    }
    temps = sum(1 for p in (home / "landing").rglob(".*") if p.is_file())
    out, _ = run_child(home, INGEST_CODE)
    report = json.loads(out)
    events = pl.read_delta(Paths.from_env(home).table_uri(AGENT_EVENTS), columns=["event_id"])
    ids = events["event_id"]
    lost = len(acked - set(ids.to_list()))
    duplicated = ids.len() - ids.n_unique()
    print(
        f"  SIGKILL {args.kill_after:.1f} s into the load, restart took {restarted:.1f} s; "
        f"{report['files']} landing files, {temps} temporary files left by the kill (ignored); "
        f"{load.cut} requests got no answer and were sent again"
    )
    row("spans acknowledged to clients", f"{len(acked):,}", "", None)
    row("  of them missing from agent_events", f"{lost:,}", "0", lost == 0)
    row("  event_ids stored more than once", f"{duplicated:,}", "0", duplicated == 0)
    row("  re-sent spans dropped as duplicates", f"{report['duplicates']:,}", "", None)
    return lost == 0 and duplicated == 0 and load.cut > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checks",
        default="fast,full",
        help="receiver checks to measure, the first also end to end",
    )
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100, help="per client")
    parser.add_argument("--spans", type=int, default=512, help="per request")
    parser.add_argument("--kill-after", type=float, default=0.7, help="seconds into the load")
    parser.add_argument("--gzip", action="store_true", help="send gzip bodies (throughput)")
    parser.add_argument(
        "--workers", type=int, default=0, help="AGENTOPS_RECEIVER_WORKERS for the service"
    )
    parser.add_argument("--keep", type=Path, help="keep the working folder here")
    args = parser.parse_args()
    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    if not checks or set(checks) - {"fast", "full"}:
        parser.error("--checks takes fast, full or both, comma-separated")
    full = full_app_available()
    with work_folder("agentops-bench-receiver-", args.keep) as work:
        print(f"Receiver benchmark on {os.cpu_count()} cores, work folder {work}")
        served = (
            "`agentops serve` (create_app: auth, agent-role token, Receiver) on uvicorn"
            if full
            else "a minimal Starlette app calling Receiver on uvicorn (no gate module yet)"
        )
        print(
            f"  server: {served}, one process, AGENTOPS_RECEIVER_WORKERS={args.workers}; "
            "clients on loopback on the same machine"
        )
        started = time.perf_counter()
        durable_write(work, args.spans)
        for check in checks:
            in_process(work, args.spans, check)
        rates, end_to_end = {}, 0.0
        for n, check in enumerate(checks):
            rates[check], measured = throughput(work, args, full, check, ingest=n == 0)
            end_to_end = measured if measured is not None else end_to_end
        safe = sigkill(work, args, full, checks[0])
    target = f">= {TARGET_SPANS_PER_S:,} spans/s"
    for check, rate in rates.items():
        p50, p99 = latency[check]
        print(f"VERDICT receiver HTTP -> landing files, check {check}, {target}: "
              f"{_verdict(rate)} ({rate:,.0f} spans/s, p50 {p50 * 1000:,.0f} ms, "
              f"p99 {p99 * 1000:,.0f} ms)")  # fmt: skip
    print(f"VERDICT HTTP -> agent_events end to end (check {checks[0]}, then ingest) {target}: "
          f"{_verdict(end_to_end)} ({end_to_end:,.0f})")  # fmt: skip
    print(f"VERDICT SIGKILL mid-load: nothing acknowledged lost, nothing duplicated: "
          f"{'PASS' if safe else 'FAIL'}")  # fmt: skip
    print(f"  total {time.perf_counter() - started:.0f} s")


latency: dict[str, tuple[float, float]] = {}  # check -> (p50, p99) seconds


def _verdict(rate: float) -> str:
    return "PASS" if rate >= TARGET_SPANS_PER_S else "FAIL"


if __name__ == "__main__":
    main()
