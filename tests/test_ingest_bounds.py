"""Bounded reading: a gzip bomb is quarantined unread, large JSONL files stream in chunks.

Peak memory is measured in a child process (``resource.getrusage``) against a child that
ingests one small file, so the figures are what the read itself costs.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES, QUARANTINE
from tests.conftest import event, write_jsonl

MB = 1 << 20


def _table(paths: Paths, name: str) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(name))


def _peak_rss_mb(paths: Paths, *, env: dict[str, str] | None = None, **options: int) -> float:
    """Ingest ``paths`` in a child process; its peak resident memory in MB."""
    args = ", ".join(f"{key}={value}" for key, value in options.items())
    code = (
        "import resource\n"
        "from agentops_assets.storage.config import Paths\n"
        "from agentops_assets.telemetry.ingest import ingest_landing\n"
        f"ingest_landing(Paths.from_env(), {args})\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    child_env = {**os.environ, **(env or {}), "AGENTOPS_HOME": str(paths.home)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, timeout=600
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return int(done.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def _baseline_rss_mb(tmp_path: Path) -> float:
    small = Paths.from_env(tmp_path / "baseline")
    write_jsonl(small.landing / "small.jsonl", [event(n) for n in range(100)])
    return _peak_rss_mb(small)


def _write_gzip_bomb(path: Path, *, gigabytes: int) -> int:
    """A real gzip stream of ``gigabytes`` GiB of spaces, about 1 MB per GiB on disk.

    Each MiB is compressed once and flushed to a byte boundary with a fresh window, so every
    later MiB compresses to the same bytes: the stream is written without ever holding it.
    """
    block = b" " * (MB - 1) + b"\n"
    blocks = gigabytes * 1024
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    crc = 0
    with path.open("wb") as out:
        first = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
        repeated = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
        last = deflate.compress(block) + deflate.flush()
        out.write(first)
        for _ in range(blocks - 2):
            out.write(repeated)
        out.write(last[:-8])  # the trailer the compressor wrote covers three blocks only
        for _ in range(blocks):
            crc = zlib.crc32(block, crc)
        out.write(crc.to_bytes(4, "little") + (blocks * MB % 2**32).to_bytes(4, "little"))
    return path.stat().st_size


# 64: the bound is one chunk, the file is read whole in a worker thread up to it; 256: the
# bound is above a chunk, the file is measured (nothing kept) before any chunk is parsed.
@pytest.mark.parametrize("bound_mb", [64, 256])
def test_gzip_bomb_is_quarantined_recorded_and_not_retried(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bound_mb: int
) -> None:
    bomb = paths.landing / "fleet.jsonl.gz"
    bomb.parent.mkdir(parents=True)
    stored = _write_gzip_bomb(bomb, gigabytes=3)
    assert stored < 4 * MB
    with gzip.open(bomb) as stream:  # a real gzip stream: the standard library reads it
        assert stream.read(MB).count(b" ") == MB - 1
    write_jsonl(paths.landing / "good.jsonl", [event(n) for n in range(10)])

    baseline = _baseline_rss_mb(tmp_path)
    peak = _peak_rss_mb(paths, env={"AGENTOPS_MAX_DECOMPRESSED_MB": str(bound_mb)})
    assert peak - baseline < 200, f"peak {peak:.0f} MB, baseline {baseline:.0f} MB"

    (row,) = _table(paths, QUARANTINE).rows(named=True)
    assert (row["source_file"], row["reason"], row["record_index"]) == (
        "fleet.jsonl.gz",
        "decompressed_too_large",
        0,
    )
    assert f"more than {bound_mb} MB once decompressed" in row["detail"]
    assert "AGENTOPS_MAX_DECOMPRESSED_MB" in row["detail"]
    files = _table(paths, INGESTED_FILES).sort("path")
    assert files.select("path", "records", "quarantined_rows").rows() == [
        ("fleet.jsonl.gz", 1, 1),
        ("good.jsonl", 10, 0),
    ]
    assert _table(paths, AGENT_EVENTS).height == 10

    monkeypatch.setenv("AGENTOPS_MAX_DECOMPRESSED_MB", str(bound_mb))
    again = ingest_landing(paths)
    assert (again.files, again.skipped_files) == ([], 2)


def test_the_decompressed_bound_must_be_a_number(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTOPS_MAX_DECOMPRESSED_MB", "lots")
    with pytest.raises(ValueError, match="AGENTOPS_MAX_DECOMPRESSED_MB must be a whole number"):
        ingest_landing(paths)


def _write_large_jsonl(path: Path, *, megabytes: int, bad_every: int) -> tuple[int, list[int]]:
    """Events up to ``megabytes`` MB, a bad line every ``bad_every`` lines; (events, bad lines)."""
    events, bad, line, size = 0, [], 0, 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        while size < megabytes * MB:
            line += 1
            if line % bad_every == 0:
                text = b'{"event_id": "cut-' + str(line).encode() + b'", "ts": '
                bad.append(line)
            else:
                text = orjson.dumps(event(events))
                events += 1
            out.write(text + b"\n")
            size += len(text) + 1
    return events, bad


def test_large_jsonl_is_ingested_in_chunks_with_bounded_memory(
    paths: Paths, tmp_path: Path
) -> None:
    events, bad = _write_large_jsonl(paths.landing / "large.jsonl", megabytes=200, bad_every=40_009)
    baseline = _baseline_rss_mb(tmp_path)
    peak = _peak_rss_mb(paths, chunk_bytes=8 * MB, batch_rows=20_000)
    assert peak - baseline < 500, f"peak {peak:.0f} MB, baseline {baseline:.0f} MB"

    assert _table(paths, AGENT_EVENTS).height == events
    quarantine = _table(paths, QUARANTINE).sort("record_index")
    assert quarantine["record_index"].to_list() == bad
    assert set(quarantine["reason"]) == {"truncated_record"}
    assert quarantine["raw_text"][-1] == f'{{"event_id": "cut-{bad[-1]}", "ts": '
    (record,) = _table(paths, INGESTED_FILES).rows(named=True)
    assert (record["records"], record["new_rows"], record["quarantined_rows"]) == (
        events + len(bad),
        events,
        len(bad),
    )


def _contents(paths: Paths) -> dict[str, pl.DataFrame]:
    timing = {AGENT_EVENTS: ["ingested_at"], QUARANTINE: ["ingested_at"]}
    timing[INGESTED_FILES] = ["ingested_at", "duration_ms"]
    out = {}
    for name, drop in timing.items():
        frame = _table(paths, name).drop(drop)
        out[name] = frame.sort(frame.columns, nulls_last=True)
    return out


@pytest.mark.parametrize("form", ["plain", "gzip", "cut_gzip"])
def test_chunked_read_stores_exactly_the_rows_of_a_one_chunk_read(
    tmp_path: Path, form: str
) -> None:
    records: list[object] = []
    for n in range(6_000):
        records.append(event(n))
        if n % 700 == 0:
            records += [b"", b"{not json", orjson.dumps(event(n))]  # blank, bad, repeated
    records.insert(2_500, event(90_000, input_context="x" * 200_000))  # longer than a chunk
    data = b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in records) + b"\n"
    name = {"plain": "a.jsonl", "gzip": "a.jsonl.gz", "cut_gzip": "a.jsonl.gz"}[form]
    if form != "plain":
        data = gzip.compress(data)
    if form == "cut_gzip":
        data = data[: len(data) * 2 // 3]
    homes = [Paths.from_env(tmp_path / home) for home in ("chunks", "whole")]
    for home in homes:
        home.landing.mkdir(parents=True)
    (homes[0].landing / name).write_bytes(data)
    shutil.copy2(homes[0].landing / name, homes[1].landing / name)  # the same mtime
    ingest_landing(homes[0], chunk_bytes=64 << 10, batch_rows=100)
    ingest_landing(homes[1])

    chunked, whole = _contents(homes[0]), _contents(homes[1])
    for table in chunked:
        assert_frame_equal(chunked[table], whole[table])
    assert whole[QUARANTINE].height >= 6
    commits = Path(homes[0].table_uri(AGENT_EVENTS)) / "_delta_log"
    assert len(list(commits.glob("*.json"))) > 20  # it was committed chunk by chunk
    if form == "cut_gzip":
        assert "truncated_file" in whole[QUARANTINE]["reason"].to_list()
