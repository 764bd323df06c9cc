"""Ingestion accounting: quarantine keyed by content, the accounting check, SIGKILL recovery.

The crash tests kill a real ingestion process with SIGKILL right after a chosen Delta commit
(the parent watches the tables' ``_delta_log`` folders), rerun, and compare every table with a
clean run over a copy of the same landing folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import orjson
import polars as pl
import pytest
from dagster_duckdb import DuckDBResource
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.telemetry.assets import telemetry_ingestion
from agentops_assets.defs.telemetry.checks import records_accounted_for
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES, QUARANTINE
from tests.conftest import event, write_jsonl

# Columns that say when or how fast, not what: they differ between any two runs.
_TIMING = {AGENT_EVENTS: ["ingested_at"], QUARANTINE: ["ingested_at"]}
_TIMING[INGESTED_FILES] = ["ingested_at", "duration_ms"]


def _table(paths: Paths, name: str) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(name))


def _contents(paths: Paths) -> dict[str, pl.DataFrame]:
    """Every ingestion table without its timing columns, in a canonical row order."""
    out = {}
    for name, timing in _TIMING.items():
        frame = _table(paths, name).drop(timing)
        out[name] = frame.sort(frame.columns, nulls_last=True)
    return out


def _assert_same_tables(paths: Paths, clean: Paths) -> None:
    got, want = _contents(paths), _contents(clean)
    for name in _TIMING:
        assert_frame_equal(got[name], want[name], check_row_order=True)


def _check_passes(paths: Paths) -> tuple[bool, dict[str, object]]:
    result = dg.materialize(
        [telemetry_ingestion, records_accounted_for],
        resources={
            "lake": LakeResource(home=str(paths.home)),
            "duckdb": DuckDBResource(database=":memory:"),
        },
        selection=dg.AssetSelection.checks(records_accounted_for),
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation.passed, {k: v.value for k, v in evaluation.metadata.items()}


# --- item 6: quarantine keyed by content; the check compares with what is stored ------------


def test_quarantine_of_a_file_replaced_in_place_is_kept(paths: Paths) -> None:
    path = write_jsonl(paths.landing / "a.jsonl", [event(1), b"{first bad"])
    ingest_landing(paths)
    time.sleep(0.01)
    write_jsonl(path, [event(2), b"{second bad line", event(3)])
    ingest_landing(paths)
    quarantine = _table(paths, QUARANTINE).sort("raw_text")
    assert quarantine["raw_text"].to_list() == ["{first bad", "{second bad line"]
    assert quarantine["record_index"].to_list() == [2, 2]
    files = _table(paths, INGESTED_FILES)
    assert files["quarantined_rows"].sum() == quarantine.height
    assert _check_passes(paths)[0]


def test_records_accounted_for_passes_then_fails_when_stored_rows_go_missing(
    paths: Paths,
) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(5)] + [b"{bad", b"[1]"])
    write_jsonl(paths.landing / "b.jsonl", [event(n) for n in range(5, 9)])
    ingest_landing(paths)
    passed, metadata = _check_passes(paths)
    assert passed and metadata["files_not_adding_up"] == "none"

    DeltaTable(paths.table_uri(QUARANTINE)).delete("record_index = 7")
    passed, metadata = _check_passes(paths)
    assert not passed
    assert metadata["files_not_adding_up"] == "a.jsonl"


def test_records_accounted_for_fails_when_events_go_missing(paths: Paths) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(5)])
    write_jsonl(paths.landing / "b.jsonl", [event(n) for n in range(5, 9)])
    ingest_landing(paths)
    DeltaTable(paths.table_uri(AGENT_EVENTS)).delete("event_id = 'ev-00000007'")
    passed, metadata = _check_passes(paths)
    assert not passed
    assert metadata["files_not_adding_up"] == "b.jsonl"


# --- item 7: accounting after a crash ---------------------------------------------------------


def test_a_lost_file_record_counts_the_stored_events_as_new(paths: Paths) -> None:
    """Events stored by an unrecorded attempt of the same file are that file's new rows."""
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(10)] + [b"{bad"])
    ingest_landing(paths)
    shutil.rmtree(paths.table_uri(INGESTED_FILES))  # as if the last commit never happened
    report = ingest_landing(paths)
    assert (report.records, report.new_rows, report.duplicate_rows) == (11, 10, 0)
    assert _table(paths, AGENT_EVENTS).height == 10
    assert _table(paths, QUARANTINE).height == 1
    assert _check_passes(paths)[0]


