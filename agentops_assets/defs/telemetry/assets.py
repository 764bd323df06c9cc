"""Telemetry ingestion: landing files -> agent_events, quarantine, ingested_files."""

import time

import dagster as dg

from agentops_assets.defs.resources import LakeResource
from agentops_assets.telemetry.ingest import IngestReport, ingest_landing
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES, QUARANTINE

LAKE_WRITERS_POOL = "agentops_lake_writers"
_BY_REASON = dg.TableSchema(
    columns=[dg.TableColumn("reason"), dg.TableColumn("records", "int", "records quarantined")]
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            AGENT_EVENTS,
            description="One row per agent step (docs/telemetry.md), Delta, partitioned by "
            "event_date. Deduplicated by event_id, secrets redacted.",
            kinds={"delta", "polars"},
        ),
        dg.AssetSpec(
            QUARANTINE,
            description="Records that could not be ingested: raw text (redacted), file, line or "
            "span index, and the reason.",
            kinds={"delta"},
        ),
        dg.AssetSpec(
            INGESTED_FILES,
            description="Each landing file ingested once: path, content hash, records read, "
            "rows stored, duplicates and quarantined rows.",
            kinds={"delta"},
        ),
    ],
    group_name="telemetry",
    pool=LAKE_WRITERS_POOL,
)
def telemetry_ingestion(context: dg.AssetExecutionContext, lake: LakeResource):
    """Ingest every landing file not ingested before (JSONL reasoning logs, OTLP JSON)."""

    last = time.monotonic()

    def progress(done: int, total: int, records: int) -> None:
        nonlocal last
        if done == total or time.monotonic() - last >= 2:
            last = time.monotonic()
            context.log.info(f"read {done}/{total} landing files, {records:,} records")

    report = ingest_landing(lake.paths, progress=progress)
    yield from _results(report)


def _results(report: IngestReport):
    rate = report.records / report.seconds if report.seconds else 0.0
    yield dg.MaterializeResult(
        asset_key=AGENT_EVENTS,
        metadata={
            "new_rows": dg.MetadataValue.int(report.new_rows),
            "duplicate_rows": dg.MetadataValue.int(report.duplicate_rows),
            "files": dg.MetadataValue.int(len(report.files)),
            "records_per_second": dg.MetadataValue.float(round(rate, 1)),
        },
    )
    by_reason = [
        dg.TableRecord({"reason": reason, "records": count})
        for reason, count in report.reasons.most_common()
    ]
    yield dg.MaterializeResult(
        asset_key=QUARANTINE,
        metadata={
            "quarantined_rows": dg.MetadataValue.int(report.quarantined_rows),
            "by_reason": dg.MetadataValue.table(by_reason, _BY_REASON),
        },
    )
    yield dg.MaterializeResult(
        asset_key=INGESTED_FILES,
        metadata={
            "files_ingested": dg.MetadataValue.int(len(report.files)),
            "files_skipped": dg.MetadataValue.int(report.skipped_files),
            "records_read": dg.MetadataValue.int(report.records),
        },
    )