def test_events_from_another_recorded_file_stay_duplicates_after_a_lost_record(
    paths: Paths,
) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(10)])
    ingest_landing(paths)
    write_jsonl(paths.landing / "b.jsonl", [event(n) for n in range(5, 15)])
    ingest_landing(paths)
    # Drop b's record only: a's record stays, so the five ids b shares with a stay duplicates.
    DeltaTable(paths.table_uri(INGESTED_FILES)).delete("path = 'b.jsonl'")
    (result,) = ingest_landing(paths).files
    assert (result.path, result.new_rows, result.duplicate_rows) == ("b.jsonl", 5, 5)
    assert _check_passes(paths)[0]


def _landing(folder: Path, files: int, per_file: int) -> None:
    """Files of fresh events, each with two bad lines and a few events of the file before."""
    for f in range(files):
        first = f * per_file
        records: list[object] = [event(n) for n in range(first, first + per_file)]
        records.insert(per_file // 3, b"{not json")
        records.append(orjson.dumps(event(10**7 + f, kind="nonsense")))
        if f:
            records.extend(event(n) for n in range(first - 20, first))  # re-sent
        write_jsonl(folder / f"part-{f:03d}.jsonl", records)


def _ingest_child(paths: Paths, **options: int) -> subprocess.Popen[bytes]:
    args = ", ".join(f"{key}={value}" for key, value in options.items())
    code = (
        "from agentops_assets.storage.config import Paths\n"
        "from agentops_assets.telemetry.ingest import ingest_landing\n"
        f"ingest_landing(Paths.from_env(), {args})\n"
    )
    env = {**os.environ, "AGENTOPS_HOME": str(paths.home)}
    # A lower priority for the child, so the watching parent runs as soon as a commit lands.
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, preexec_fn=lambda: os.nice(5)
    )


def _versions(paths: Paths, name: str) -> int:
    """The number of commits in a table's log (0 when it does not exist yet)."""
    log = Path(paths.table_uri(name)) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def _kill_when(paths: Paths, reached: Callable[[], bool], what: str, **options: int) -> None:
    """Run ingestion in a child and SIGKILL it as soon as ``reached()`` holds."""
    process = _ingest_child(paths, **options)
    deadline = time.monotonic() + 120
    while not reached():
        if process.poll() is not None:
            pytest.fail(f"ingestion ended before {what}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} in 120 s")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def _commit_exists(paths: Paths, table: str, version: int) -> Callable[[], bool]:
    commit = Path(paths.table_uri(table)) / "_delta_log" / f"{version:020d}.json"
    return commit.exists


def _writing_events_after(paths: Paths, version: int) -> Callable[[], bool]:
    """True once data files of the events commit after ``version`` are being written."""
    folder = Path(paths.table_uri(AGENT_EVENTS))
    committed = _commit_exists(paths, AGENT_EVENTS, version)
    before: list[int] = []

    def reached() -> bool:
        if not before:
            if not committed():
                return False
            before.append(len(list(folder.rglob("*.parquet"))))
        return len(list(folder.rglob("*.parquet"))) > before[0]

    return reached


def _kill_after_commit(paths: Paths, table: str, version: int, **options: int) -> None:
    what = f"commit {version} of {table}"
    _kill_when(paths, _commit_exists(paths, table, version), what, **options)


def _clean_run(tmp_path: Path, landing: Path) -> Paths:
    clean = Paths.from_env(tmp_path / "clean")
    shutil.copytree(landing, clean.landing)  # copy2 keeps mtimes, so modified_at agrees
    ingest_landing(clean)
    return clean


# Commit order per batch: events, quarantine, file records. One batch per file here, so
# version k of each table is batch k. Where to stop, and the commits each table has then
# (events, quarantine, files): right after one commit, before the next.
_BOUNDARIES: dict[str, tuple[Callable[[Paths], Callable[[], bool]], tuple[int, int, int]]] = {
    "after_events_commit": (lambda p: _commit_exists(p, AGENT_EVENTS, 2), (3, 2, 2)),
    "after_quarantine_commit": (lambda p: _commit_exists(p, QUARANTINE, 2), (3, 3, 2)),
    "after_file_record_commit": (lambda p: _commit_exists(p, INGESTED_FILES, 2), (3, 3, 3)),
    # Data files of batch 2 half written, not committed: the batch is lost and read again.
    "mid_batch_events_write": (lambda p: _writing_events_after(p, 1), (2, 2, 2)),
}


@pytest.mark.parametrize("boundary", list(_BOUNDARIES))
def test_sigkill_at_each_commit_boundary_then_rerun_equals_a_clean_run(
    paths: Paths, tmp_path: Path, boundary: str
) -> None:
    _landing(paths.landing, files=6, per_file=3_000)
    clean = _clean_run(tmp_path, paths.landing)
    reached_when, expected = _BOUNDARIES[boundary]
    tables = (AGENT_EVENTS, QUARANTINE, INGESTED_FILES)
    for _ in range(3):  # the child can outrun the watcher; try again from scratch then
        _kill_when(paths, reached_when(paths), boundary, batch_rows=2_000)
        reached = tuple(_versions(paths, name) for name in tables)
        if reached == expected:
            break
        shutil.rmtree(paths.lake_uri)
    assert reached == expected, f"stopped at {reached}, not at {expected}"

    ingest_landing(paths, batch_rows=2_000)
    _assert_same_tables(paths, clean)
    assert _check_passes(paths)[0]


def test_sigkill_mid_file_in_chunks_then_rerun_equals_a_clean_one_chunk_run(
    paths: Paths, tmp_path: Path
) -> None:
    """A large file is committed chunk by chunk; its record is written after the last one."""
    records: list[object] = [event(n) for n in range(12_000)]
    for line in (700, 4_100, 9_000, 11_500):
        records.insert(line, b'{"truncated": ')
    write_jsonl(paths.landing / "big.jsonl", records)
    clean = _clean_run(tmp_path, paths.landing)
    options = {"batch_rows": 1_000, "chunk_bytes": 512 << 10}
    _kill_after_commit(paths, AGENT_EVENTS, 3, **options)
    assert not Path(paths.table_uri(INGESTED_FILES)).exists()
    assert _table(paths, AGENT_EVENTS).height >= 3_000

    ingest_landing(paths, **options)
    _assert_same_tables(paths, clean)
    quarantine = _table(paths, QUARANTINE).sort("record_index")
    assert quarantine["record_index"].to_list() == [701, 4_101, 9_001, 11_501]


def test_file_replaced_between_crash_and_rerun_equals_a_clean_run_of_the_new_file(
    paths: Paths, tmp_path: Path
) -> None:
    _landing(paths.landing, files=4, per_file=3_000)
    _kill_after_commit(paths, AGENT_EVENTS, 2, batch_rows=2_000)
    assert not _table(paths, INGESTED_FILES)["path"].is_in(["part-002.jsonl"]).any()
    # The producer rewrites part-002: half its events, new ones, a different bad line.
    records: list[object] = [event(n) for n in range(6_000, 7_500)]
    records += [event(n) for n in range(50_000, 50_500)] + [b"[replaced]"]
    write_jsonl(paths.landing / "part-002.jsonl", records)
    clean = _clean_run(tmp_path, paths.landing)

    ingest_landing(paths, batch_rows=2_000)
    _assert_same_tables(paths, clean)
    assert _check_passes(paths)[0]
